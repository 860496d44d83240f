//! The claims users bring about RWKV, each with the figure this run measured for it and
//! a verdict. Computed from a results document only, so every figure is a measurement
//! of that run.

use results::analysis::pairs;
use results::{Metric, ModelSpec, Results};
use serde::Serialize;

use crate::format;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Supported,
    NotSupported,
    NotMeasured,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::NotSupported => "not supported",
            Verdict::NotMeasured => "not measured in this run",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub claim: &'static str,
    pub measured: String,
    pub verdict: Verdict,
}

/// Decode cost "flat": the longest depth costs at most this much more than the shortest.
const FLAT: f64 = 1.10;
/// The length from which speed-ups are claimed to be pronounced.
const LONG: usize = 4096;
const EDGE_BUDGET: f64 = 8.0 * (1u64 << 30) as f64;

/// The first (candidate, baseline) pair of the run, by architecture: the pair the
/// claims are judged on.
fn pair(results: &Results) -> Option<(&ModelSpec, &ModelSpec)> {
    pairs(&results.models)
        .first()
        .map(|(c, b)| (&c.spec, &b.spec))
}

/// `(shortest length, median), (longest length, median)` of a model's metric.
fn ends(
    results: &Results,
    model: &ModelSpec,
    metric: Metric,
) -> Option<((usize, f64), (usize, f64))> {
    let s = results.series(model, metric);
    let (a, b) = (s.first()?, s.last()?);
    (s.len() >= 2).then_some(((a.seq_len, a.summary.median), (b.seq_len, b.summary.median)))
}

fn not_measured(claim: &'static str, why: &str) -> Claim {
    Claim {
        claim,
        measured: why.to_string(),
        verdict: Verdict::NotMeasured,
    }
}

fn decode_constant(results: &Results) -> Claim {
    const CLAIM: &str =
        "RWKV decode cost is constant per token; a transformer's grows with its KV cache";
    let Some((r, t)) = pair(results) else {
        return not_measured(CLAIM, "needs one RWKV and one transformer model");
    };
    let (Some(rw), Some(tr)) = (
        ends(results, r, Metric::DecodeLatency),
        ends(results, t, Metric::DecodeLatency),
    ) else {
        return not_measured(CLAIM, "needs decode latency at two or more depths");
    };
    let (((d0, r0), (d1, r1)), ((_, t0), (_, t1))) = (rw, tr);
    let (rg, tg) = (r1 / r0, t1 / t0);
    let ms = |v| format::value(results::Unit::MsPerToken, v);
    Claim {
        claim: CLAIM,
        measured: format!(
            "depth {} → {}: RWKV {} → {} ({rg:.2}×), transformer {} → {} ({tg:.2}×)",
            format::length(d0),
            format::length(d1),
            ms(r0),
            ms(r1),
            ms(t0),
            ms(t1)
        ),
        verdict: if rg <= FLAT && tg > FLAT {
            Verdict::Supported
        } else {
            Verdict::NotSupported
        },
    }
}

fn memory_constant(results: &Results) -> Claim {
    const CLAIM: &str = "RWKV memory is constant in sequence length; a KV cache grows linearly";
    let Some((r, t)) = pair(results) else {
        return not_measured(CLAIM, "needs one RWKV and one transformer model");
    };
    let (Some(((l0, rs0), (l1, rs1))), Some(((_, ts0), (_, ts1)))) = (
        ends(results, r, Metric::StateBytes),
        ends(results, t, Metric::StateBytes),
    ) else {
        return not_measured(CLAIM, "needs state bytes at two or more lengths");
    };
    let peak = ends(results, r, Metric::PeakRss)
        .map(|((_, a), (_, b))| {
            format!(
                "; RWKV peak RSS {} → {}",
                format::bytes(a),
                format::bytes(b)
            )
        })
        .unwrap_or_default();
    let length_ratio = l1 as f64 / l0 as f64;
    let kv_growth = ts1 / ts0;
    Claim {
        claim: CLAIM,
        measured: format!(
            "{} → {} tokens: RWKV state {} → {}, KV cache {} → {} ({kv_growth:.1}× for {length_ratio:.1}× tokens){peak}",
            format::length(l0),
            format::length(l1),
            format::bytes(rs0),
            format::bytes(rs1),
            format::bytes(ts0),
            format::bytes(ts1)
        ),
        verdict: if rs0 == rs1 && (kv_growth / length_ratio - 1.0).abs() < 0.1 {
            Verdict::Supported
        } else {
            Verdict::NotSupported
        },
    }
}

fn long_speedup(results: &Results) -> Claim {
    const CLAIM: &str = "speed-ups become pronounced beyond ~4k tokens";
    let Some((r, t)) = pair(results) else {
        return not_measured(CLAIM, "needs one RWKV and one transformer model");
    };
    let at_long = |metric| {
        results
            .analysis
            .speedups
            .iter()
            .filter(|s| {
                s.metric == metric && s.candidate == *r && s.baseline == *t && s.seq_len >= LONG
            })
            .max_by_key(|s| s.seq_len)
    };
    let (prefill, decode) = (at_long(Metric::PrefillTime), at_long(Metric::DecodeLatency));
    if prefill.is_none() && decode.is_none() {
        return not_measured(CLAIM, "no length of 4k tokens or more was measured");
    }
    let describe = |name: &str, s: Option<&results::analysis::Speedup>| {
        s.map(|s| format!("{name} {:.2}× at {}", s.ratio, format::length(s.seq_len)))
    };
    let parts: Vec<String> = [describe("prefill", prefill), describe("decode", decode)]
        .into_iter()
        .flatten()
        .collect();
    let faster = [prefill, decode].iter().flatten().all(|s| s.ratio > 1.0);
    Claim {
        claim: CLAIM,
        measured: format!("transformer time / RWKV time: {}", parts.join(", ")),
        verdict: if faster {
            Verdict::Supported
        } else {
            Verdict::NotSupported
        },
    }
}

fn fits_edge(results: &Results) -> Claim {
    const CLAIM: &str = "RWKV fits edge devices under 8 GB";
    let Some(r) = results
        .models
        .iter()
        .find(|m| m.arch.constant_state())
        .map(|m| &m.spec)
    else {
        return not_measured(CLAIM, "no RWKV model in this run");
    };
    let Some(last) = results.series(r, Metric::PeakRss).last().copied() else {
        return not_measured(CLAIM, "peak memory was not measured");
    };
    let peak = last.summary.median;
    Claim {
        claim: CLAIM,
        measured: format!(
            "peak RSS {} at {} tokens ({}, {})",
            format::bytes(peak),
            format::length(last.seq_len),
            r,
            results.settings.dtype
        ),
        verdict: if peak < EDGE_BUDGET {
            Verdict::Supported
        } else {
            Verdict::NotSupported
        },
    }
}

/// Pooled exact-match accuracy of a model on a task: (hits, trials).
fn pooled(results: &Results, model: &ModelSpec, task: &str) -> Option<(usize, usize)> {
    let samples: Vec<f64> = results
        .records
        .iter()
        .filter(|r| {
            r.model == *model
                && r.metric == Metric::Accuracy
                && r.task.task.as_deref() == Some(task)
        })
        .flat_map(|r| r.samples.iter().copied())
        .collect();
    (!samples.is_empty()).then(|| (samples.iter().filter(|&&x| x > 0.5).count(), samples.len()))
}

fn recall(results: &Results) -> Claim {
    const CLAIM: &str = "RWKV underperforms on some reasoning/recall tasks";
    let with_accuracy = |constant: bool| {
        results
            .models
            .iter()
            .filter(|m| m.arch.constant_state() == constant)
            .find(|m| {
                results
                    .records
                    .iter()
                    .any(|r| r.model == m.spec && r.metric == Metric::Accuracy)
            })
    };
    if !results.records.iter().any(|r| r.metric == Metric::Accuracy) {
        return not_measured(CLAIM, "no accuracy records in this run");
    }
    let (Some(r), Some(t)) = (with_accuracy(true), with_accuracy(false)) else {
        return not_measured(
            CLAIM,
            "needs accuracy records (rwkv-bench eval) for one RWKV and one transformer model",
        );
    };
    let mut tasks: Vec<&str> = results
        .records
        .iter()
        .filter(|x| x.model == r.spec && x.metric == Metric::Accuracy)
        .filter_map(|x| x.task.task.as_deref())
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    let mut parts = Vec::new();
    let mut worse = false;
    for task in tasks {
        let (Some((rk, rn)), Some((tk, tn))) = (
            pooled(results, &r.spec, task),
            pooled(results, &t.spec, task),
        ) else {
            continue;
        };
        let (ri, ti) = (
            results::stats::wilson_interval(rk, rn, results::stats::CONFIDENCE),
            results::stats::wilson_interval(tk, tn, results::stats::CONFIDENCE),
        );
        // Worse only when the intervals do not overlap.
        worse |= ri.hi < ti.lo;
        parts.push(format!(
            "{task}: RWKV {:.0} % vs transformer {:.0} %",
            100.0 * rk as f64 / rn as f64,
            100.0 * tk as f64 / tn as f64
        ));
    }
    if parts.is_empty() {
        return not_measured(CLAIM, "no task was evaluated on both architectures");
    }
    let random = [r, t].iter().any(|m| m.weights.is_random());
    if random {
        return not_measured(
            CLAIM,
            &format!(
                "{} — random weights score at chance: not a finding; evaluate trained checkpoints",
                parts.join("; ")
            ),
        );
    }
    Claim {
        claim: CLAIM,
        measured: format!("pooled over lengths and depths: {}", parts.join("; ")),
        verdict: if worse {
            Verdict::Supported
        } else {
            Verdict::NotSupported
        },
    }
}

/// Every claim, in the order of DESIGN.md's table.
pub fn claims(results: &Results) -> Vec<Claim> {
    vec![
        decode_constant(results),
        memory_constant(results),
        long_speedup(results),
        not_measured(
            "training costs 40–60 % less",
            "no training suite in this run (forward+backward is not measured yet)",
        ),
        recall(results),
        fits_edge(results),
    ]
}
