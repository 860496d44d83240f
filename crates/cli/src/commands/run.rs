//! `rwkv-bench run`: measure a suite, write results.json and summary.md, print the
//! summary.

use std::path::PathBuf;

use anyhow::Context;
use report::{Exporter, Markdown};
use results::suite::Suite;
use speed::measure::isolate::Launcher;
use speed::run_suite;

use crate::cli::RunArgs;
use crate::progress::Bars;

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut suite = Suite::load(&args.suite)?;
    if let Some(t) = args.threads {
        suite.config.threads = t;
    }
    if let Some(d) = args.dtype {
        suite.config.dtype = d.into();
    }
    let m = suite.config.measure;
    if !(m.prefill || m.decode || m.memory) {
        anyhow::bail!(
            "{} measures no speed or memory (only [accuracy]): run `rwkv-bench eval {}`",
            args.suite.display(),
            args.suite.display()
        );
    }
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("reports").join(&suite.config.name));
    let launcher = Launcher {
        program: std::env::current_exe().context("locating the rwkv-bench binary")?,
        args: vec!["cell".into()],
        threads: suite.config.threads,
    };
    let mut bars = Bars::new("suite");
    let results = run_suite(&suite, &launcher, &mut bars)?;
    bars.finish();

    let results_path = out.join("results.json");
    results.save(&results_path)?;
    let written = report::write_report(&results, &out)?;

    println!(
        "{}",
        String::from_utf8_lossy(&Markdown.serialize(&results)?)
    );
    println!(
        "wrote {}, {}, {} and {} chart files",
        results_path.display(),
        written.html.display(),
        written.markdown.display(),
        written.charts.len()
    );
    if !results.failures.is_empty() {
        println!(
            "{} of the cells failed (see above); the others were recorded",
            results.failures.len()
        );
    }
    Ok(())
}
