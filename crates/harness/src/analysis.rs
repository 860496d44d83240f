//! Scaling analysis of a run: how cost grows with length per model (log-log slope),
//! RWKV-vs-transformer ratios per length, and the length from which RWKV is faster.

use serde::{Deserialize, Serialize};

use crate::model::{Arch, ModelInfo};
use crate::results::{Metric, Record};
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
    pub model: String,
    pub metric: Metric,
    pub slope: f64,
    /// Lengths the fit used.
    pub seq_lens: Vec<usize>,
}

/// `transformer / rwkv` of a metric's medians at one length: above 1, RWKV is cheaper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speedup {
    pub metric: Metric,
    pub rwkv: String,
    pub transformer: String,
    pub seq_len: usize,
    pub ratio: f64,
}

/// Where a pair's ratio crosses 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CrossoverAt {
    /// RWKV is cheaper already at the shortest measured length.
    RwkvCheaperThroughout { from: usize },
    /// RWKV becomes cheaper at this length (interpolated in log-log space between the
    /// two measured lengths around it).
    Crosses {
        length: f64,
        between: (usize, usize),
    },
    /// RWKV is not cheaper at any measured length.
    Never { up_to: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossover {
    pub metric: Metric,
    pub rwkv: String,
    pub transformer: String,
    pub at: CrossoverAt,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub slopes: Vec<Slope>,
    pub speedups: Vec<Speedup>,
    pub crossovers: Vec<Crossover>,
}

fn medians(records: &[Record], model: &str, metric: Metric) -> Vec<(usize, f64)> {
    let mut v: Vec<(usize, f64)> = records
        .iter()
        .filter(|r| r.model == model && r.metric == metric)
        .map(|r| (r.seq_len, r.summary.median))
        .collect();
    v.sort_by_key(|p| p.0);
    v
}

/// Finds where `ratio` first reaches 1, given `(length, ratio)` sorted by length.
pub fn crossover(points: &[(usize, f64)]) -> Option<CrossoverAt> {
    let (&(first_len, first_ratio), _) = points.split_first()?;
    if first_ratio >= 1.0 {
        return Some(CrossoverAt::RwkvCheaperThroughout { from: first_len });
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
        let of = |arch| models.iter().filter(move |m| m.arch == arch);
        for r in of(Arch::Rwkv) {
            for t in of(Arch::Transformer) {
                let rw = medians(records, &r.spec, metric);
                let tr = medians(records, &t.spec, metric);
                let ratios: Vec<(usize, f64)> = rw
                    .iter()
                    .filter_map(|&(l, rv)| {
                        let tv = tr.iter().find(|p| p.0 == l)?.1;
                        (rv > 0.0).then_some((l, tv / rv))
                    })
                    .collect();
                for &(seq_len, ratio) in &ratios {
                    out.speedups.push(Speedup {
                        metric,
                        rwkv: r.spec.clone(),
                        transformer: t.spec.clone(),
                        seq_len,
                        ratio,
                    });
                }
                if let Some(at) = crossover(&ratios) {
                    out.crossovers.push(Crossover {
                        metric,
                        rwkv: r.spec.clone(),
                        transformer: t.spec.clone(),
                        at,
                    });
                }
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
            Some(CrossoverAt::RwkvCheaperThroughout { from: 128 })
        );
        assert_eq!(
            crossover(&[(128, 0.1), (512, 0.9)]),
            Some(CrossoverAt::Never { up_to: 512 })
        );
        assert_eq!(crossover(&[]), None);
    }
}
