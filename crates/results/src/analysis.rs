//! Scaling analysis of a run: how cost grows with length per model (log-log slope),
//! candidate-vs-baseline ratios per length, and the length from which the candidate is
//! cheaper. Models are paired by architecture: every constant-state model (RWKV) is a
//! candidate against every attention model (transformer) of the run.

use serde::{Deserialize, Serialize};

use crate::model_info::ModelInfo;
use crate::record::{Metric, Record};
use crate::spec::ModelSpec;
use crate::stats::{ratio_interval, slope_interval, Interval, CONFIDENCE};

/// Metrics whose growth with length and architecture ratios are analysed.
pub const SCALING_METRICS: [Metric; 6] = [
    Metric::PrefillTime,
    Metric::DecodeLatency,
    Metric::PeakRss,
    Metric::StateBytes,
    Metric::TrainStepTime,
    Metric::TrainPeakRss,
];

/// Fitted exponent `k` of `cost ~ length^k` for one model and metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slope {
    pub model: ModelSpec,
    pub metric: Metric,
    pub slope: f64,
    /// Bootstrap interval of the slope: every length's samples redrawn (processes
    /// first) and the fit repeated. Absent in files written before intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Interval>,
    /// Fewest processes behind any length of the fit.
    #[serde(default = "one")]
    pub processes: usize,
    /// Lengths the fit used.
    pub seq_lens: Vec<usize>,
}

fn one() -> usize {
    1
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
    /// Bootstrap interval of the ratio of medians.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Interval>,
    /// Fewest processes behind either side.
    #[serde(default = "one")]
    pub processes: usize,
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
    /// Where the medians cross.
    pub at: CrossoverAt,
    /// The shortest length from which every measured ratio's interval lies above 1, up
    /// to the longest: where the curve is known to stay crossed. `None` when the
    /// longest length's interval does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_from: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub slopes: Vec<Slope>,
    pub speedups: Vec<Speedup>,
    pub crossovers: Vec<Crossover>,
}

/// A model's records of a metric, by length.
fn series<'a>(records: &'a [Record], model: &ModelSpec, metric: Metric) -> Vec<&'a Record> {
    let mut v: Vec<&Record> = records
        .iter()
        .filter(|r| r.model == *model && r.metric == metric && !r.samples.is_empty())
        .collect();
    v.sort_by_key(|r| r.seq_len);
    v
}

/// The shortest length from which every `(length, interval)` lies above 1.
pub fn confirmed_from(intervals: &[(usize, Interval)]) -> Option<usize> {
    let above = intervals.iter().rev().take_while(|(_, ci)| ci.lo > 1.0);
    above.last().map(|(l, _)| *l)
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
    for (mi, metric) in SCALING_METRICS.into_iter().enumerate() {
        for m in models {
            let rs = series(records, &m.spec, metric);
            let points: Vec<(f64, Vec<&[f64]>)> = rs
                .iter()
                .map(|r| (r.seq_len as f64, r.clusters()))
                .collect();
            let seed = 0x51_0be ^ mi as u64;
            if let Some((slope, ci)) = slope_interval(&points, CONFIDENCE, seed) {
                out.slopes.push(Slope {
                    model: m.spec.clone(),
                    metric,
                    slope,
                    ci: Some(ci),
                    processes: rs.iter().map(|r| r.process_count()).min().unwrap_or(1),
                    seq_lens: rs.iter().map(|r| r.seq_len).collect(),
                });
            }
        }
        for (c, b) in pairs(models) {
            let base = series(records, &b.spec, metric);
            let mut ratios = Vec::new();
            let mut intervals = Vec::new();
            for cand in series(records, &c.spec, metric) {
                let Some(base) = base.iter().find(|r| r.seq_len == cand.seq_len) else {
                    continue;
                };
                if cand.summary.median <= 0.0 {
                    continue;
                }
                let seed = cand.seq_len as u64 ^ ((mi as u64) << 32);
                let (ratio, ci) =
                    ratio_interval(&base.clusters(), &cand.clusters(), CONFIDENCE, seed);
                ratios.push((cand.seq_len, ratio));
                intervals.push((cand.seq_len, ci));
                out.speedups.push(Speedup {
                    metric,
                    candidate: c.spec.clone(),
                    baseline: b.spec.clone(),
                    seq_len: cand.seq_len,
                    ratio,
                    ci: Some(ci),
                    processes: cand.process_count().min(base.process_count()),
                });
            }
            if let Some(at) = crossover(&ratios) {
                out.crossovers.push(Crossover {
                    metric,
                    candidate: c.spec.clone(),
                    baseline: b.spec.clone(),
                    at,
                    confirmed_from: confirmed_from(&intervals),
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

    #[test]
    fn a_crossover_is_confirmed_only_where_every_later_interval_is_above_one() {
        let ci = |lo: f64, hi: f64| Interval {
            lo,
            hi,
            level: 0.95,
        };
        let run = [
            (512, ci(0.8, 0.95)),
            (1024, ci(1.05, 1.2)),
            (2048, ci(0.98, 1.3)),
            (4096, ci(1.2, 1.4)),
            (8192, ci(1.5, 1.9)),
        ];
        assert_eq!(confirmed_from(&run), Some(4096));
        assert_eq!(confirmed_from(&run[..3]), None);
        assert_eq!(confirmed_from(&run[1..2]), Some(1024));
        assert_eq!(confirmed_from(&[]), None);
    }
}
