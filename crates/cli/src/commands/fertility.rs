//! `rwkv-bench fertility`: what each tokenizer spends per character in each language,
//! and where a run's crossovers fall in characters.

use anyhow::Context;

use crate::cli::FertilityArgs;
use eval::fertility::{self, Fertility};
use models::tokenizer;
use results::analysis::CrossoverAt;
use results::Results;

pub fn run(args: FertilityArgs) -> anyhow::Result<()> {
    let results = args.results.as_deref().map(Results::load).transpose()?;
    let mut catalogs = Vec::new();
    for lang in &args.languages {
        let c = fertility::load(&args.locales, lang)?;
        for (path, why) in &c.skipped {
            eprintln!("skipped {}: {why}", path.display());
        }
        catalogs.push(c);
    }
    let mut all: Vec<Fertility> = Vec::new();
    for spec in &args.tokenizer {
        let tok = tokenizer::load(spec)?;
        all.extend(fertility::measure(&catalogs, tok.as_ref())?);
    }
    println!(
        "{:<5} {:<40} {:>8} {:>10} {:>11} {:>11} {:>10}",
        "lang", "tokenizer", "messages", "chars", "tokens/char", "tokens/byte", "vs English"
    );
    for f in &all {
        println!(
            "{:<5} {:<40} {:>8} {:>10} {:>11.3} {:>11.3} {:>10}",
            f.language,
            short(&f.tokenizer, 40),
            f.messages,
            f.chars,
            f.tokens_per_char(),
            f.tokens_per_byte(),
            f.vs_english().map_or("-".into(), |r| format!("{r:.2}×"))
        );
    }
    println!(
        "(text: the .mo catalogs under {}/<lang>/LC_MESSAGES; English: their sources)",
        args.locales.display()
    );
    if let Some(results) = &results {
        print_crossovers(results, &all);
    }
    if let Some(out) = &args.out {
        let json = serde_json::to_vec_pretty(&all)?;
        results::atomic::write(out, &json).with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn short(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        s.into()
    } else {
        let tail: String = s.chars().skip(count - (n - 1)).collect();
        format!("…{tail}")
    }
}

/// Each crossover length, in characters of each language, for each tokenizer measured:
/// what a crossover of L tokens means when both models read text through it.
fn print_crossovers(results: &Results, all: &[Fertility]) {
    if results.analysis.crossovers.is_empty() {
        println!("\nno crossovers in the results file (a speed run of one RWKV and one transformer has them)");
        return;
    }
    println!("\ncrossovers in characters (both models reading through the tokenizer named):");
    for c in &results.analysis.crossovers {
        let (what, tokens) = match c.at {
            CrossoverAt::Crosses { length, .. } => ("crosses at", length),
            CrossoverAt::CheaperThroughout { from } => ("cheaper from", from as f64),
            CrossoverAt::Never { up_to } => ("not cheaper up to", up_to as f64),
        };
        println!(
            "  {} vs {} ({}): {what} {tokens:.0} tokens",
            c.candidate,
            c.baseline,
            c.metric.label()
        );
        let confirmed = c.confirmed_from.map(|n| n as f64);
        if let Some(n) = confirmed {
            println!("    (every 95 % interval above 1 from {n:.0} tokens)");
        }
        for f in all {
            let from = confirmed.map_or(String::new(), |n| {
                format!(", confirmed from ≈ {:.0}", f.chars_for(n))
            });
            println!(
                "    {:<5} {:<40} ≈ {:>9.0} characters{from}",
                f.language,
                short(&f.tokenizer, 40),
                f.chars_for(tokens)
            );
        }
    }
}
