//! `rwkv-bench train`: trains a model on a text corpus or a synthetic task into a run
//! directory, with a progress bar (loss, tokens/s); `--resume` continues a run.

use std::process::ExitCode;

use anyhow::{bail, Context};
use eval::train::{self, checkpoint, Mix, Source, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};
use models::{registry, tokenizer, BuildOptions};
use results::spec::Source as SpecSource;
use results::task::TaskParams;
use results::ModelSpec;

use crate::cli::TrainArgs;
use crate::commands::eval::rerun_with_threads;

/// `KEY=VALUE` settings over the defaults, read as the `[accuracy.params]` of a suite.
fn task_params<'a>(flag: &str, pairs: impl Iterator<Item = &'a str>) -> anyhow::Result<TaskParams> {
    // A later setting of a key replaces an earlier one (a --mix entry over --task-param).
    let mut settings = std::collections::BTreeMap::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            bail!("{flag} {p}: write KEY=VALUE, e.g. mqar_pairs=16");
        };
        settings.insert(k.trim().to_string(), v.trim().to_string());
    }
    let text: String = settings
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{flag}: {}", e.message()))
}

/// The task mixture: one entry per `--mix` (`seq_len=…` and task settings over
/// `--seq-len` and `--task-param`), or the one setting those two give.
fn task_mix(args: &TrainArgs) -> anyhow::Result<Vec<Mix>> {
    let base = || args.task_params.iter().map(String::as_str);
    if args.mix.is_empty() {
        return Ok(vec![Mix {
            seq_len: args.seq_len,
            params: task_params("--task-param", base())?,
        }]);
    }
    args.mix
        .iter()
        .map(|entry| {
            let mut seq_len = args.seq_len;
            let mut settings = Vec::new();
            for part in entry.split(',') {
                match part.trim().strip_prefix("seq_len=") {
                    Some(v) => {
                        seq_len = v.trim().parse().map_err(|_| {
                            anyhow::anyhow!("--mix {entry}: seq_len `{v}` is not a count")
                        })?;
                        if seq_len < 2 {
                            bail!("--mix {entry}: seq_len must be at least 2");
                        }
                    }
                    None => settings.push(part),
                }
            }
            let params = task_params("--mix", base().chain(settings))?;
            Ok(Mix { seq_len, params })
        })
        .collect()
}

pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    if let Some(code) = rerun_with_threads(args.threads)? {
        return Ok(code);
    }
    if args.seq_len < 2 || args.batch == 0 || args.steps == 0 {
        bail!("--seq-len must be at least 2, --batch and --steps at least 1");
    }
    let latest = checkpoint::latest(&args.out)?;
    let resume = match (args.resume, latest) {
        (true, None) => bail!(
            "--resume: {} holds no checkpoint (no `latest` file) to resume from",
            args.out.display()
        ),
        (false, Some(saved)) => bail!(
            "{} already holds a run (checkpoint at step {}): pass --resume to continue it, \
             or choose another --out",
            args.out.display(),
            saved.step
        ),
        (true, Some(saved)) => Some(saved),
        (false, None) => None,
    };
    if let Some(saved) = &resume {
        if saved.step >= args.steps {
            bail!(
                "the run in {} is at step {} already; give --steps beyond it",
                args.out.display(),
                saved.step
            );
        }
    }
    // A resumed run loads its weights from the checkpoint, the tokenizer from the spec.
    let build_spec = match &resume {
        Some(saved) => ModelSpec {
            source: SpecSource::Path(saved.model.clone()),
            ..args.model.clone()
        },
        None => args.model.clone(),
    };
    let opts = BuildOptions {
        seed: args.seed,
        ..BuildOptions::default()
    };
    let model = registry::build_trainable(&build_spec, &opts)?;
    let tok = tokenizer::load(&tokenizer::for_model(&args.model)?)?;
    let source = match (&args.text, args.task) {
        (Some(path), _) => Source::text(path, tok.as_ref(), args.seq_len)?,
        (None, Some(task)) => Source::Task {
            kind: task.into(),
            mix: task_mix(&args)?,
            tokenizer: tok,
            vocab: model.vocab(),
        },
        (None, None) => bail!("give --text PATH or --task NAME"),
    };
    let cfg = TrainConfig {
        model: args.model.to_string(),
        data: source.describe(),
        steps: args.steps,
        batch: args.batch,
        seq_len: args.seq_len,
        lr: args.lr,
        warmup: args.warmup.unwrap_or(args.steps / 10),
        min_lr_ratio: args.min_lr_ratio,
        weight_decay: args.weight_decay,
        beta1: 0.9,
        beta2: 0.99,
        clip: args.clip,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
    };

    let bar = ProgressBar::new(args.steps);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} [{elapsed} < {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_position(resume.as_ref().map_or(0, |s| s.step));
    let outcome = train::train(
        model.as_ref(),
        &source,
        &cfg,
        &args.out,
        resume.as_ref(),
        args.stop_after,
        |s| {
            bar.set_position(s.step);
            bar.set_message(format!(
                "loss {:.4}  |g| {:.2}  lr {:.2e}  {:.0} tok/s",
                s.loss, s.grad_norm, s.lr, s.tokens_per_s
            ));
        },
    );
    bar.finish_and_clear();
    let outcome = outcome.with_context(|| format!("training into {}", args.out.display()))?;
    let from = if outcome.resumed_from > 0 {
        format!(" (resumed at step {})", outcome.resumed_from)
    } else {
        String::new()
    };
    println!(
        "trained to step {}{from}: final loss {:.4}; loss log {}",
        outcome.last.step,
        outcome.final_loss,
        args.out.join("log.jsonl").display()
    );
    println!(
        "checkpoint: {}:{}",
        args.model.implementation,
        outcome.last.model.display()
    );
    Ok(ExitCode::SUCCESS)
}
