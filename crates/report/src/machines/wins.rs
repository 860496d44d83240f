//! Where RWKV wins, on which hardware: for every machine, time metric and (RWKV,
//! transformer) pair, the speed-ups by length and a verdict read off their 95 %
//! intervals the way the single-run report reads a crossover — a side is faster from
//! the shortest length at which every interval up to the longest lies on its side of 1,
//! and while the longest length's interval contains 1 the run cannot tell.

use results::analysis::{confirmed_from, Crossover, CrossoverAt, Speedup};
use results::stats::{needed_to_decide, Interval, CONFIDENCE};
use results::{Metric, ModelSpec};
use serde::Serialize;

use results::fit::thousands;

use super::Machines;

/// The metrics judged: those whose ratio is a speed-up (time, not memory).
pub const METRICS: [Metric; 3] = [
    Metric::PrefillTime,
    Metric::DecodeLatency,
    Metric::TrainStepTime,
];

/// Which side is faster, and from where.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Every speed-up's interval lies above 1 from `from` to the longest length;
    /// `throughout` when `from` is the shortest length measured.
    RwkvFaster { from: usize, throughout: bool },
    /// Every speed-up's interval lies below 1 from `from` to the longest length.
    TransformerFaster { from: usize, throughout: bool },
    /// The longest length's interval contains 1: why, and what would decide it.
    Inconclusive { why: String },
}

/// One row of the table: a pair compared on one metric on one machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WinRow {
    /// The machine's label (its id and threads).
    pub machine: String,
    pub threads: String,
    pub metric: Metric,
    pub candidate: ModelSpec,
    pub baseline: ModelSpec,
    /// `candidate (dtype) vs baseline (dtype)`.
    pub pair: String,
    /// Baseline time / candidate time by length, shortest first.
    pub speedups: Vec<Speedup>,
    pub crossover: Crossover,
    pub outcome: Outcome,
}

/// A speed-up's interval; degenerate where none was computed.
pub fn interval(s: &Speedup) -> Interval {
    s.ci.unwrap_or(Interval {
        lo: s.ratio,
        hi: s.ratio,
        level: CONFIDENCE,
    })
}

/// Judges a pair's speed-ups (non-empty, shortest length first).
pub fn judge(speedups: &[Speedup], crossover: &Crossover) -> Outcome {
    let (Some(first), Some(last)) = (speedups.first(), speedups.last()) else {
        return Outcome::Inconclusive {
            why: "no length measured on both sides".into(),
        };
    };
    let intervals: Vec<(usize, Interval)> =
        speedups.iter().map(|s| (s.seq_len, interval(s))).collect();
    if let Some(from) = confirmed_from(&intervals) {
        return Outcome::RwkvFaster {
            from,
            throughout: from == first.seq_len,
        };
    }
    // The transformer's side is the same test on the inverse ratio.
    let inverse: Vec<(usize, Interval)> = intervals
        .iter()
        .map(|&(l, ci)| {
            (
                l,
                Interval {
                    lo: 1.0 / ci.hi,
                    hi: 1.0 / ci.lo,
                    level: ci.level,
                },
            )
        })
        .collect();
    if let Some(from) = confirmed_from(&inverse) {
        return Outcome::TransformerFaster {
            from,
            throughout: from == first.seq_len,
        };
    }
    let ci = interval(last);
    let crossing = match crossover.at {
        CrossoverAt::Crosses { length, .. } => format!(
            " (the medians cross at ≈ {} tokens)",
            thousands(length.round() as usize)
        ),
        _ => String::new(),
    };
    let n = last.processes;
    let more = match needed_to_decide(last.ratio, ci, 1.0, n) {
        Some(needed) if needed > n => format!(
            "about {needed} processes per cell (this run: {n}) would decide it, if the spread \
             stays as it is"
        ),
        _ => "the estimate sits on 1: more samples will not decide it".into(),
    };
    Outcome::Inconclusive {
        why: format!(
            "the 95 % interval at {} tokens, {:.2}× to {:.2}×, contains 1{crossing}; {more}",
            thousands(last.seq_len),
            ci.lo,
            ci.hi
        ),
    }
}

impl WinRow {
    /// The verdict in words.
    pub fn verdict(&self) -> String {
        let range = match (self.speedups.first(), self.speedups.last()) {
            (Some(a), Some(b)) if a.seq_len != b.seq_len => {
                format!(
                    "{} to {} tokens",
                    thousands(a.seq_len),
                    thousands(b.seq_len)
                )
            }
            (Some(a), _) => format!("{} tokens", thousands(a.seq_len)),
            _ => String::new(),
        };
        match &self.outcome {
            Outcome::RwkvFaster {
                throughout: true, ..
            } => format!("RWKV faster at every length measured ({range})"),
            Outcome::RwkvFaster { from, .. } => {
                format!("RWKV faster from {} tokens", thousands(*from))
            }
            Outcome::TransformerFaster {
                throughout: true, ..
            } => format!("transformer faster at every length measured ({range})"),
            Outcome::TransformerFaster { from, .. } => {
                format!("transformer faster from {} tokens", thousands(*from))
            }
            Outcome::Inconclusive { why } => format!("inconclusive: {why}"),
        }
    }
}

/// Every row: by machine (in id order), then metric (prefill, decode, training), then
/// pair (in the order the runs listed the models).
pub fn rows(machines: &Machines) -> Vec<WinRow> {
    let mut rows = Vec::new();
    for m in &machines.machines {
        let threads = super::group::threads_text(&m.threads);
        for metric in METRICS {
            for c in m.analysis.crossovers.iter().filter(|c| c.metric == metric) {
                let mut speedups: Vec<Speedup> = m
                    .analysis
                    .speedups
                    .iter()
                    .filter(|s| {
                        s.metric == metric && s.candidate == c.candidate && s.baseline == c.baseline
                    })
                    .cloned()
                    .collect();
                speedups.sort_by_key(|s| s.seq_len);
                if speedups.is_empty() {
                    continue;
                }
                let side = |spec: &ModelSpec| match m.model(spec) {
                    Some(info) => format!("{spec} ({})", info.dtype),
                    None => spec.to_string(),
                };
                rows.push(WinRow {
                    machine: m.label.clone(),
                    threads: threads.clone(),
                    metric,
                    pair: format!("{} vs {}", side(&c.candidate), side(&c.baseline)),
                    candidate: c.candidate.clone(),
                    baseline: c.baseline.clone(),
                    outcome: judge(&speedups, c),
                    speedups,
                    crossover: c.clone(),
                });
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use results::analysis::crossover;

    fn spec(s: &str) -> ModelSpec {
        s.parse().expect("a spec")
    }

    /// Speed-ups of one pair at `(length, ratio, lo, hi)` and their crossover.
    fn series(points: &[(usize, f64, f64, f64)]) -> (Vec<Speedup>, Crossover) {
        let speedups: Vec<Speedup> = points
            .iter()
            .map(|&(seq_len, ratio, lo, hi)| Speedup {
                metric: Metric::DecodeLatency,
                candidate: spec("rwkv7:preset=tiny"),
                baseline: spec("llama:preset=tiny"),
                seq_len,
                ratio,
                ci: Some(Interval {
                    lo,
                    hi,
                    level: CONFIDENCE,
                }),
                processes: 2,
            })
            .collect();
        let ratios: Vec<(usize, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
        let intervals: Vec<(usize, Interval)> =
            speedups.iter().map(|s| (s.seq_len, interval(s))).collect();
        let c = Crossover {
            metric: Metric::DecodeLatency,
            candidate: spec("rwkv7:preset=tiny"),
            baseline: spec("llama:preset=tiny"),
            at: crossover(&ratios).expect("points"),
            confirmed_from: confirmed_from(&intervals),
        };
        (speedups, c)
    }

    fn verdict(points: &[(usize, f64, f64, f64)]) -> (Outcome, String) {
        let (speedups, crossover) = series(points);
        let outcome = judge(&speedups, &crossover);
        let row = WinRow {
            machine: "m".into(),
            threads: "2 threads".into(),
            metric: Metric::DecodeLatency,
            candidate: crossover.candidate.clone(),
            baseline: crossover.baseline.clone(),
            pair: String::new(),
            speedups,
            crossover,
            outcome: outcome.clone(),
        };
        (outcome, row.verdict())
    }

    #[test]
    fn rwkv_faster_from_where_every_interval_stays_above_one() {
        let (o, text) = verdict(&[
            (256, 0.8, 0.7, 0.9),
            (1024, 1.1, 0.95, 1.3),
            (4096, 1.6, 1.4, 1.8),
            (16384, 3.0, 2.5, 3.5),
        ]);
        assert_eq!(
            o,
            Outcome::RwkvFaster {
                from: 4096,
                throughout: false
            }
        );
        assert_eq!(text, "RWKV faster from 4,096 tokens");
        let (_, text) = verdict(&[(256, 1.2, 1.1, 1.3), (1024, 1.5, 1.3, 1.7)]);
        assert_eq!(
            text,
            "RWKV faster at every length measured (256 to 1,024 tokens)"
        );
    }

    #[test]
    fn transformer_faster_is_the_mirror_test() {
        let (o, text) = verdict(&[(256, 0.5, 0.4, 0.6), (1024, 0.6, 0.5, 0.7)]);
        assert_eq!(
            o,
            Outcome::TransformerFaster {
                from: 256,
                throughout: true
            }
        );
        assert_eq!(
            text,
            "transformer faster at every length measured (256 to 1,024 tokens)"
        );
        let (_, text) = verdict(&[(256, 1.0, 0.8, 1.2), (1024, 0.6, 0.5, 0.7)]);
        assert_eq!(text, "transformer faster from 1,024 tokens");
    }

    #[test]
    fn an_interval_containing_one_at_the_longest_length_is_inconclusive() {
        let (o, text) = verdict(&[(256, 0.5, 0.4, 0.6), (4096, 1.1, 0.9, 1.3)]);
        assert!(matches!(o, Outcome::Inconclusive { .. }), "{o:?}");
        assert!(
            text.starts_with("inconclusive: the 95 % interval at 4,096 tokens, 0.90× to 1.30×"),
            "{text}"
        );
        assert!(text.contains("the medians cross at ≈"), "{text}");
        assert!(text.contains("processes per cell (this run: 2)"), "{text}");
    }
}
