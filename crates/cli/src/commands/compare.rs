//! `rwkv-bench compare`: exit 0 = no regression, 1 = regression, 2 = unusable input.

use std::process::ExitCode;

use anyhow::Context;
use results::compare::{compare, CompareOptions, GATED};
use results::Results;

use crate::cli::{CompareArgs, CompareFormat};

pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let baseline = Results::load(&args.baseline)?;
    let current = Results::load(&args.current)?;
    let opts = CompareOptions {
        max_regression: args.max_regression,
        gates: args.ratio_gate,
        metrics: if args.metric.is_empty() {
            GATED.to_vec()
        } else {
            args.metric.iter().map(|&m| m.into()).collect()
        },
    };
    let cmp = compare(&baseline, &current, &opts).with_context(|| {
        format!(
            "comparing {} with {}",
            args.baseline.display(),
            args.current.display()
        )
    })?;
    for w in &cmp.warnings {
        eprintln!("warning: {w}");
    }
    let text = match args.format {
        CompareFormat::Markdown => report::comparison::markdown(&cmp),
        CompareFormat::Json => serde_json::to_string_pretty(&cmp)?,
    };
    println!("{text}");
    Ok(if cmp.regressed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
