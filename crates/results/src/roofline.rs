//! The machine's roofline (what candle's f32 matmul and the memory system deliver,
//! calibrated at the start of a run) and what each prefill and decode record achieved
//! against it. A comparison between two implementations whose efficiencies differ by
//! much measures the implementations, not the architectures; these figures say so.

use serde::{Deserialize, Serialize};

use crate::model_info::{Arch, ModelInfo};
use crate::record::Metric;

/// One calibrated matmul shape: `(m x k) @ (k x n)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MatmulPoint {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Best of the repetitions.
    pub gflops: f64,
}

/// What the machine can do at most, measured with the run's threads and dtype.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roofline {
    /// Peak of the calibrated matmul shapes: the compute roof of prefill.
    pub matmul_gflops: f64,
    pub matmul: Vec<MatmulPoint>,
    /// Read bandwidth over a buffer far larger than the caches: the roof of decode,
    /// which streams every weight once per token.
    pub read_gb_s: f64,
    pub read_buffer_bytes: u64,
    pub threads: usize,
    pub dtype: String,
    /// Wall time the calibration took.
    pub seconds: f64,
}

/// Which roof a record is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Useful FLOPs per second against [`Roofline::matmul_gflops`].
    Compute,
    /// Bytes that must be read per token against [`Roofline::read_gb_s`].
    Bandwidth,
}

/// What a record's median achieved, and the share of the roof that is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Efficiency {
    pub bound: Bound,
    /// GFLOP/s (compute) or GB/s (bandwidth).
    pub achieved: f64,
    /// `achieved` over the roof, in `[0, 1]` for an honest cost model.
    pub fraction: f64,
    /// The work the figure counts: FLOPs of the prefill, or bytes read by one step.
    pub work: f64,
}

/// Bytes of one weight of a dtype named as in records (ggml block types with their
/// scales: q8_0 is 34 bytes per 32, q4_k 144 per 256).
pub fn dtype_bytes(dtype: &str) -> f64 {
    match dtype {
        "bf16" | "f16" => 2.0,
        "f64" => 8.0,
        "q8_0" => 34.0 / 32.0,
        "q4_k" => 144.0 / 256.0,
        _ => 4.0,
    }
}

/// Parameters a token's dense work multiplies through: everything but the embedding
/// table, which a token only indexes (a tied table is the head, and is multiplied).
fn dense_params(m: &ModelInfo) -> f64 {
    let table = (m.vocab * m.width) as f64;
    let lookup_only = if m.tied_embeddings { 0.0 } else { table };
    (m.params as f64 - lookup_only).max(0.0)
}

/// Head size of every RWKV-7 release: the recurrent state is `width x 64` per layer.
const RWKV_HEAD_SIZE: f64 = 64.0;
/// Multiply-adds and multiplies per state element per token of the WKV-7 update and
/// read-out (`S = S diag(w) + (S a) b^T + v k^T; y = S r`), counted as FLOPs.
const WKV_FLOPS_PER_STATE_ELEMENT: f64 = 9.0;

/// Dense FLOPs per token (two per multiply-add of every weight but the head) and the
/// head's FLOPs once.
fn dense_flops(m: &ModelInfo) -> (f64, f64) {
    let head = (m.vocab * m.width) as f64;
    ((dense_params(m) - head).max(0.0) * 2.0, 2.0 * head)
}

/// Sequence-mixing FLOPs of the token at position `p` (0-based): causal attention's
/// `q k^T` and `a v` over `p + 1` keys (`4 L D (p + 1)`), or the WKV update.
fn mixing_flops(m: &ModelInfo, p: f64) -> f64 {
    let (layers, width) = (m.layers as f64, m.width as f64);
    match m.arch {
        Arch::Transformer => 4.0 * layers * width * (p + 1.0),
        Arch::Rwkv => WKV_FLOPS_PER_STATE_ELEMENT * layers * width * RWKV_HEAD_SIZE,
    }
}

/// Useful FLOPs of a prefill of `t` tokens that returns the last position's logits:
/// every dense weight once per token, the head once, and the sequence mixing (causal
/// attention sums to `2 L D t (t + 1)`). Norms, activations and softmax are left out:
/// a lower bound.
pub fn prefill_flops(m: &ModelInfo, t: usize) -> f64 {
    let (per_token, head) = dense_flops(m);
    let t = t as f64;
    let mixing = match m.arch {
        Arch::Transformer => 2.0 * m.layers as f64 * m.width as f64 * t * (t + 1.0),
        Arch::Rwkv => mixing_flops(m, 0.0) * t,
    };
    per_token * t + head + mixing
}

/// Useful FLOPs of one training step over `tokens` tokens in sequences of `seq_len`:
/// six per dense weight per token (the forward's two, the backward's four: the
/// gradients of the input and of the weight), the head at every position, and the
/// sequence mixing three times (forward, and a backward of twice its work).
pub fn train_flops(m: &ModelInfo, seq_len: usize, tokens: usize) -> f64 {
    let (per_token, head) = dense_flops(m);
    let sequences = (tokens / seq_len.max(1)) as f64;
    let t = seq_len as f64;
    let mixing = match m.arch {
        Arch::Transformer => 2.0 * m.layers as f64 * m.width as f64 * t * (t + 1.0),
        Arch::Rwkv => mixing_flops(m, 0.0) * t,
    };
    3.0 * ((per_token + head) * tokens as f64 + mixing * sequences)
}

/// The efficiency of a training step record (median `ms` over `tokens` tokens in
/// sequences of `seq_len`) against the matmul roof.
pub fn train_efficiency(
    roof: &Roofline,
    model: &ModelInfo,
    seq_len: usize,
    tokens: usize,
    median_ms: f64,
) -> Option<Efficiency> {
    let seconds = median_ms / 1e3;
    if seconds.is_nan() || seconds <= 0.0 {
        return None;
    }
    let work = train_flops(model, seq_len, tokens);
    let per_s = work / seconds;
    Some(Efficiency {
        bound: Bound::Compute,
        achieved: per_s / 1e9,
        fraction: per_s / (roof.matmul_gflops * 1e9),
        work,
    })
}

/// Useful FLOPs of one decode step with `depth` tokens already held.
pub fn step_flops(m: &ModelInfo, depth: usize) -> f64 {
    let (per_token, head) = dense_flops(m);
    per_token + head + mixing_flops(m, depth as f64)
}

/// Bytes a decode step must read at least: every dense weight, and the recurrent state
/// or the KV cache (`state_bytes`, measured in the cell).
pub fn decode_bytes(m: &ModelInfo, state_bytes: f64) -> f64 {
    dense_params(m) * dtype_bytes(&m.dtype) + state_bytes
}

/// The efficiency of a prefill (median `ms` over `seq_len` tokens) or decode step
/// (median `ms`, with `state_bytes` held) record; `None` for other metrics.
pub fn efficiency(
    roof: &Roofline,
    model: &ModelInfo,
    metric: Metric,
    seq_len: usize,
    median_ms: f64,
    state_bytes: Option<f64>,
) -> Option<Efficiency> {
    let seconds = median_ms / 1e3;
    if seconds.is_nan() || seconds <= 0.0 {
        return None;
    }
    let (bound, work, roof_per_s) = match metric {
        Metric::PrefillTime => (
            Bound::Compute,
            prefill_flops(model, seq_len),
            roof.matmul_gflops * 1e9,
        ),
        Metric::DecodeLatency => (
            Bound::Bandwidth,
            decode_bytes(model, state_bytes?),
            roof.read_gb_s * 1e9,
        ),
        _ => return None,
    };
    let per_s = work / seconds;
    Some(Efficiency {
        bound,
        achieved: per_s / 1e9,
        fraction: per_s / roof_per_s,
        work,
    })
}

/// Two efficiencies further apart than this make a comparison one of implementations.
pub const FAIR_EFFICIENCY_RATIO: f64 = 1.5;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_info::Weights;

    #[test]
    fn a_training_step_is_three_forwards_of_every_token() {
        for arch in [Arch::Rwkv, Arch::Transformer] {
            let m = model(arch, false);
            let (per_token, head) = dense_flops(&m);
            // One sequence of 512: the forward of all 512 positions (head at each),
            // three times.
            let forward = prefill_flops(&m, 512) - head + head * 512.0;
            let got = train_flops(&m, 512, 512);
            assert!((got - 3.0 * forward).abs() < 1e-6 * got, "{arch:?}");
            // Same tokens in shorter sequences: the same dense work, less attention.
            let short = train_flops(&m, 128, 512);
            match arch {
                Arch::Rwkv => assert!((short - got).abs() < 1e-6 * got),
                Arch::Transformer => assert!(short < got),
            }
            assert!(got > 6.0 * (per_token / 2.0) * 512.0);
        }
    }

    fn model(arch: Arch, tied: bool) -> ModelInfo {
        ModelInfo {
            spec: "llama:preset=tiny".parse().unwrap(),
            version: None,
            arch,
            implementation: "x".into(),
            description: String::new(),
            params: 10_000_000,
            layers: 4,
            width: 256,
            vocab: 1000,
            dtype: "f32".into(),
            device: "cpu".into(),
            weights: Weights::Random {
                preset: "tiny".into(),
                seed: 0,
            },
            max_seq_len: None,
            tokenizer: None,
            tied_embeddings: tied,
            weight_bytes: None,
        }
    }

    #[test]
    fn prefill_flops_count_dense_work_and_quadratic_attention() {
        let m = model(Arch::Transformer, false);
        let table = 256_000.0;
        let body = 10_000_000.0 - 2.0 * table;
        let f = |t: usize| prefill_flops(&m, t);
        assert_eq!(
            f(100),
            2.0 * body * 100.0 + 2.0 * table + 2.0 * 4.0 * 256.0 * 100.0 * 101.0
        );
        // A step's attention grows with the cache it reads.
        let step = |d: usize| step_flops(&m, d);
        assert_eq!(step(10) - step(0), 4.0 * 4.0 * 256.0 * 10.0);
        // Attention makes the cost per token grow; the recurrence does not.
        assert!(f(8000) / 8000.0 > 1.1 * f(1000) / 1000.0);
        let r = model(Arch::Rwkv, false);
        let per_token = |t: usize| (prefill_flops(&r, t) - 2.0 * table) / t as f64;
        assert!((per_token(8000) - per_token(1000)).abs() < 1e-6);
    }

    #[test]
    fn decode_reads_the_head_but_not_an_untied_table() {
        let untied = decode_bytes(&model(Arch::Rwkv, false), 1000.0);
        assert_eq!(untied, (10_000_000.0 - 256_000.0) * 4.0 + 1000.0);
        let tied = decode_bytes(&model(Arch::Transformer, true), 0.0);
        assert_eq!(tied, 40_000_000.0);
    }

    #[test]
    fn efficiency_against_the_roof() {
        let roof = Roofline {
            matmul_gflops: 100.0,
            matmul: Vec::new(),
            read_gb_s: 20.0,
            read_buffer_bytes: 0,
            threads: 2,
            dtype: "f32".into(),
            seconds: 1.0,
        };
        let m = model(Arch::Rwkv, true);
        let e = efficiency(&roof, &m, Metric::DecodeLatency, 128, 4.0, Some(0.0)).unwrap();
        // 40 MB in 4 ms is 10 GB/s, half the roof.
        assert_eq!(e.bound, Bound::Bandwidth);
        assert!((e.achieved - 10.0).abs() < 1e-9 && (e.fraction - 0.5).abs() < 1e-9);
        assert!(efficiency(&roof, &m, Metric::PeakRss, 128, 4.0, None).is_none());
        assert!(efficiency(&roof, &m, Metric::DecodeLatency, 128, 4.0, None).is_none());
    }
}
