//! The child side of a cell: build the model, warm up, time prompts and decode steps,
//! read memory. Runs inside the isolated process, so peak RSS is this cell's alone.

use std::time::Instant;

use rand::{rngs::SmallRng, Rng, SeedableRng};

use super::estimate::{predict, Probe, REFINE_ABOVE_S, REFINE_FACTOR};
use super::rss::{current_rss_bytes, peak_rss_bytes};
use super::{CellEvent, CellOutcome, CellPlan, Phase};
use models::{registry, CausalLm, Result};

/// Prompt tokens: uniform over the vocabulary, seeded (speed does not depend on them).
pub fn prompt_tokens(vocab: usize, len: usize, seed: u64) -> Vec<u32> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x70c3_5eed);
    (0..len)
        .map(|_| rng.random_range(0..vocab as u32))
        .collect()
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Times a prompt of `tokens` and one decode step after it (the warm-up, and the
/// probe the cell's time is predicted from).
fn time_probe(
    model: &mut dyn CausalLm,
    prompt: &[u32],
    continuation: &[u32],
    tokens: usize,
) -> Result<Probe> {
    model.reset()?;
    let t = Instant::now();
    model.prefill(&prompt[..tokens])?;
    let prefill_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    model.step(continuation.first().copied().unwrap_or(0))?;
    Ok(Probe {
        tokens,
        prefill_s,
        step_s: t.elapsed().as_secs_f64(),
    })
}

/// Measures one cell, reporting progress through `emit`.
pub fn run_cell(plan: &CellPlan, emit: &mut dyn FnMut(CellEvent)) -> Result<CellOutcome> {
    if plan.measure.train {
        return super::train::run_train_cell(plan, emit);
    }
    let progress = |phase, done, total| CellEvent::Progress { phase, done, total };
    let s = plan.sampling;
    emit(progress(Phase::Load, 0, 1));
    let opts = plan.build_options();
    let t = Instant::now();
    let mut model = registry::build(&plan.model, &opts)?;
    let load_ms = ms_since(t);
    let rss_after_load = current_rss_bytes(std::process::id()).unwrap_or(0);
    let extra = s.decode_warmup + s.decode_tokens;
    let tokens = prompt_tokens(model.info().vocab, plan.seq_len + extra, plan.seed);
    let (prompt, continuation) = tokens.split_at(plan.seq_len);

    emit(progress(Phase::Warmup, 0, 1));
    let warmup = s.warmup_tokens.clamp(1, plan.seq_len);
    let mut probe = time_probe(model.as_mut(), prompt, continuation, warmup)?;
    let mut estimate = predict(model.info(), probe, plan.seq_len, &s, plan.measure.decode);
    let longer = warmup * REFINE_FACTOR;
    if estimate.0 > REFINE_ABOVE_S && longer < plan.seq_len {
        probe = time_probe(model.as_mut(), prompt, continuation, longer)?;
        estimate = predict(model.info(), probe, plan.seq_len, &s, plan.measure.decode);
    }
    emit(CellEvent::Estimate {
        seconds: estimate.0,
        basis: estimate.1,
    });

    // Prompt runs until `repetitions` or the time budget; the last leaves the state at
    // depth `seq_len` for the decode measurement.
    let mut prefill_ms = Vec::with_capacity(s.repetitions);
    let budget_ms = s.max_seconds_per_cell * 1e3;
    for i in 0..s.repetitions {
        emit(progress(Phase::Prefill, i, s.repetitions));
        model.reset()?;
        let t = Instant::now();
        model.prefill(prompt)?;
        prefill_ms.push(ms_since(t));
        let spent: f64 = prefill_ms.iter().sum();
        let next = prefill_ms.iter().copied().fold(0.0, f64::max);
        if spent + next > budget_ms {
            break;
        }
    }
    let state_bytes = model.state_bytes() as u64;

    let mut decode_ms = Vec::with_capacity(s.decode_tokens);
    if plan.measure.decode {
        for (i, &token) in continuation.iter().enumerate() {
            emit(progress(Phase::Decode, i, extra));
            let t = Instant::now();
            model.step(token)?;
            if i >= s.decode_warmup {
                decode_ms.push(ms_since(t));
            }
        }
    }
    Ok(CellOutcome {
        info: model.info().clone(),
        threads: candle_core::utils::get_num_threads(),
        load_ms,
        prefill_ms,
        decode_ms,
        state_bytes,
        rss_after_load,
        peak_rss: peak_rss_bytes(),
        train_step_ms: Vec::new(),
        train_tokens: 0,
    })
}
