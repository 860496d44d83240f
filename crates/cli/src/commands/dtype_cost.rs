//! `rwkv-bench dtype-cost`: the accuracy each weight dtype gives up against f32 on the
//! same weights.

use anyhow::{bail, Context};
use eval::agreement::{Agreement, Reference};
use models::{tokenizer, BuildOptions};

use crate::cli::DtypeCostArgs;

pub fn run(args: DtypeCostArgs) -> anyhow::Result<()> {
    if args.tokens < 2 {
        bail!("--tokens: at least 2 positions are needed");
    }
    let opts = BuildOptions {
        seed: args.seed,
        ..BuildOptions::default()
    };
    let reference = match &args.text {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let tok = tokenizer::load(&tokenizer::for_model(&args.model)?)?;
            let mut ids = tok.encode(&text)?;
            if ids.len() < 2 {
                bail!("{}: fewer than 2 tokens of text", path.display());
            }
            ids.truncate(args.tokens);
            Reference::new(&args.model, &ids, &opts)?
        }
        None => Reference::random(&args.model, args.tokens, args.seed, &opts)?,
    };
    let rows = args
        .dtypes
        .iter()
        .map(|&d| reference.compare(d))
        .collect::<eval::Result<Vec<_>>>()?;
    let tokens = reference.tokens();
    print_table(&args, &rows, tokens.len());
    if let Some(out) = &args.out {
        let json = serde_json::to_vec_pretty(&rows)?;
        results::atomic::write(out, &json).with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn print_table(args: &DtypeCostArgs, rows: &[Agreement], n: usize) {
    let source = match &args.text {
        Some(p) => format!("{n} tokens of {}", p.display()),
        None => format!("{n} random tokens (seed {})", args.seed),
    };
    println!("{} against its f32 weights, {source}", args.model);
    println!(
        "{:<6} {:>10} {:>11} {:>11} {:>7} {:>9} {:>9}",
        "dtype", "weights", "min cosine", "mean cosine", "top-1", "loss", "ppl Δ"
    );
    for r in rows {
        println!(
            "{:<6} {:>10} {:>11.6} {:>11.6} {:>6.1}% {:>9.4} {:>+8.2}%",
            r.dtype,
            r.weight_bytes
                .map_or("-".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            r.min_cosine,
            r.mean_cosine,
            100.0 * r.top1,
            r.loss,
            100.0 * r.perplexity_change(),
        );
    }
    if let Some(r) = rows.first() {
        println!("(f32 loss {:.4} nats/token)", r.loss_f32);
    }
}
