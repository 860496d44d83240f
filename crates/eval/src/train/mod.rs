//! The training loop of `rwkv-bench train`: AdamW with warm-up and cosine decay,
//! gradient clipping by global norm, a seeded batch per step, a JSON-lines loss log
//! and atomic checkpoints that `--resume` continues from, optimizer state included.
//! A non-finite loss or gradient stops the run with an error naming the step; the
//! last good checkpoint stays.

pub mod checkpoint;
pub mod data;
pub mod schedule;

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use candle_nn::ParamsAdamW;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};
use models::trainable::{Differentiable, Stepper};

pub use checkpoint::Saved;
pub use data::{Mix, Source};
pub use schedule::Schedule;

/// Everything that decides the run's numbers; `run.json` records it and `--resume`
/// refuses a run directory made with different settings (other than `steps`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The model spec the run started from.
    pub model: String,
    /// What the batches come from (`text, N tokens` / `task mqar`), for the record.
    pub data: String,
    pub steps: u64,
    pub batch: usize,
    pub seq_len: usize,
    pub lr: f64,
    pub warmup: u64,
    /// The final learning rate as a fraction of `lr`.
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Global gradient-norm clip.
    pub clip: f64,
    pub seed: u64,
    pub checkpoint_every: u64,
}

impl TrainConfig {
    pub fn schedule(&self) -> Schedule {
        Schedule {
            peak: self.lr,
            warmup: self.warmup,
            total: self.steps,
            floor: self.min_lr_ratio,
        }
    }

    pub fn adamw(&self) -> ParamsAdamW {
        ParamsAdamW {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: 1e-8,
            weight_decay: self.weight_decay,
        }
    }
}

/// One line of `log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    /// Before clipping.
    pub grad_norm: f64,
    /// Tokens in this step's batch.
    pub tokens: usize,
    /// Forward + backward + clipping + AdamW.
    pub seconds: f64,
    pub tokens_per_s: f64,
}

/// How a run ended.
pub struct Outcome {
    /// The step the run resumed from (0 for a fresh run).
    pub resumed_from: u64,
    pub last: Saved,
    pub final_loss: f64,
}

/// Trains `model` (already holding the weights of `resume`, when given) into `out`,
/// up to `cfg.steps`, or to `stop_after` (a checkpoint there, as if interrupted: a
/// time-limited job resumes later with the same schedule). `on_step` sees every
/// step's log line (the CLI draws its progress bar from it).
pub fn train(
    model: &dyn Differentiable,
    source: &Source,
    cfg: &TrainConfig,
    out: &Path,
    resume: Option<&Saved>,
    stop_after: Option<u64>,
    mut on_step: impl FnMut(&StepLog),
) -> Result<Outcome> {
    let end = stop_after.map_or(cfg.steps, |s| s.min(cfg.steps));
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_run_json(out, cfg, resume.is_some())?;
    let mut stepper = Stepper::new(model, cfg.adamw(), cfg.clip)?;
    let start = match resume {
        Some(saved) => {
            stepper
                .optimizer_mut()
                .load_state(checkpoint::optimizer_state(saved)?)?;
            saved.step
        }
        None => 0,
    };
    let log_path = out.join("log.jsonl");
    truncate_log(&log_path, start)?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(&log_path, e))?;
    let schedule = cfg.schedule();
    let mut last = match resume {
        Some(s) => s.clone(),
        None => checkpoint::save(model, stepper.optimizer(), out, 0)?,
    };
    let mut final_loss = f64::NAN;
    for step in start + 1..=end {
        let batch = source.batch(step, cfg.batch, cfg.seq_len, cfg.seed)?;
        let lr = schedule.rate(step);
        let t0 = Instant::now();
        let (loss, grad_norm) = stepper.step(&batch.tokens, batch.weights.as_ref(), lr)?;
        let seconds = t0.elapsed().as_secs_f64();
        if !loss.is_finite() || !grad_norm.is_finite() {
            let what = if loss.is_finite() {
                "gradient norm"
            } else {
                "loss"
            };
            return Err(Error::Training(format!(
                "step {step}: the {what} is not finite ({}); stopped. The last good checkpoint \
                 is {} (step {}); lower --lr or --clip and resume from it",
                if loss.is_finite() { grad_norm } else { loss },
                last.dir.display(),
                last.step
            )));
        }
        let tokens = batch.tokens.elem_count();
        let entry = StepLog {
            step,
            loss,
            lr,
            grad_norm,
            tokens,
            seconds,
            tokens_per_s: tokens as f64 / seconds,
        };
        let line = serde_json::to_string(&entry).map_err(|e| Error::Training(e.to_string()))?;
        writeln!(log, "{line}").map_err(|e| Error::io(&log_path, e))?;
        on_step(&entry);
        final_loss = loss;
        if step % cfg.checkpoint_every.max(1) == 0 || step == end {
            log.flush().map_err(|e| Error::io(&log_path, e))?;
            last = checkpoint::save(model, stepper.optimizer(), out, step)?;
        }
    }
    Ok(Outcome {
        resumed_from: start,
        last,
        final_loss,
    })
}

/// Records the settings; a resumed run must match them in everything but `steps`.
fn write_run_json(out: &Path, cfg: &TrainConfig, resuming: bool) -> Result<()> {
    let path = out.join("run.json");
    if resuming {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let before: TrainConfig = serde_json::from_str(&text).map_err(|e| {
            Error::Training(format!("{}: malformed run settings: {e}", path.display()))
        })?;
        let same = TrainConfig {
            steps: cfg.steps,
            model: cfg.model.clone(),
            ..before.clone()
        };
        if same != *cfg {
            return Err(Error::Training(format!(
                "{}: the run was started with other settings ({}); resume with the same \
                 ones (only --steps may change)",
                path.display(),
                serde_json::to_string(&before).unwrap_or_default()
            )));
        }
    }
    let text = serde_json::to_vec_pretty(cfg).map_err(|e| Error::Training(e.to_string()))?;
    results::atomic::write(&path, &text)?;
    Ok(())
}

/// Keeps the log lines of steps up to `step`: the steps after the checkpoint a run
/// resumes from are run again.
fn truncate_log(path: &Path, step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<StepLog>(l)
                .map(|e| e.step <= step)
                .unwrap_or(false)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    results::atomic::write(path, kept.as_bytes())?;
    Ok(())
}
