//! The claims users bring about RWKV, each with the figure this run measured for it and
//! a verdict. Computed from a results document only, so every figure is a measurement
//! of that run.

use results::analysis::{pairs, Speedup};
use results::fit::Fit;
use results::stats::{difference_interval, needed_to_decide, Interval, CONFIDENCE};
use results::{Metric, ModelInfo, ModelSpec, Results};
use serde::Serialize;

use crate::format;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Supported,
    NotSupported,
    /// The interval straddles the threshold: this run cannot tell.
    Inconclusive,
    NotMeasured,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::NotSupported => "not supported",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotMeasured => "not measured in this run",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub claim: &'static str,
    pub measured: String,
    pub verdict: Verdict,
    /// For an inconclusive verdict: how much more measurement would decide it.
    pub to_decide: Option<String>,
}

impl Claim {
    /// The verdict with what would decide it, for tables.
    pub fn verdict_text(&self) -> String {
        match &self.to_decide {
            Some(more) => format!("{}: {more}", self.verdict.label()),
            None => self.verdict.label().into(),
        }
    }
}

/// A cost is constant in length when its log-log slope lies within ±`FLAT_SLOPE`:
/// 10^0.05 = 1.12× per tenfold length. A KV cache's decode cost at the default shapes
/// grows with a slope of 0.15–0.3, and process placement moves a flat cost by less.
const FLAT_SLOPE: f64 = 0.05;
/// A prefill is at most linear in length below this slope (26 % per tenfold length
/// beyond linear): fixed per-call costs pull short prompts' slope below 1, and
/// attention's quadratic term pushes a transformer's above.
const LINEAR_SLOPE: f64 = 1.10;
/// The length from which speed-ups are claimed to be pronounced.
const LONG: usize = 4096;
/// A speed-up is pronounced from 1.5×: a saving that changes a capacity plan, and more
/// than tuning one implementation (threads, chunk sizes) typically buys.
const PRONOUNCED: f64 = 1.5;
/// RWKV "underperforms" on a task when the transformer's accuracy is higher by an
/// interval that excludes 0; it does not when the interval of the gap lies below this
/// many points (a gap a task file of a few hundred items cannot resolve anyway).
const RECALL_MARGIN: f64 = 0.05;
/// "Training costs 40–60 % less": a transformer step at least 1/(1 - 0.4) = 1.67× an
/// RWKV step, and at most 1/(1 - 0.6) = 2.5× within the claimed range.
const TRAIN_SAVING: (f64, f64) = (1.0 / 0.6, 2.5);
const EDGE_BUDGET: f64 = 8.0 * (1u64 << 30) as f64;

/// Where an interval lies against a threshold: `Some(true)` wholly above,
/// `Some(false)` wholly below, `None` straddling it.
fn above(ci: Interval, threshold: f64) -> Option<bool> {
    if ci.lo > threshold {
        Some(true)
    } else if ci.hi < threshold {
        Some(false)
    } else {
        None
    }
}

/// Combines conditions that must all hold: false if any is false, undecided if any is.
fn all(conditions: &[Option<bool>]) -> Option<bool> {
    if conditions.contains(&Some(false)) {
        Some(false)
    } else if conditions.contains(&None) {
        None
    } else {
        Some(true)
    }
}

/// An undecided condition: the estimate, its interval, the threshold it straddles, and
/// how many processes (or trials) stand behind it.
struct Open {
    estimate: f64,
    ci: Interval,
    threshold: f64,
    n: usize,
}

/// The verdict of conditions that must all hold, with what would decide the open ones.
fn decide(holds: Option<bool>, open: &[Open], unit: &str) -> (Verdict, Option<String>) {
    match holds {
        Some(true) => (Verdict::Supported, None),
        Some(false) => (Verdict::NotSupported, None),
        None => {
            let needed: Option<Vec<usize>> = open
                .iter()
                .map(|o| needed_to_decide(o.estimate, o.ci, o.threshold, o.n))
                .collect();
            let now = open.iter().map(|o| o.n).max().unwrap_or(1);
            let more = match needed.and_then(|v| v.into_iter().max()) {
                Some(n) if n > now => format!(
                    "about {n} {unit} (this run: {now}) would decide it, if the spread stays as it is"
                ),
                _ => "an estimate sits on the threshold: more samples will not decide it".into(),
            };
            (Verdict::Inconclusive, Some(more))
        }
    }
}

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
        to_decide: None,
    }
}

/// A model's fitted slope of a metric, with its interval (degenerate for files written
/// before intervals).
fn slope(results: &Results, model: &ModelSpec, metric: Metric) -> Option<(f64, Interval, usize)> {
    let s = results
        .analysis
        .slopes
        .iter()
        .find(|s| s.model == *model && s.metric == metric && s.seq_lens.len() >= 2)?;
    let ci = s.ci.unwrap_or(Interval {
        lo: s.slope,
        hi: s.slope,
        level: CONFIDENCE,
    });
    Some((s.slope, ci, s.processes))
}

fn slope_text(name: &str, (k, ci, _): (f64, Interval, usize)) -> String {
    format!("{name} {k:.3} [{:.3}, {:.3}]", ci.lo, ci.hi)
}

/// The threshold of `[-flat, flat]` an interval crosses.
fn nearer_edge(ci: Interval, flat: f64) -> f64 {
    if ci.hi >= flat {
        flat
    } else {
        -flat
    }
}

fn decode_constant(results: &Results) -> Claim {
    const CLAIM: &str =
        "RWKV decode cost is constant per token; a transformer's grows with its KV cache";
    let Some((r, t)) = pair(results) else {
        return not_measured(CLAIM, "needs one RWKV and one transformer model");
    };
    let metric = Metric::DecodeLatency;
    let (Some(rs), Some(ts), Some(((d0, r0), (d1, r1))), Some(((_, t0), (_, t1)))) = (
        slope(results, r, metric),
        slope(results, t, metric),
        ends(results, r, metric),
        ends(results, t, metric),
    ) else {
        return not_measured(CLAIM, "needs decode latency at two or more depths");
    };
    let (rk, rci, rn) = rs;
    let (tk, tci, tn) = ts;
    // Flat: the interval lies inside (-FLAT, FLAT); not flat: wholly outside it.
    let rwkv_flat = match (above(rci, FLAT_SLOPE), above(rci, -FLAT_SLOPE)) {
        (Some(false), Some(true)) => Some(true),
        (Some(true), _) | (_, Some(false)) => Some(false),
        _ => None,
    };
    let grows = above(tci, FLAT_SLOPE);
    let mut open = Vec::new();
    if rwkv_flat.is_none() {
        open.push(Open {
            estimate: rk,
            ci: rci,
            threshold: nearer_edge(rci, FLAT_SLOPE),
            n: rn,
        });
    }
    if grows.is_none() {
        open.push(Open {
            estimate: tk,
            ci: tci,
            threshold: FLAT_SLOPE,
            n: tn,
        });
    }
    let (verdict, to_decide) = decide(all(&[rwkv_flat, grows]), &open, "processes per cell");
    let ms = |v| format::value(results::Unit::MsPerToken, v);
    Claim {
        claim: CLAIM,
        measured: format!(
            "slope of ms/token vs depth (flat within ±{FLAT_SLOPE}): {}, {}; depth {} → {}: \
             RWKV {} → {}, transformer {} → {}",
            slope_text("RWKV", rs),
            slope_text("transformer", ts),
            format::length(d0),
            format::length(d1),
            ms(r0),
            ms(r1),
            ms(t0),
            ms(t1)
        ),
        verdict,
        to_decide,
    }
}

fn prefill_linear(results: &Results) -> Claim {
    const CLAIM: &str =
        "RWKV prefill cost grows linearly with length; a transformer's faster (attention is quadratic)";
    let Some((r, t)) = pair(results) else {
        return not_measured(CLAIM, "needs one RWKV and one transformer model");
    };
    let metric = Metric::PrefillTime;
    let (Some(rs), Some(ts)) = (slope(results, r, metric), slope(results, t, metric)) else {
        return not_measured(CLAIM, "needs prefill time at two or more lengths");
    };
    // "Faster" is judged against RWKV's own slope, not against a fixed line: at
    // 0.1B and up to 8k tokens attention's quadratic term is a small part of a
    // prefill, so the transformer's slope sits near any fixed threshold (1.07 to 1.15
    // in ten runs) while it stays clearly above RWKV's (0.95 to 0.99).
    let linear = above(rs.1, LINEAR_SLOPE).map(|a| !a);
    let faster = if ts.1.lo > rs.1.hi {
        Some(true)
    } else if ts.1.hi < rs.1.lo {
        Some(false)
    } else {
        None
    };
    let open: Vec<Open> = [(linear, rs, LINEAR_SLOPE), (faster, ts, rs.0)]
        .into_iter()
        .filter(|(c, _, _)| c.is_none())
        .map(|(_, (estimate, ci, n), threshold)| Open {
            estimate,
            ci,
            threshold,
            n,
        })
        .collect();
    let (verdict, to_decide) = decide(all(&[linear, faster]), &open, "processes per cell");
    Claim {
        claim: CLAIM,
        measured: format!(
            "slope of prefill time vs length (linear up to {LINEAR_SLOPE}, the transformer's \
             interval above RWKV's): {}, {}",
            slope_text("RWKV", rs),
            slope_text("transformer", ts)
        ),
        verdict,
        to_decide,
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
        to_decide: None,
    }
}

fn long_speedup(results: &Results) -> Claim {
    const CLAIM: &str = "speed-ups become pronounced beyond ~4k tokens";
    let Some((r, t)) = pair(results) else {
        return not_measured(CLAIM, "needs one RWKV and one transformer model");
    };
    let long = |metric| -> Vec<&Speedup> {
        let mut v: Vec<&Speedup> = results
            .analysis
            .speedups
            .iter()
            .filter(|s| {
                s.metric == metric && s.candidate == *r && s.baseline == *t && s.seq_len >= LONG
            })
            .collect();
        v.sort_by_key(|s| s.seq_len);
        v
    };
    let (prefill, decode) = (long(Metric::PrefillTime), long(Metric::DecodeLatency));
    if prefill.is_empty() && decode.is_empty() {
        return not_measured(CLAIM, "no length of 4k tokens or more was measured");
    }
    let ci = |s: &Speedup| {
        s.ci.unwrap_or(Interval {
            lo: s.ratio,
            hi: s.ratio,
            level: CONFIDENCE,
        })
    };
    // RWKV faster at every length from 4k, and by a pronounced margin at the longest.
    let mut conditions = Vec::new();
    let mut open = Vec::new();
    let mut parts = Vec::new();
    for (name, series) in [("prefill", &prefill), ("decode", &decode)] {
        for (i, s) in series.iter().enumerate() {
            let longest = i + 1 == series.len();
            let threshold = if longest { PRONOUNCED } else { 1.0 };
            let c = above(ci(s), threshold);
            conditions.push(c);
            if c.is_none() {
                open.push(Open {
                    estimate: s.ratio,
                    ci: ci(s),
                    threshold,
                    n: s.processes,
                });
            }
            parts.push(format!(
                "{name} {:.2}× [{:.2}, {:.2}] at {}",
                s.ratio,
                ci(s).lo,
                ci(s).hi,
                format::length(s.seq_len)
            ));
        }
    }
    let (verdict, to_decide) = decide(all(&conditions), &open, "processes per cell");
    Claim {
        claim: CLAIM,
        measured: format!(
            "transformer time / RWKV time (faster above 1 from 4k, pronounced above \
             {PRONOUNCED} at the longest): {}",
            parts.join(", ")
        ),
        verdict,
        to_decide,
    }
}

fn train_cheaper(results: &Results) -> Claim {
    const CLAIM: &str = "training costs 40–60 % less";
    let Some((r, t)) = pair(results) else {
        return not_measured(CLAIM, "needs one RWKV and one transformer model");
    };
    let mut steps: Vec<&Speedup> = results
        .analysis
        .speedups
        .iter()
        .filter(|s| s.metric == Metric::TrainStepTime && s.candidate == *r && s.baseline == *t)
        .collect();
    if steps.is_empty() {
        return not_measured(
            CLAIM,
            "no training cells in this run (`[measure] train = true`, e.g. suites/train.toml)",
        );
    }
    steps.sort_by_key(|s| s.seq_len);
    let ci = |s: &Speedup| {
        s.ci.unwrap_or(Interval {
            lo: s.ratio,
            hi: s.ratio,
            level: CONFIDENCE,
        })
    };
    let (low, high) = TRAIN_SAVING;
    let parts: Vec<String> = steps
        .iter()
        .map(|s| {
            format!(
                "{} {:.2}× [{:.2}, {:.2}]",
                format::length(s.seq_len),
                s.ratio,
                ci(s).lo,
                ci(s).hi
            )
        })
        .collect();
    // The shortest length from which every longer one saves at least 40 %.
    let from = steps
        .iter()
        .rposition(|s| ci(s).lo <= low)
        .map_or(Some(0), |i| (i + 1 < steps.len()).then_some(i + 1))
        .map(|i| steps[i].seq_len);
    let longest = steps[steps.len() - 1];
    let holds = above(ci(longest), low);
    let open: Vec<Open> = match holds {
        None => vec![Open {
            estimate: longest.ratio,
            ci: ci(longest),
            threshold: low,
            n: longest.processes,
        }],
        _ => Vec::new(),
    };
    let (verdict, to_decide) = decide(holds, &open, "processes per cell");
    // RWKV's step costs this much less (or more) than the transformer's.
    let saving = |ratio: f64| {
        let less = 100.0 * (1.0 - 1.0 / ratio);
        if less >= 0.0 {
            format!("{less:.0} % less")
        } else {
            format!("{:.0} % more", -less)
        }
    };
    let range = if ci(longest).lo > high {
        format!(
            "; more than claimed (over 60 % less) at {}",
            format::length(longest.seq_len)
        )
    } else {
        String::new()
    };
    let from = match from {
        Some(l) => format!("at least 40 % less from {}", format::length(l)),
        None => "not 40 % less at any length measured".into(),
    };
    let tokens = format!(
        " at {} tokens per step",
        results.suite.config.train.tokens_per_step
    );
    Claim {
        claim: CLAIM,
        measured: format!(
            "transformer step time / RWKV step time{tokens} (40–60 % less = {low:.2}× to \
             {high:.1}×): {}; {from}{range} ({} at the longest)",
            parts.join(", "),
            saving(longest.ratio)
        ),
        verdict,
        to_decide,
    }
}

/// A max-context search and the model it measured.
type FitOf<'a> = (&'a Fit, &'a ModelInfo);

/// The largest model of each architecture that served a context within 8 GB, and that
/// context: `(RWKV, transformer)`, the larger by parameters (then by context).
fn edge_fits(results: &Results) -> (Option<FitOf<'_>>, Option<FitOf<'_>>) {
    let best = |constant: bool| {
        results
            .fits
            .iter()
            .filter(|f| f.budget_bytes as f64 <= EDGE_BUDGET && f.max_context.is_some())
            .filter_map(|f| {
                let m = results.models.iter().find(|m| m.spec == f.model)?;
                (m.arch.constant_state() == constant).then_some((f, m))
            })
            .max_by_key(|(f, m)| (m.params, f.max_context))
    };
    (best(true), best(false))
}

fn describe_fit(f: &Fit, m: &ModelInfo) -> String {
    format!(
        "{} ({} params, {}): {} within {}",
        f.model,
        format::params(m.params),
        f.dtype,
        f.describe(),
        format::bytes(f.budget_bytes as f64)
    )
}

fn fits_edge(results: &Results) -> Claim {
    const CLAIM: &str = "RWKV fits edge devices under 8 GB";
    if results
        .fits
        .iter()
        .any(|f| f.budget_bytes as f64 <= EDGE_BUDGET)
    {
        let (rwkv, transformer) = edge_fits(results);
        let other = transformer.map_or("no transformer fitted".into(), |(f, m)| {
            format!("transformer: {}", describe_fit(f, m))
        });
        return match rwkv {
            Some((f, m)) => Claim {
                claim: CLAIM,
                measured: format!(
                    "largest RWKV that fits: {}; {other} (a long context is {} tokens)",
                    describe_fit(f, m),
                    format::length(LONG)
                ),
                verdict: if f.max_context.is_some_and(|c| c >= LONG) {
                    Verdict::Supported
                } else {
                    Verdict::NotSupported
                },
                to_decide: None,
            },
            None => Claim {
                claim: CLAIM,
                measured: format!("no RWKV model fitted 8 GB at any context; {other}"),
                verdict: Verdict::NotSupported,
                to_decide: None,
            },
        };
    }
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
            "peak RSS {} at {} tokens ({}, {}); only this model and length — a \
             `measure.max_context` search (suites/edge.toml) judges the largest model and \
             context that fit",
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
        to_decide: None,
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
    let mut worse = Vec::new();
    let mut open = Vec::new();
    for task in tasks {
        let (Some((rk, rn)), Some((tk, tn))) = (
            pooled(results, &r.spec, task),
            pooled(results, &t.spec, task),
        ) else {
            continue;
        };
        let (pr, pt) = (rk as f64 / rn as f64, tk as f64 / tn as f64);
        let gap = difference_interval((tk, tn), (rk, rn), CONFIDENCE);
        // Worse: the transformer's lead excludes 0; not worse: it stays under the margin.
        let task_worse = match (above(gap, 0.0), above(gap, RECALL_MARGIN)) {
            (Some(true), _) => Some(true),
            (_, Some(false)) => Some(false),
            _ => None,
        };
        if task_worse.is_none() {
            let estimate = pt - pr;
            open.push(Open {
                estimate,
                ci: gap,
                threshold: if estimate > RECALL_MARGIN / 2.0 {
                    0.0
                } else {
                    RECALL_MARGIN
                },
                n: rn.min(tn),
            });
        }
        worse.push(task_worse);
        parts.push(format!(
            "{task}: RWKV {:.0} % vs transformer {:.0} % (gap {:+.0} points [{:+.0}, {:+.0}], n = {rn}/{tn})",
            100.0 * pr,
            100.0 * pt,
            100.0 * (pt - pr),
            100.0 * gap.lo,
            100.0 * gap.hi
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
    // Supported by one task where RWKV is worse; refuted only when no task leaves doubt.
    let holds = if worse.contains(&Some(true)) {
        Some(true)
    } else if worse.iter().all(|w| *w == Some(false)) {
        Some(false)
    } else {
        None
    };
    let (verdict, to_decide) = decide(holds, &open, "trials per task");
    Claim {
        claim: CLAIM,
        measured: format!(
            "pooled over lengths and depths (not worse: gap under {:.0} points): {}",
            100.0 * RECALL_MARGIN,
            parts.join("; ")
        ),
        verdict,
        to_decide,
    }
}

/// Every claim, in the order of DESIGN.md's table.
pub fn claims(results: &Results) -> Vec<Claim> {
    vec![
        decode_constant(results),
        prefill_linear(results),
        memory_constant(results),
        long_speedup(results),
        train_cheaper(results),
        recall(results),
        fits_edge(results),
    ]
}
