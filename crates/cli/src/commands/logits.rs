//! `rwkv-bench logits`: every position's logits for given tokens, as a safetensors file
//! with tensor `logits` `(T, vocab)` f32, so anyone can check parity on any checkpoint.

use anyhow::{bail, Context};
use models::{registry, weight_dtype, BuildOptions};

use crate::cli::{LogitsArgs, LogitsMode};

pub fn run(args: LogitsArgs) -> anyhow::Result<()> {
    if args.tokens.is_empty() {
        bail!("--tokens: give at least one token id");
    }
    let opts = BuildOptions {
        dtype: weight_dtype(args.dtype.into()),
        ..BuildOptions::default()
    };
    let mut model = registry::build(&args.model, &opts)?;
    let vocab = model.info().vocab;
    if let Some(bad) = args.tokens.iter().find(|&&t| t as usize >= vocab) {
        bail!(
            "--tokens: token {bad} is out of range for {} (vocab {vocab})",
            args.model
        );
    }
    let logits = match args.mode {
        LogitsMode::Seq => model.logits_all(&args.tokens)?,
        LogitsMode::Step => model.logits_stepwise(&args.tokens)?,
    };
    let bytes = safetensors::tensor::serialize([("logits", &logits)], None)
        .with_context(|| format!("serialising logits for {}", args.out.display()))?;
    results::atomic::write(&args.out, &bytes)?;
    let (t, v) = logits.dims2()?;
    println!(
        "wrote {} (logits [{t}, {v}] f32, {} mode)",
        args.out.display(),
        args.mode
    );
    Ok(())
}
