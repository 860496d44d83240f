//! The child side of a training cell: build the model as trainable variables, take
//! warm-up optimizer steps, then time steps (forward, backward, clipping, AdamW) at the
//! suite's tokens per step, in sequences of the cell's length. Runs inside the
//! isolated process, so peak RSS is this training step's alone.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::ParamsAdamW;

use super::cell::prompt_tokens;
use super::rss::{current_rss_bytes, peak_rss_bytes};
use super::{CellEvent, CellOutcome, CellPlan, Phase};
use models::trainable::Stepper;
use models::{registry, Result};

/// Measures one training cell, reporting progress through `emit`.
pub fn run_train_cell(plan: &CellPlan, emit: &mut dyn FnMut(CellEvent)) -> Result<CellOutcome> {
    let progress = |phase, done, total| CellEvent::Progress { phase, done, total };
    let t = plan.train;
    emit(progress(Phase::Load, 0, 1));
    let opts = plan.build_options();
    let started = Instant::now();
    let model = registry::build_trainable(&plan.model, &opts)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let rss_after_load = current_rss_bytes(std::process::id()).unwrap_or(0);

    let batch = (t.tokens_per_step / plan.seq_len).max(1);
    let tokens = prompt_tokens(model.vocab(), batch * plan.seq_len, plan.seed);
    let tokens = Tensor::from_vec(tokens, (batch, plan.seq_len), &Device::Cpu)?;
    let params = ParamsAdamW {
        lr: t.lr,
        ..ParamsAdamW::default()
    };
    let mut stepper = Stepper::new(model.as_ref(), params, 1.0)?;

    emit(progress(Phase::Warmup, 0, t.warmup_steps.max(1)));
    let mut slowest = 0f64;
    for _ in 0..t.warmup_steps {
        let started = Instant::now();
        stepper.step(&tokens, None, t.lr)?;
        slowest = slowest.max(started.elapsed().as_secs_f64());
    }
    if t.warmup_steps > 0 {
        emit(CellEvent::Estimate {
            seconds: slowest * t.steps as f64,
            basis: format!("{} timed steps of the warm-up's {slowest:.1} s", t.steps),
        });
    }

    let budget_ms = plan.sampling.max_seconds_per_cell * 1e3;
    let mut step_ms: Vec<f64> = Vec::with_capacity(t.steps);
    for i in 0..t.steps {
        emit(progress(Phase::Train, i, t.steps));
        let started = Instant::now();
        stepper.step(&tokens, None, t.lr)?;
        step_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let spent: f64 = step_ms.iter().sum();
        let next = step_ms.iter().copied().fold(0.0, f64::max);
        if spent + next > budget_ms {
            break;
        }
    }
    Ok(CellOutcome {
        info: model.info().clone(),
        threads: candle_core::utils::get_num_threads(),
        load_ms,
        prefill_ms: Vec::new(),
        decode_ms: Vec::new(),
        state_bytes: 0,
        rss_after_load,
        peak_rss: peak_rss_bytes(),
        train_step_ms: step_ms,
        train_tokens: batch * plan.seq_len,
    })
}
