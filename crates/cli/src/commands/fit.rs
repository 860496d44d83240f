//! `rwkv-bench fit`: the longest prompt a model prefills and decodes within a memory
//! budget, by a search over isolated child processes, next to the analytic prediction.
//! Exit 0 when the search bracketed the limit (or reached the cap), 1 when a probe
//! failed and only a lower bound is known.

use std::process::ExitCode;

use anyhow::Context;
use results::fit::Fit;
use results::machine::Machine;
use results::suite::FitSettings;
use results::ModelInfo;
use serde::Serialize;
use speed::fit::{search_isolated, FitJob};
use speed::measure::isolate::Launcher;

use crate::cli::FitArgs;
use crate::progress::Bars;

/// What `--out` holds: the search, the model it measured and the machine.
#[derive(Serialize)]
struct FitReport<'a> {
    fit: &'a Fit,
    model: Option<&'a ModelInfo>,
    machine: Machine,
}

pub fn run(args: FitArgs) -> anyhow::Result<ExitCode> {
    let settings = FitSettings {
        budget_mb: args.budget,
        cap: args.cap,
        start: args.start.min(args.cap),
        tolerance: args.tolerance,
        probe_timeout_s: args.probe_timeout,
        ..FitSettings::default()
    };
    settings.validate().map_err(|e| {
        // The suite's key names, as this command's flags.
        let flags = [
            ("`fit.budget_mb`", "`--budget`"),
            ("`fit.probe_timeout_s`", "`--probe-timeout`"),
            ("`fit.tolerance`", "`--tolerance`"),
            ("`fit` needs", "--start and --cap need"),
        ];
        let e = flags.iter().fold(e, |e, (key, flag)| e.replace(key, flag));
        anyhow::anyhow!("{e}")
    })?;
    // The spec is checked (a missing checkpoint, a bad option) before any process starts.
    models::registry::resolve(&args.model)?;
    let job = FitJob {
        model: args.model.clone(),
        dtype: args.dtype.into(),
        seed: args.seed,
        settings,
    };
    let launcher = Launcher {
        program: std::env::current_exe().context("locating the rwkv-bench binary")?,
        args: vec!["cell".into()],
        threads: args.threads,
    };
    eprintln!(
        "fit {} within {} (cap {} tokens)",
        args.model,
        report::format::bytes(settings.budget_bytes() as f64),
        settings.cap
    );
    let mut bars = Bars::new("fit");
    let (fit, info) = search_isolated(&launcher, &job, &mut bars);
    bars.finish();
    print_summary(&fit);
    if let Some(out) = &args.out {
        let doc = FitReport {
            fit: &fit,
            model: info.as_ref(),
            machine: Machine::capture(),
        };
        results::atomic::write(out, &serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(match fit.stopped {
        Some(why) => {
            eprintln!("Error: the search stopped early: {why}");
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    })
}

fn print_summary(fit: &Fit) {
    let mb = |b: f64| report::format::bytes(b);
    println!(
        "{} ({}) within {}: max context {}",
        fit.model,
        fit.dtype,
        mb(fit.budget_bytes as f64),
        fit.describe()
    );
    if let Some(p) = &fit.prediction {
        let weights = p.weight_bytes.map_or("?".into(), |w| mb(w as f64));
        let predicted = match p.max_context {
            Some(m) => format!("{} tokens", results::fit::thousands(m)),
            None => "no limit from the context (a constant state)".into(),
        };
        println!(
            "predicted: {predicted} = (budget − {} fixed [weights {weights}, runtime, a chunk's \
             activations] − {} state) / {:.1} KB per token",
            mb(p.fixed_bytes as f64),
            mb(p.constant_state_bytes as f64),
            p.bytes_per_token / 1024.0
        );
    }
}
