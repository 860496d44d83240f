//! Predicting a cell's wall time from a short probe, so that a cell which cannot
//! finish within its timeout is refused in seconds instead of running until killed.

use results::roofline::{prefill_flops, step_flops};
use results::suite::Sampling;
use results::ModelInfo;

/// A timed prompt and decode step at a short length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    pub tokens: usize,
    pub prefill_s: f64,
    /// One decode step right after the probe's prompt.
    pub step_s: f64,
}

/// Above this prediction a warm-up-based estimate is refined with a longer probe:
/// short prompts pay fixed per-call costs that overstate the per-token cost.
pub const REFINE_ABOVE_S: f64 = 30.0;
/// The refining probe is this many times the warm-up.
pub const REFINE_FACTOR: usize = 8;

/// Timed prompt runs the cell will make: the loop of [`super::cell::run_cell`] stops
/// after `repetitions`, or before the next run would pass the time budget.
pub(crate) fn repetitions(sampling: &Sampling, prefill_s: f64) -> usize {
    let budget = sampling.max_seconds_per_cell;
    let mut k = 1;
    while k < sampling.repetitions && (k + 1) as f64 * prefill_s <= budget {
        k += 1;
    }
    k
}

/// Seconds the rest of a cell of `seq_len` tokens will take (its timed prompts and
/// decode steps), scaling the probe by the model's FLOPs (attention's quadratic term
/// included), with the reasoning in words.
pub fn predict(
    model: &ModelInfo,
    probe: Probe,
    seq_len: usize,
    sampling: &Sampling,
    decode: bool,
) -> (f64, String) {
    let scale = prefill_flops(model, seq_len) / prefill_flops(model, probe.tokens.max(1));
    let prefill = probe.prefill_s * scale;
    let reps = repetitions(sampling, prefill);
    let steps = if decode {
        sampling.decode_warmup + sampling.decode_tokens
    } else {
        0
    };
    let step = probe.step_s * step_flops(model, seq_len) / step_flops(model, probe.tokens.max(1));
    let seconds = reps as f64 * prefill + steps as f64 * step;
    let rate = probe.tokens as f64 / probe.prefill_s;
    let basis = format!(
        "{reps} prompt run(s) of {seq_len} tokens at ≈ {prefill:.1} s each, scaled by FLOPs from a \
         {}-token probe at {rate:.0} tokens/s; {steps} decode steps at ≈ {:.1} ms",
        probe.tokens,
        step * 1e3
    );
    (seconds, basis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use results::{Arch, Weights};

    fn model(arch: Arch) -> ModelInfo {
        ModelInfo {
            spec: "rwkv7:preset=tiny".parse().unwrap(),
            version: None,
            arch,
            implementation: "x".into(),
            description: String::new(),
            params: 1_000_000,
            layers: 4,
            width: 128,
            vocab: 512,
            dtype: "f32".into(),
            device: "cpu".into(),
            weights: Weights::Random {
                preset: "tiny".into(),
                seed: 0,
            },
            max_seq_len: None,
            tokenizer: None,
            tied_embeddings: false,
            weight_bytes: None,
        }
    }

    #[test]
    fn a_hundred_million_tokens_from_a_64_token_probe() {
        let probe = Probe {
            tokens: 64,
            prefill_s: 0.002,
            step_s: 0.0005,
        };
        let s = Sampling::default();
        let (secs, basis) = predict(&model(Arch::Rwkv), probe, 100_000_000, &s, true);
        // Linear for RWKV: 1.56M times the probe, once (the budget stops more runs).
        assert!((2500.0..4000.0).contains(&secs), "{secs} {basis}");
        assert!(
            basis.contains("1 prompt run(s) of 100000000 tokens"),
            "{basis}"
        );
        // Attention's quadratic term makes the transformer's prediction far larger.
        let (t, _) = predict(&model(Arch::Transformer), probe, 100_000_000, &s, true);
        assert!(t > 100.0 * secs, "{t}");
    }

    #[test]
    fn repetitions_follow_the_time_budget() {
        let s = Sampling {
            repetitions: 5,
            max_seconds_per_cell: 10.0,
            ..Sampling::default()
        };
        assert_eq!(repetitions(&s, 1.0), 5);
        assert_eq!(repetitions(&s, 4.0), 2);
        assert_eq!(repetitions(&s, 60.0), 1);
    }
}
