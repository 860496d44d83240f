//! Comparing a run against a baseline: per-cell change with a bootstrap interval, so
//! noise does not fail builds, and ratio gates (candidate vs baseline architecture
//! measured in the same run) that stay meaningful across machines.

use serde::{Deserialize, Serialize};

use crate::record::Metric;
use crate::schema::Results;
use crate::spec::ModelSpec;
use crate::stats::{ratio_interval, Interval, CONFIDENCE};

/// Metrics a comparison gates on. Throughput is left out: it is prefill time again.
pub const GATED: [Metric; 4] = [
    Metric::PrefillTime,
    Metric::DecodeLatency,
    Metric::PeakRss,
    Metric::StateBytes,
];

/// Peak-RSS changes smaller than this are never a regression or an improvement.
pub const RSS_NOISE_FLOOR_BYTES: f64 = 16.0 * 1024.0 * 1024.0;

/// "The baseline/candidate ratio (transformer cost over RWKV cost) of `metric` at `seq_len` must not fall by more than
/// `max_drop`" (a fraction).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioGate {
    pub metric: Metric,
    pub seq_len: usize,
    pub max_drop: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval of the change is beyond the threshold, for the worse.
    Regressed,
    /// The whole interval is beyond the threshold, for the better.
    Improved,
    /// Within noise or within the threshold.
    Unchanged,
    /// Measured in the baseline, failed in the current run.
    Failed,
    /// Measured in the baseline, absent from the current run.
    Missing,
}

/// The change of one cell: `current / baseline - 1` of the medians.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellChange {
    pub model: ModelSpec,
    pub metric: Metric,
    pub seq_len: usize,
    pub baseline: f64,
    pub current: Option<f64>,
    pub change: Option<f64>,
    pub ci: Option<Interval>,
    pub verdict: Verdict,
    /// Why the cell failed, when it did.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub gate: RatioGate,
    #[serde(alias = "rwkv")]
    pub candidate: ModelSpec,
    #[serde(alias = "transformer")]
    pub baseline: ModelSpec,
    pub baseline_ratio: f64,
    pub current_ratio: Option<f64>,
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub max_regression: f64,
    pub cells: Vec<CellChange>,
    pub gates: Vec<GateResult>,
    pub warnings: Vec<String>,
}

impl Comparison {
    /// Whether anything regressed, failed or broke a gate.
    pub fn regressed(&self) -> bool {
        self.cells.iter().any(|c| {
            matches!(
                c.verdict,
                Verdict::Regressed | Verdict::Failed | Verdict::Missing
            )
        }) || self.gates.iter().any(|g| !g.passed)
    }
}

/// What a comparison checks.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// A cell regresses when the whole interval of its change exceeds this fraction.
    pub max_regression: f64,
    pub gates: Vec<RatioGate>,
    /// Metrics whose cells are compared (default [`GATED`]).
    pub metrics: Vec<Metric>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            max_regression: 0.10,
            gates: Vec::new(),
            metrics: GATED.to_vec(),
        }
    }
}

/// Why two runs cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

/// Percentile bootstrap interval of `median(current) / median(baseline) - 1`, each
/// side's samples clustered by the process that took them.
pub fn change_interval(baseline: &[&[f64]], current: &[&[f64]], level: f64, seed: u64) -> Interval {
    let (_, ratio) = ratio_interval(current, baseline, level, seed);
    Interval {
        lo: ratio.lo - 1.0,
        hi: ratio.hi - 1.0,
        level,
    }
}

fn speedup(
    results: &Results,
    gate: &RatioGate,
    candidate: &ModelSpec,
    baseline: &ModelSpec,
) -> Option<f64> {
    results
        .analysis
        .speedups
        .iter()
        .find(|s| {
            s.metric == gate.metric
                && s.seq_len == gate.seq_len
                && s.candidate == *candidate
                && s.baseline == *baseline
        })
        .map(|s| s.ratio)
}

/// Compares `current` against `baseline`.
pub fn compare(
    baseline: &Results,
    current: &Results,
    opts: &CompareOptions,
) -> Result<Comparison, Unusable> {
    let max_regression = opts.max_regression;
    let (bs, cs) = (&baseline.suite.config.name, &current.suite.config.name);
    if bs != cs {
        return Err(Unusable(format!(
            "the runs are of different suites (baseline `{bs}`, current `{cs}`)"
        )));
    }
    let mut warnings = Vec::new();
    let (bm, cm) = (&baseline.machine, &current.machine);
    if (bm.cpu_model.as_str(), bm.logical_cores, bm.ram_bytes)
        != (cm.cpu_model.as_str(), cm.logical_cores, cm.ram_bytes)
    {
        warnings.push(format!(
            "the runs come from different machines (baseline: {}, {} cores; current: {}, {} cores): \
             absolute changes mix code and hardware, ratio gates stay meaningful",
            bm.cpu_model, bm.logical_cores, cm.cpu_model, cm.logical_cores
        ));
    }
    let (b, c) = (&baseline.settings, &current.settings);
    if (b.threads_used, &b.dtype) != (c.threads_used, &c.dtype) {
        warnings.push(format!(
            "settings differ: baseline {:?} threads {}, current {:?} threads {}",
            b.threads_used, b.dtype, c.threads_used, c.dtype
        ));
    }

    let mut cells = Vec::new();
    for (i, r) in baseline
        .records
        .iter()
        .filter(|r| opts.metrics.contains(&r.metric))
        .enumerate()
    {
        let Some(now) = current.find(&r.key()) else {
            let failure = current
                .failures
                .iter()
                .find(|f| f.model == r.model && f.seq_len == r.seq_len);
            cells.push(CellChange {
                model: r.model.clone(),
                metric: r.metric,
                seq_len: r.seq_len,
                baseline: r.summary.median,
                current: None,
                change: None,
                ci: None,
                verdict: if failure.is_some() {
                    Verdict::Failed
                } else {
                    Verdict::Missing
                },
                error: Some(failure.map_or_else(
                    || "not in the current run".into(),
                    |f| format!("{}: {}", f.kind.label(), f.error),
                )),
            });
            continue;
        };
        let ci = change_interval(&r.clusters(), &now.clusters(), CONFIDENCE, i as u64);
        let change = now.summary.median / r.summary.median - 1.0;
        // For throughput-like metrics a fall is the regression; every gated metric is
        // lower-is-better today, but keep the rule general.
        let (worse, better) = if r.metric.lower_is_better() {
            (ci.lo > max_regression, ci.hi < -max_regression)
        } else {
            (ci.hi < -max_regression, ci.lo > max_regression)
        };
        // Peak RSS moves by a few MB between identical runs (allocator arenas, thread
        // stacks): below the floor a change is noise however large in percent.
        let below_floor = r.metric == Metric::PeakRss
            && (now.summary.median - r.summary.median).abs() < RSS_NOISE_FLOOR_BYTES;
        let (worse, better) = (worse && !below_floor, better && !below_floor);
        cells.push(CellChange {
            model: r.model.clone(),
            metric: r.metric,
            seq_len: r.seq_len,
            baseline: r.summary.median,
            current: Some(now.summary.median),
            change: Some(change),
            ci: Some(ci),
            verdict: if worse {
                Verdict::Regressed
            } else if better {
                Verdict::Improved
            } else {
                Verdict::Unchanged
            },
            error: None,
        });
    }
    let mut results = Vec::new();
    for gate in &opts.gates {
        let pairs: Vec<_> = baseline
            .analysis
            .speedups
            .iter()
            .filter(|s| s.metric == gate.metric && s.seq_len == gate.seq_len)
            .collect();
        if pairs.is_empty() {
            return Err(Unusable(format!(
                "ratio gate {}@{}: the baseline has no RWKV/transformer ratio for it",
                metric_key(gate.metric),
                gate.seq_len
            )));
        }
        for s in pairs {
            let current_ratio = speedup(current, gate, &s.candidate, &s.baseline);
            let passed = current_ratio.is_some_and(|r| r >= s.ratio * (1.0 - gate.max_drop));
            results.push(GateResult {
                gate: *gate,
                candidate: s.candidate.clone(),
                baseline: s.baseline.clone(),
                baseline_ratio: s.ratio,
                current_ratio,
                passed,
            });
        }
    }
    Ok(Comparison {
        max_regression,
        cells,
        gates: results,
        warnings,
    })
}

/// The snake_case name of a metric, as written in results and on the command line.
pub fn metric_key(metric: Metric) -> String {
    serde_json::to_value(metric)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

impl std::str::FromStr for RatioGate {
    type Err = String;

    /// `METRIC@LENGTH=PERCENT`, e.g. `decode_latency@4096=10%`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "ratio gate `{s}`: expected METRIC@LENGTH=PERCENT, e.g. decode_latency@4096=10%"
            )
        };
        let (lhs, pct) = s.split_once('=').ok_or_else(bad)?;
        let (metric, len) = lhs.split_once('@').ok_or_else(bad)?;
        let metric: Metric = serde_json::from_value(serde_json::Value::String(metric.into()))
            .map_err(|_| format!("ratio gate `{s}`: unknown metric `{metric}`"))?;
        let seq_len = len.parse().map_err(|_| bad())?;
        let max_drop = parse_percent(pct).ok_or_else(bad)?;
        Ok(Self {
            metric,
            seq_len,
            max_drop,
        })
    }
}

/// `10%` or `0.1` as a fraction.
pub fn parse_percent(s: &str) -> Option<f64> {
    let v = match s.trim().strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
        None => s.trim().parse::<f64>().ok()?,
    };
    (v.is_finite() && v >= 0.0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_a_clear_slowdown_excludes_zero() {
        let base: Vec<f64> = (0..20).map(|i| 100.0 + (i % 5) as f64).collect();
        let slow: Vec<f64> = base.iter().map(|x| x * 1.3).collect();
        let ci = change_interval(&[&base], &[&slow], 0.95, 1);
        assert!(ci.lo > 0.25 && ci.hi < 0.35, "{ci:?}");
        let same = change_interval(&[&base], &[&base], 0.95, 1);
        assert!(same.lo <= 0.0 && same.hi >= 0.0, "{same:?}");
    }

    #[test]
    fn parses_gates_and_percentages() {
        let g: RatioGate = "decode_latency@4096=10%".parse().unwrap();
        assert_eq!((g.metric, g.seq_len), (Metric::DecodeLatency, 4096));
        assert!((g.max_drop - 0.1).abs() < 1e-12);
        assert!("decode@4096=10%"
            .parse::<RatioGate>()
            .unwrap_err()
            .contains("unknown metric"));
        assert!("decode_latency=10%".parse::<RatioGate>().is_err());
        assert_eq!(parse_percent("0.25"), Some(0.25));
        assert_eq!(parse_percent("-3%"), None);
    }
}
