//! `rwkv-bench run`: measure a suite, write results.json and summary.md, print the
//! summary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use report::{Exporter, Markdown};
use results::suite::Suite;
use results::Failure;
use speed::measure::isolate::Launcher;
use speed::run_suite;
use speed::shard::ShardPlan;

use crate::cli::RunArgs;
use crate::progress::Bars;

/// Exit 0: every cell measured or over the suite's declared memory budget; 1: a cell
/// crashed, errored, timed out or was refused, or a max-context search stopped on a
/// failed probe, or a dtype cost could not be measured (the results are written all
/// the same);
/// unusable input exits 2 through `main`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut suite = Suite::load(&args.suite)?;
    if let Some(t) = args.threads {
        suite.config.threads = t;
    }
    if let Some(d) = args.dtype {
        suite.config.dtype = d.into();
    }
    if let Some(p) = args.python {
        suite.config.python = Some(p);
    }
    if !suite.config.measure.any_run() {
        anyhow::bail!(
            "{} measures no speed, memory, context or training cost (only [accuracy]): run `rwkv-bench eval {}`",
            args.suite.display(),
            args.suite.display()
        );
    }
    let plan = args
        .shard
        .map(|shard| ShardPlan::new(&suite, shard))
        .transpose()?;
    let out = args.out.unwrap_or_else(|| {
        let dir = PathBuf::from("reports").join(&suite.config.name);
        match &plan {
            // Shards run side by side on one machine must not overwrite each other.
            Some(p) => dir.join(format!("shard-{}-of-{}", p.shard.index, p.shard.count)),
            None => dir,
        }
    });
    if let Some(p) = &plan {
        let units: Vec<String> = p.units().iter().map(|u| u.to_string()).collect();
        println!(
            "shard {} of {}: {} ({:.0} % of the predicted cost)",
            p.shard,
            suite.config.name,
            if units.is_empty() {
                "nothing (more shards than units of work)".to_string()
            } else {
                units.join(", ")
            },
            100.0 * p.share()
        );
    }
    let launcher = Launcher {
        program: std::env::current_exe().context("locating the rwkv-bench binary")?,
        args: vec!["cell".into()],
        threads: suite.config.threads,
    };
    let dtype_cost = suite.config.measure.dtype_cost;
    if dtype_cost {
        // Before any cell: a run of hours should not end on a setting it could not use.
        eval::dtype_cost::check(&suite)?;
    }
    let mut bars = Bars::new("suite");
    let mut results = run_suite(&suite, &launcher, plan.as_ref(), &mut bars)?;
    // Here rather than in the speed runner (which does not depend on `eval`), and only
    // once every timing cell has finished: these models are built in this process.
    if dtype_cost {
        let mut mine = suite.clone();
        if let Some(p) = &plan {
            mine.config.models.retain(|m| p.has_dtype_cost(m));
        }
        results.dtype_costs = eval::dtype_cost::measure(&mine, &mut bars)?;
    }
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
    let (expected, faults): (Vec<&Failure>, Vec<&Failure>) =
        results.failures.iter().partition(|f| f.kind.expected());
    if !expected.is_empty() {
        println!(
            "{} cell(s) over the suite's memory budget (an expected outcome)",
            expected.len()
        );
    }
    let stopped: Vec<_> = results
        .fits
        .iter()
        .filter_map(|f| f.stopped.as_ref().map(|why| (&f.model, why)))
        .collect();
    let unmeasured: Vec<_> = results
        .dtype_costs
        .iter()
        .filter_map(|c| c.error.as_ref().map(|why| (&c.model, why)))
        .collect();
    if faults.is_empty() && stopped.is_empty() && unmeasured.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for (model, why) in &stopped {
        eprintln!("  max context of {model} is only a lower bound: {why}");
    }
    for (model, why) in &unmeasured {
        eprintln!("  dtype cost of {model} not measured: {why}");
    }
    if !faults.is_empty() {
        eprintln!("{} cell(s) failed; the others were recorded:", faults.len());
    }
    for f in faults {
        eprintln!(
            "  {} @ {}: {}: {}",
            f.model,
            f.seq_len,
            f.kind.label(),
            f.error
        );
    }
    Ok(ExitCode::from(1))
}
