//! The report's tables, built once from a results document and rendered by every
//! markup format (Markdown, HTML), so a new column is written in one place.

use results::analysis::{pairs, CrossoverAt};
use results::roofline::FAIR_EFFICIENCY_RATIO;
use results::{Metric, Record, Results};
use serde::Serialize;

use crate::claims::Claim;
use crate::format;

mod dtypes;
mod implementations;
pub use dtypes::{dtype_groups, dtypes};
pub use implementations::implementations;

/// A titled table of display strings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub title: String,
    pub note: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Metrics shown as models x lengths tables, in order.
pub const SHOWN: [Metric; 8] = [
    Metric::PrefillTime,
    Metric::PrefillThroughput,
    Metric::DecodeLatency,
    Metric::PeakRss,
    Metric::StateBytes,
    Metric::TrainStepTime,
    Metric::TrainThroughput,
    Metric::TrainPeakRss,
];

fn lengths(results: &Results) -> Vec<usize> {
    let mut l: Vec<usize> = results.records.iter().map(|r| r.seq_len).collect();
    l.extend(results.failures.iter().map(|f| f.seq_len));
    l.sort_unstable();
    l.dedup();
    l
}

/// What each model is: implementation, parameters, weights, and the tokenizer where
/// accuracy was evaluated.
pub fn models(results: &Results) -> Table {
    let tokenizers = results.models.iter().any(|m| m.tokenizer.is_some());
    let mut header: Vec<String> = ["model", "implementation", "params", "weights"]
        .map(String::from)
        .to_vec();
    if tokenizers {
        header.push("tokenizer".into());
    }
    Table {
        title: "Models".into(),
        note: String::new(),
        header,
        rows: results
            .models
            .iter()
            .map(|m| {
                let what = match &m.version {
                    Some(v) => format!("{} [{v}]", m.description),
                    None => m.description.clone(),
                };
                let mut row = vec![
                    m.spec.to_string(),
                    what,
                    format::params(m.params),
                    m.weights.to_string(),
                ];
                if tokenizers {
                    row.push(m.tokenizer.clone().unwrap_or_else(|| "-".into()));
                }
                row
            })
            .collect(),
    }
}

/// A record's median with its sample count and p10–p90 spread, as every table shows a
/// measured cell.
pub fn measured(r: &Record) -> String {
    if r.samples.len() > 1 {
        format!(
            "{} (n={}, p10–p90 {}–{})",
            format::value(r.unit, r.summary.median),
            r.samples.len(),
            format::value(r.unit, r.summary.p10),
            format::value(r.unit, r.summary.p90)
        )
    } else {
        format!("{} (n=1)", format::value(r.unit, r.summary.median))
    }
}

/// One metric: a row per model, a column per length.
pub fn metric(results: &Results, metric: Metric) -> Option<Table> {
    if !results.records.iter().any(|r| r.metric == metric) {
        return None;
    }
    let lens = lengths(results);
    let note = match metric {
        Metric::DecodeLatency => "Per single-token step at context depth = prompt length",
        Metric::PeakRss => "Of the isolated process that measured the cell",
        Metric::StateBytes => "Recurrent state or KV cache held after the prompt",
        Metric::TrainStepTime | Metric::TrainThroughput => {
            "One optimizer step (forward, backward, clipping, AdamW) at the suite's tokens per \
             step, by sequence length"
        }
        Metric::TrainPeakRss => "Of the isolated process that took the training steps",
        _ => "By prompt length",
    };
    let mut header = vec!["model".to_string()];
    header.extend(lens.iter().map(|&l| format::length(l)));
    let rows = results
        .models
        .iter()
        .map(|m| {
            let mut row = vec![m.spec.to_string()];
            row.extend(lens.iter().map(|&l| {
                let rec = results
                    .records
                    .iter()
                    .find(|r| r.model == m.spec && r.metric == metric && r.seq_len == l);
                let failed = results
                    .failures
                    .iter()
                    .any(|f| f.model == m.spec && f.seq_len == l);
                match rec {
                    Some(r) => measured(r),
                    None if failed => "failed".into(),
                    None => "–".into(),
                }
            }));
            row
        })
        .collect();
    Some(Table {
        title: metric.label().to_string(),
        note: note.into(),
        header,
        rows,
    })
}

/// Fitted exponents of cost vs length.
pub fn scaling(results: &Results) -> Option<Table> {
    let slopes = &results.analysis.slopes;
    (!slopes.is_empty()).then(|| Table {
        title: "Scaling".into(),
        note: "Fitted exponent k of cost ~ length^k (1 = linear, 0 = flat), with its 95 % \
               bootstrap interval over every sample of every process"
            .into(),
        header: ["model", "metric", "k [95 % CI]", "lengths"]
            .map(String::from)
            .to_vec(),
        rows: slopes
            .iter()
            .map(|s| {
                let lens: Vec<String> = s.seq_lens.iter().map(|&l| format::length(l)).collect();
                vec![
                    s.model.to_string(),
                    s.metric.label().into(),
                    match s.ci {
                        Some(ci) => format!("{:.3} [{:.3}, {:.3}]", s.slope, ci.lo, ci.hi),
                        None => format!("{:.3}", s.slope),
                    },
                    lens.join(", "),
                ]
            })
            .collect(),
    })
}

/// Describes where a crossover lies.
pub fn crossover_text(at: CrossoverAt) -> String {
    match at {
        CrossoverAt::CheaperThroughout { from } => {
            format!("cheaper at every length from {}", format::length(from))
        }
        CrossoverAt::Crosses { length, between } => format!(
            "≈ {length:.0} tokens (between {} and {})",
            format::length(between.0),
            format::length(between.1)
        ),
        CrossoverAt::Never { up_to } => format!("not cheaper up to {}", format::length(up_to)),
    }
}

/// Where RWKV becomes cheaper than the transformer, per metric and pair.
pub fn crossovers(results: &Results) -> Option<Table> {
    let c = &results.analysis.crossovers;
    (!c.is_empty()).then(|| Table {
        title: "Crossovers".into(),
        note: "The length from which RWKV (candidate) is cheaper than the transformer \
               (baseline): where the medians cross, and from where every ratio's 95 % \
               interval stays above 1"
            .into(),
        header: [
            "metric",
            "candidate",
            "baseline",
            "crossover",
            "confirmed from",
        ]
        .map(String::from)
        .to_vec(),
        rows: c
            .iter()
            .map(|c| {
                vec![
                    c.metric.label().into(),
                    c.candidate.to_string(),
                    c.baseline.to_string(),
                    crossover_text(c.at),
                    c.confirmed_from
                        .map_or("not confirmed".into(), format::length),
                ]
            })
            .collect(),
    })
}

/// How close each implementation comes to the machine's roofline, per length: a
/// comparison between implementations far apart in efficiency measures them, not
/// their architectures.
pub fn fairness(results: &Results) -> Option<Table> {
    let roof = results.machine.roofline.as_ref()?;
    let measured = |m: Metric| {
        results
            .records
            .iter()
            .any(|r| r.metric == m && r.efficiency.is_some())
    };
    let lens: Vec<usize> = lengths(results);
    let mut rows = Vec::new();
    for (metric, what) in [
        (
            Metric::PrefillTime,
            format!("prefill, % of {:.0} GFLOP/s", roof.matmul_gflops),
        ),
        (
            Metric::DecodeLatency,
            format!("decode, % of {:.1} GB/s", roof.read_gb_s),
        ),
        (
            Metric::TrainStepTime,
            format!("training step, % of {:.0} GFLOP/s", roof.matmul_gflops),
        ),
    ] {
        if !measured(metric) {
            continue;
        }
        for m in &results.models {
            let mut row = vec![m.spec.to_string(), m.implementation_label(), what.clone()];
            row.extend(lens.iter().map(|&l| {
                results
                    .series(&m.spec, metric)
                    .iter()
                    .find(|r| r.seq_len == l)
                    .and_then(|r| r.efficiency)
                    .map_or("–".into(), |e| {
                        let unit = if metric != Metric::DecodeLatency {
                            "GFLOP/s"
                        } else {
                            "GB/s"
                        };
                        format!("{:.0} % ({:.1} {unit})", 100.0 * e.fraction, e.achieved)
                    })
            }));
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return None;
    }
    let mut header: Vec<String> = ["model", "implementation", "measure"]
        .map(String::from)
        .to_vec();
    header.extend(lens.iter().map(|&l| format::length(l)));
    let mut note = format!(
        "Achieved useful FLOP/s (prefill; training: 6 per weight per token plus three times the \
         sequence mixing) or bytes read per token (decode: weights + state or KV cache) against this machine's roofline, calibrated at the start of the run in {:.1} s \
         with {} threads: matmul {:.0} GFLOP/s, read bandwidth {:.1} GB/s. A model that fits in \
         cache can pass 100 % of the DRAM bandwidth",
        roof.seconds, roof.threads, roof.matmul_gflops, roof.read_gb_s
    );
    for w in fairness_warnings(results) {
        note.push_str(". WARNING: ");
        note.push_str(&w);
    }
    Some(Table {
        title: "Fairness".into(),
        note,
        header,
        rows,
    })
}

/// Pairs whose efficiencies differ by more than [`FAIR_EFFICIENCY_RATIO`] at some
/// length, per metric.
pub fn fairness_warnings(results: &Results) -> Vec<String> {
    let mut out = Vec::new();
    let fraction = |spec, metric, len| {
        results
            .series(spec, metric)
            .iter()
            .find(|r| r.seq_len == len)
            .and_then(|r| r.efficiency)
            .map(|e| e.fraction)
    };
    for (c, b) in pairs(&results.models) {
        for (metric, name) in [
            (Metric::PrefillTime, "prefill"),
            (Metric::DecodeLatency, "decode"),
            (Metric::TrainStepTime, "training"),
        ] {
            let apart: Vec<String> = lengths(results)
                .into_iter()
                .filter_map(|l| {
                    let (x, y) = (fraction(&c.spec, metric, l)?, fraction(&b.spec, metric, l)?);
                    let ratio = x.max(y) / x.min(y);
                    (ratio > FAIR_EFFICIENCY_RATIO).then(|| {
                        format!(
                            "{} ({:.0} % vs {:.0} %)",
                            format::length(l),
                            100.0 * x,
                            100.0 * y
                        )
                    })
                })
                .collect();
            if !apart.is_empty() {
                out.push(format!(
                    "{name} efficiency of {} and {} differs by more than {FAIR_EFFICIENCY_RATIO}× at \
                     {}: there the comparison measures the implementations, not the architectures",
                    c.spec,
                    b.spec,
                    apart.join(", ")
                ));
            }
        }
    }
    out
}

/// The claims table.
pub fn claims(claims: &[Claim]) -> Table {
    Table {
        title: "Claims".into(),
        note: "Each claim users bring about RWKV, the figure this run measured, and a verdict"
            .into(),
        header: ["claim", "measured in this run", "verdict"]
            .map(String::from)
            .to_vec(),
        rows: claims
            .iter()
            .map(|c| vec![c.claim.into(), c.measured.clone(), c.verdict_text()])
            .collect(),
    }
}

/// The failed cells.
pub fn failures(results: &Results) -> Option<Table> {
    (!results.failures.is_empty()).then(|| Table {
        title: "Failed cells".into(),
        note: "Recorded, not measured; the suite went on. Only \"over budget\" is an expected \
               outcome; any other fails the run (exit 1)"
            .into(),
        header: ["model", "length", "outcome", "error"]
            .map(String::from)
            .to_vec(),
        rows: results
            .failures
            .iter()
            .map(|f| {
                vec![
                    f.model.to_string(),
                    format::length(f.seq_len),
                    f.kind.label().into(),
                    f.error.clone(),
                ]
            })
            .collect(),
    })
}

/// The longest context each model served within its memory budget, with the memory
/// model's prediction and the probes behind the figure.
pub fn max_context(results: &Results) -> Option<Table> {
    (!results.fits.is_empty()).then(|| Table {
        title: "Maximum context under a memory budget".into(),
        note: "Each probe prefilled a prompt of that length and decoded after it in a \
               process of its own, held to the budget (peak RSS). Predicted: (budget − \
               weights, runtime and a chunk's activations − state) / state bytes per token, \
               fitted to the first probe"
            .into(),
        header: [
            "model",
            "weights",
            "budget",
            "max context",
            "predicted",
            "fixed",
            "per token",
            "probes",
        ]
        .map(String::from)
        .to_vec(),
        rows: results
            .fits
            .iter()
            .map(|f| {
                let p = f.prediction.as_ref();
                let probes: Vec<String> = f
                    .probes
                    .iter()
                    .map(|p| {
                        let mark = match p.outcome {
                            results::fit::ProbeOutcome::Fits => "✓",
                            results::fit::ProbeOutcome::OverBudget => "✗",
                            results::fit::ProbeOutcome::Failed => "failed",
                        };
                        format!("{} {mark}", p.seq_len)
                    })
                    .collect();
                vec![
                    f.model.to_string(),
                    f.dtype.clone(),
                    format::bytes(f.budget_bytes as f64),
                    f.describe(),
                    p.map_or("-".into(), |p| match p.max_context {
                        Some(m) => format!("{} tokens", results::fit::thousands(m)),
                        None => "constant state".into(),
                    }),
                    p.map_or("-".into(), |p| {
                        format::bytes((p.fixed_bytes + p.constant_state_bytes) as f64)
                    }),
                    p.map_or("-".into(), |p| format::bytes(p.bytes_per_token)),
                    probes.join(", "),
                ]
            })
            .collect(),
    })
}

/// The accuracy gates of an evaluation: the go/no-go verdict per task and model.
pub fn gates(results: &Results) -> Option<Table> {
    (!results.gates.is_empty()).then(|| Table {
        title: "Gates".into(),
        note: "Pooled over every length and depth unless a length is named".into(),
        header: [
            "verdict", "model", "task", "length", "metric", "score", "must be",
        ]
        .map(String::from)
        .to_vec(),
        rows: results
            .gates
            .iter()
            .map(|g| {
                vec![
                    if g.passed { "pass" } else { "FAIL" }.into(),
                    g.model.to_string(),
                    g.task.clone(),
                    g.seq_len.map_or("all".into(), format::length),
                    g.metric.label().into(),
                    g.score
                        .map_or("not measured".into(), |s| format!("{s:.3} (n={})", g.n)),
                    g.bound(),
                ]
            })
            .collect(),
    })
}

/// The per-metric tables, in display order.
pub fn metrics(results: &Results) -> Vec<Table> {
    SHOWN.iter().filter_map(|&m| metric(results, m)).collect()
}

/// Whether any model of the run has random weights (accuracy then measures nothing).
pub fn has_random_weights(results: &Results) -> bool {
    results.models.iter().any(|m| m.weights.is_random())
}

const RANDOM_NOTE: &str = "Random-weight models score at chance: these numbers test the \
    pipeline, they are not findings";

/// Accuracy per model, task, length and depth, with the Wilson interval and chance.
pub fn accuracy(results: &Results) -> Option<Table> {
    let mut recs: Vec<&results::Record> = results
        .records
        .iter()
        .filter(|r| matches!(r.metric, Metric::Accuracy | Metric::AccuracyNorm))
        .collect();
    if recs.is_empty() {
        return None;
    }
    recs.sort_by(|a, b| {
        (&a.model, &a.task.task, a.task.pairs, a.metric, a.seq_len)
            .cmp(&(&b.model, &b.task.task, b.task.pairs, b.metric, b.seq_len))
            .then(
                a.task
                    .depth
                    .unwrap_or(0.0)
                    .total_cmp(&b.task.depth.unwrap_or(0.0)),
            )
    });
    let ll = |r: &results::Record| {
        results
            .records
            .iter()
            .find(|o| {
                o.metric == Metric::AnswerLogLikelihood
                    && o.model == r.model
                    && o.seq_len == r.seq_len
                    && o.task.task == r.task.task
                    && o.task.pairs == r.task.pairs
                    && o.task.depth == r.task.depth
            })
            .map_or("–".to_string(), |o| format!("{:.2}", o.summary.mean))
    };
    let mut note = "Exact match of the greedy continuation (task files: choice by \
        log-likelihood); 95 % Wilson interval; answer log-likelihood in nats per token"
        .to_string();
    if has_random_weights(results) {
        note = format!("{RANDOM_NOTE}. {note}");
    }
    Some(Table {
        title: "Accuracy".into(),
        note,
        header: [
            "model",
            "task",
            "length",
            "depth",
            "accuracy",
            "95 % interval",
            "chance",
            "answer LL",
        ]
        .map(String::from)
        .to_vec(),
        rows: recs
            .iter()
            .map(|r| {
                let k: f64 = r.samples.iter().sum();
                let task = r.task.task.clone().unwrap_or_default();
                let task = match r.task.pairs {
                    Some(k) => format!("{task} ({k} pairs)"),
                    None => task,
                };
                let task = if r.metric == Metric::AccuracyNorm {
                    format!("{task} (acc_norm)")
                } else {
                    task
                };
                vec![
                    r.model.to_string(),
                    task,
                    format::length(r.seq_len),
                    r.task
                        .depth
                        .map_or("–".into(), |d| format!("{:.0} %", d * 100.0)),
                    format!(
                        "{:.1} % ({k:.0}/{})",
                        r.summary.mean * 100.0,
                        r.samples.len()
                    ),
                    r.task.wilson.map_or("–".into(), |w| {
                        format!("{:.1}–{:.1} %", w.lo * 100.0, w.hi * 100.0)
                    }),
                    r.task.chance.map_or("–".into(), |c| {
                        if c < 1e-3 {
                            "≈ 0 %".into()
                        } else {
                            format!("{:.1} %", c * 100.0)
                        }
                    }),
                    ll(r),
                ]
            })
            .collect(),
    })
}

/// Bits per byte per model, corpus and window, and the loss by position of the longest
/// window.
pub fn perplexity(results: &Results) -> Option<Table> {
    let mut recs: Vec<&results::Record> = results
        .records
        .iter()
        .filter(|r| matches!(r.metric, Metric::BitsPerByte | Metric::LossByPosition))
        .collect();
    if recs.is_empty() {
        return None;
    }
    recs.sort_by(|a, b| {
        (&a.model, &a.task.task, a.metric, a.seq_len).cmp(&(
            &b.model,
            &b.task.task,
            b.metric,
            b.seq_len,
        ))
    });
    let mut note = "Bits per byte with windows of each length; loss (nats/token) of the \
        tokens whose window position is below the bucket's end"
        .to_string();
    if has_random_weights(results) {
        note = format!("{RANDOM_NOTE}. {note}");
    }
    Some(Table {
        title: "Perplexity".into(),
        note,
        header: [
            "model",
            "corpus",
            "metric",
            "window / position",
            "value",
            "documents",
        ]
        .map(String::from)
        .to_vec(),
        rows: recs
            .iter()
            .map(|r| {
                vec![
                    r.model.to_string(),
                    r.task.task.clone().unwrap_or_default(),
                    r.metric.label().into(),
                    match r.metric {
                        Metric::LossByPosition => format!("< {}", format::length(r.seq_len)),
                        _ => format::length(r.seq_len),
                    },
                    format::value(r.unit, r.summary.mean),
                    r.samples.len().to_string(),
                ]
            })
            .collect(),
    })
}
