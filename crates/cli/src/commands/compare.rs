//! `rwkv-bench compare`: exit 0 = no regression, 1 = regression, 2 = unusable input.

use std::process::ExitCode;

use anyhow::Context;
use harness::compare::compare;
use harness::results::Results;

use crate::cli::{CompareArgs, CompareFormat};

pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let baseline = Results::load(&args.baseline)?;
    let current = Results::load(&args.current)?;
    let cmp =
        compare(&baseline, &current, args.max_regression, &args.ratio_gate).with_context(|| {
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
