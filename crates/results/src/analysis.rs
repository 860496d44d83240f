//! Scaling analysis of a run: how cost grows with length per model (log-log slope),
//! candidate-vs-baseline ratios per length, and the length from which the candidate is
//! cheaper. Models are paired by architecture: every constant-state model (RWKV) is a
//! candidate against every attention model (transformer) of the run.

use serde::{Deserialize, Serialize};

use crate::model_info::ModelInfo;
use crate::record::{Metric, Record};
use crate::spec::ModelSpec;
use crate::stats::log_log_slope;

/// Metrics whose growth with length and architecture ratios are analysed.
pub const SCALING_METRICS: [Metric; 4] = [
    Metric::PrefillTime,
    Metric::DecodeLatency,
    Metric::PeakRss,
    Metric::StateBytes,
];

/// Fitted exponent `k` of `cost ~ length^k` for one model and metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slope {
    pub model: ModelSpec,
    pub metric: Metric,
    pub slope: f64,
    /// Lengths the fit used.
    pub seq_lens: Vec<usize>,
}

/// `baseline / candidate` of a metric's medians at one length: above 1, the candidate
/// is cheaper. (Schema 1 named the pair `rwkv` / `transformer`.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speedup {
    pub metric: Metric,
    #[serde(alias = "rwkv")]
    pub candidate: ModelSpec,
    #[serde(alias = "transformer")]
    pub baseline: ModelSpec,
    pub seq_len: usize,
    pub ratio: f64,
}

/// Where a pair's ratio crosses 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CrossoverAt {
    /// The candidate is cheaper already at the shortest measured length.
    #[serde(alias = "rwkv_cheaper_throughout")]
    CheaperThroughout { from: usize },
    /// The candidate becomes cheaper at this length (interpolated in log-log space between the
    /// two measured lengths around it).
    Crosses {
        length: f64,
        between: (usize, usize),
    },
    /// The candidate is not cheaper at any measured length.
    Never { up_to: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossover {
    pub metric: Metric,
    #[serde(alias = "rwkv")]
    pub candidate: ModelSpec,
    #[serde(alias = "transformer")]
    pub baseline: ModelSpec,
    pub at: CrossoverAt,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub slopes: Vec<Slope>,
    pub speedups: Vec<Speedup>,
    pub crossovers: Vec<Crossover>,
}

fn medians(records: &[Record], model: &ModelSpec, metric: Metric) -> Vec<(usize, f64)> {
    let mut v: Vec<(usize, f64)> = records
        .iter()
        .filter(|r| r.model == *model && r.metric == metric)
        .map(|r| (r.seq_len, r.summary.median))
        .collect();
    v.sort_by_key(|p| p.0);
    v
}

/// Finds where `ratio` first reaches 1, given `(length, ratio)` sorted by length.
pub fn crossover(points: &[(usize, f64)]) -> Option<CrossoverAt> {
    let (&(first_len, first_ratio), _) = points.split_first()?;
    if first_ratio >= 1.0 {
        return Some(CrossoverAt::CheaperThroughout { from: first_len });
    }
    for w in points.windows(2) {
        let ((l0, r0), (l1, r1)) = (w[0], w[1]);
        if r1 >= 1.0 {
            let (x0, x1) = ((l0 as f64).ln(), (l1 as f64).ln());
            let (y0, y1) = (r0.ln(), r1.ln());
            let x = if y1 > y0 {
                x0 + (0.0 - y0) * (x1 - x0) / (y1 - y0)
            } else {
                x1
            };
            return Some(CrossoverAt::Crosses {
                length: x.exp(),
                between: (l0, l1),
            });
        }
    }
    Some(CrossoverAt::Never {
        up_to: points.last()?.0,
    })
}

/// Every (candidate, baseline) pair of a run: constant-state models against the others.
pub fn pairs(models: &[ModelInfo]) -> Vec<(&ModelInfo, &ModelInfo)> {
    let candidates = models.iter().filter(|m| m.arch.constant_state());
    candidates
        .flat_map(|c| {
            models
                .iter()
                .filter(|b| !b.arch.constant_state())
                .map(move |b| (c, b))
        })
        .collect()
}

/// Analyses the records of a run.
pub fn analyse(models: &[ModelInfo], records: &[Record]) -> Analysis {
    let mut out = Analysis::default();
    for metric in SCALING_METRICS {
        for m in models {
            let pts = medians(records, &m.spec, metric);
            let xy: Vec<(f64, f64)> = pts.iter().map(|&(l, y)| (l as f64, y)).collect();
            if let Some(slope) = log_log_slope(&xy) {
                out.slopes.push(Slope {
                    model: m.spec.clone(),
                    metric,
                    slope,
                    seq_lens: pts.iter().map(|p| p.0).collect(),
                });
            }
        }
        for (c, b) in pairs(models) {
            let cand = medians(records, &c.spec, metric);
            let base = medians(records, &b.spec, metric);
            let ratios: Vec<(usize, f64)> = cand
                .iter()
                .filter_map(|&(l, cv)| {
                    let bv = base.iter().find(|p| p.0 == l)?.1;
                    (cv > 0.0).then_some((l, bv / cv))
                })
                .collect();
            for &(seq_len, ratio) in &ratios {
                out.speedups.push(Speedup {
                    metric,
                    candidate: c.spec.clone(),
                    baseline: b.spec.clone(),
                    seq_len,
                    ratio,
                });
            }
            if let Some(at) = crossover(&ratios) {
                out.crossovers.push(Crossover {
                    metric,
                    candidate: c.spec.clone(),
                    baseline: b.spec.clone(),
                    at,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossover_interpolates_in_log_space() {
        // Ratio 0.5 at 1024 and 2.0 at 4096: log-midpoint is 2048.
        match crossover(&[(512, 0.25), (1024, 0.5), (4096, 2.0)]).unwrap() {
            CrossoverAt::Crosses { length, between } => {
                assert!((length - 2048.0).abs() < 1e-6, "{length}");
                assert_eq!(between, (1024, 4096));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn crossover_edge_cases() {
        assert_eq!(
            crossover(&[(128, 1.2), (512, 3.0)]),
            Some(CrossoverAt::CheaperThroughout { from: 128 })
        );
        assert_eq!(
            crossover(&[(128, 0.1), (512, 0.9)]),
            Some(CrossoverAt::Never { up_to: 512 })
        );
        assert_eq!(crossover(&[]), None);
    }
}
