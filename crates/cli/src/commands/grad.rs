//! `rwkv-bench grad`: the next-token loss of given tokens and the gradient of every
//! parameter, as a safetensors file (`loss` `[1]`, `grad.<checkpoint key>` in the
//! checkpoint's shape, f32), so anyone can check gradient parity on any checkpoint.

use anyhow::{bail, Context};
use candle_core::{Device, Tensor};
use models::{registry, BuildOptions};

use crate::cli::GradArgs;

pub fn run(args: GradArgs) -> anyhow::Result<()> {
    if args.tokens.len() < 2 {
        bail!("--tokens: give at least two token ids (the loss predicts each next one)");
    }
    let opts = BuildOptions::default();
    let model = registry::build_trainable(&args.model, &opts)?;
    let tokens = Tensor::new(args.tokens.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    let (loss, grads) = models::trainable::gradients(model.as_ref(), &tokens)?;
    let mut out: Vec<(String, Tensor)> = vec![("loss".into(), loss.reshape(1)?)];
    out.extend(grads.into_iter().map(|(k, g)| (format!("grad.{k}"), g)));
    let bytes = safetensors::tensor::serialize(out.iter().map(|(k, t)| (k.as_str(), t)), None)
        .with_context(|| format!("serialising gradients for {}", args.out.display()))?;
    results::atomic::write(&args.out, &bytes)?;
    println!(
        "wrote {} (loss {:.6} and {} gradients)",
        args.out.display(),
        loss.to_scalar::<f32>()?,
        out.len() - 1
    );
    Ok(())
}
