//! Gates: the go/no-go check of an evaluation. A gate passes when the pooled score of
//! its task (over every length and depth, or one length) reaches its minimum.

use serde::Serialize;

use super::config::Gate;
use crate::results::{Metric, Results};

/// One gate checked against one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateOutcome {
    pub task: String,
    pub model: String,
    pub metric: Metric,
    pub seq_len: Option<usize>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The pooled score; `None` when nothing was measured (which fails the gate).
    pub score: Option<f64>,
    /// Samples pooled.
    pub n: usize,
    pub passed: bool,
}

/// Checks every gate against every model it applies to.
pub fn check(results: &Results, gates: &[Gate]) -> Vec<GateOutcome> {
    let mut out = Vec::new();
    for g in gates {
        let models: Vec<String> = match &g.model {
            Some(m) => vec![m.clone()],
            None => results.models.iter().map(|m| m.spec.clone()).collect(),
        };
        for model in models {
            let samples: Vec<f64> = results
                .records
                .iter()
                .filter(|r| {
                    r.model == model
                        && r.metric == g.metric
                        && r.task.task.as_deref() == Some(g.task.as_str())
                        && g.seq_len.is_none_or(|l| l == r.seq_len)
                })
                .flat_map(|r| r.samples.iter().copied())
                .collect();
            let score =
                (!samples.is_empty()).then(|| samples.iter().sum::<f64>() / samples.len() as f64);
            let passed = score.is_some_and(|s| g.passes(s));
            out.push(GateOutcome {
                task: g.task.clone(),
                model,
                metric: g.metric,
                seq_len: g.seq_len,
                min: g.min,
                max: g.max,
                score,
                n: samples.len(),
                passed,
            });
        }
    }
    out
}
