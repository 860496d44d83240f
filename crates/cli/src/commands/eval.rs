//! `rwkv-bench eval`: accuracy across lengths (synthetic tasks, task files, perplexity)
//! from a suite's `[accuracy]` section or from flags; writes results.json (after every
//! cell, so `--resume` can pick up an interrupted run) and the report, prints the
//! accuracy tables and the gates. Exit 0 = every gate passed, 1 = a gate failed (or an
//! error), 2 = unusable input.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use eval::{run_eval, EvalOptions};
use report::export::markdown::table;
use report::tables;
use results::accuracy::{AccuracyConfig, CorpusConfig, Gate, TaskFileConfig};
use results::suite::{Dtype, Limits, Measure, Sampling, Suite, SuiteConfig};
use results::{Metric, Results};
use speed::measure::{resolve_threads, THREADS_ENV};

use crate::cli::EvalArgs;
use crate::progress::Bars;

/// `TASK=SCORE` from `--min`.
fn parse_min(s: &str) -> anyhow::Result<Gate> {
    let (task, min) = s
        .split_once('=')
        .with_context(|| format!("--min `{s}`: expected TASK=SCORE, e.g. passkey=0.9"))?;
    let min: f64 = min
        .trim()
        .parse()
        .ok()
        .filter(|m: &f64| m.is_finite())
        .with_context(|| format!("--min `{s}`: `{min}` is not a number"))?;
    Ok(Gate {
        task: task.trim().to_string(),
        model: None,
        metric: Metric::Accuracy,
        seq_len: None,
        min: Some(min),
        max: None,
    })
}

/// The suite from flags alone.
fn one_off(args: &EvalArgs) -> anyhow::Result<SuiteConfig> {
    if args.model.is_empty() {
        bail!("give a suite file, or --model SPEC with --task, --task-file or --text");
    }
    if args.task.is_empty() && args.task_file.is_empty() && args.text.is_empty() {
        bail!("--model needs something to evaluate: --task, --task-file or --text");
    }
    if args.lengths.is_empty() && !(args.task.is_empty() && args.text.is_empty()) {
        bail!("--task and --text need --lengths, e.g. --lengths 1k,4k");
    }
    Ok(SuiteConfig {
        name: "eval".into(),
        description: "one-off `rwkv-bench eval`".into(),
        models: Vec::new(),
        seq_lens: Vec::new(),
        dtype: Dtype::F32,
        threads: 0,
        seed: 0,
        measure: Measure {
            prefill: false,
            decode: false,
            memory: false,
            train: false,
            max_context: false,
            dtype_cost: false,
        },
        sampling: Sampling::default(),
        limits: Limits::default(),
        train: Default::default(),
        fit: Default::default(),
        dtype_cost: Default::default(),
        accuracy: Some(AccuracyConfig::default()),
        python: None,
    })
}

/// Applies the flags to a suite (loaded or one-off). Returns whether anything changed.
fn apply_flags(config: &mut SuiteConfig, args: &EvalArgs) -> anyhow::Result<bool> {
    let acc = config.accuracy.get_or_insert_with(AccuracyConfig::default);
    let before = (
        config.models.clone(),
        config.seq_lens.clone(),
        config.seed,
        config.dtype,
        config.threads,
        acc.clone(),
    );
    if !args.model.is_empty() {
        config.models = args.model.clone();
    }
    if !args.lengths.is_empty() {
        config.seq_lens = args.lengths.clone();
    }
    if !args.task.is_empty() {
        acc.tasks = args.task.iter().map(|&t| t.into()).collect();
    }
    acc.task_files
        .extend(args.task_file.iter().map(|p| TaskFileConfig {
            path: p.clone(),
            name: None,
        }));
    acc.corpora.extend(args.text.iter().map(|p| CorpusConfig {
        path: p.clone(),
        name: None,
    }));
    if let Some(n) = args.examples {
        acc.params.examples = n;
    }
    if !args.depths.is_empty() {
        acc.params.depths = args.depths.clone();
    }
    for m in &args.min {
        acc.gates.push(parse_min(m)?);
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let Some(d) = args.dtype {
        config.dtype = d.into();
    }
    if let Some(n) = args.threads {
        config.threads = n;
    }
    let acc = config.accuracy.clone().unwrap_or_default();
    Ok(before
        != (
            config.models.clone(),
            config.seq_lens.clone(),
            config.seed,
            config.dtype,
            config.threads,
            acc,
        ))
}

/// Evaluation runs in this process, whose compute threads come from `RAYON_NUM_THREADS`
/// (rayon reads it once, when its pool starts). When it is not the suite's count, this
/// runs the same command again in a child that has it, as `run` does for every cell,
/// and returns the child's exit code.
pub(crate) fn rerun_with_threads(threads: usize) -> anyhow::Result<Option<ExitCode>> {
    let want = resolve_threads(threads).to_string();
    if std::env::var(THREADS_ENV).ok().as_deref() == Some(want.as_str()) {
        return Ok(None);
    }
    let exe = std::env::current_exe().context("finding this program to rerun it")?;
    let status = Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(THREADS_ENV, &want)
        .status()
        .with_context(|| format!("running {} with {want} threads", exe.display()))?;
    // A child killed by a signal has no code: report failure.
    let code = status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1);
    Ok(Some(ExitCode::from(code)))
}

fn print_tables(results: &Results) {
    let mut out = String::new();
    for t in [tables::accuracy(results), tables::perplexity(results)]
        .into_iter()
        .flatten()
    {
        table(&mut out, &t);
    }
    println!("{out}");
    for m in results.models.iter().filter(|m| m.weights.is_random()) {
        println!(
            "note: {} has random weights: its scores are chance level, not findings \
             (evaluate a trained checkpoint for accuracy)",
            m.spec
        );
    }
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let (path, mut config, source) = match &args.suite {
        Some(path) => {
            let suite = Suite::load(path)?;
            (path.clone(), suite.config, Some(suite.source))
        }
        None => (PathBuf::from("<command line>"), one_off(&args)?, None),
    };
    let changed = apply_flags(&mut config, &args)?;
    let suite = match source {
        Some(source) if !changed => Suite::parse(&path, source)?,
        _ => Suite::from_config(&path, config)?,
    };
    if let Some(code) = rerun_with_threads(suite.config.threads)? {
        return Ok(code);
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("reports").join(&suite.config.name));
    let opts = EvalOptions {
        results: out.join("results.json"),
        resume: args.resume,
    };
    let mut bars = Bars::new("eval");
    let results = run_eval(&suite, &opts, &mut bars);
    bars.finish();
    let results = results?;
    let written = report::write_report(&results, &out)
        .with_context(|| format!("writing the report into {}", out.display()))?;

    print_tables(&results);
    println!(
        "wrote {}, {} and {}",
        opts.results.display(),
        written.html.display(),
        written.markdown.display()
    );
    if !results.failures.is_empty() {
        println!(
            "{} cells failed (see above); the others were recorded",
            results.failures.len()
        );
    }
    let gates = &results.gates;
    if gates.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = 0;
    println!("\ngates:");
    for g in gates {
        let score = g.score.map_or("not measured".to_string(), |s| {
            format!("{s:.3} (n={})", g.n)
        });
        let at = g.seq_len.map(|l| format!(" @ {l}")).unwrap_or_default();
        println!(
            "  {} {} {}{at} {}: {score}, must be {}",
            if g.passed { "pass" } else { "FAIL" },
            g.model,
            g.task,
            g.metric.label(),
            g.bound()
        );
        failed += usize::from(!g.passed);
    }
    if failed > 0 {
        eprintln!("Error: {failed} of {} gates failed", gates.len());
        return Ok(ExitCode::from(1));
    }
    println!("all {} gates passed", gates.len());
    Ok(ExitCode::SUCCESS)
}
