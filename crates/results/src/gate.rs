//! Gates: the go/no-go check of an evaluation. A gate passes when the pooled score of
//! its task (over every length and depth, or one length) reaches its minimum. Outcomes
//! are stored in the results file, so a report or a later job can tell go from no-go
//! without the suite.

use serde::{Deserialize, Serialize};

use crate::accuracy::Gate;
use crate::model_info::ModelInfo;
use crate::record::{Metric, Record};
use crate::spec::ModelSpec;

/// One gate checked against one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    pub task: String,
    pub model: ModelSpec,
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

impl GateOutcome {
    /// What the score must be: `>= 0.9`, `<= 1.2` or `in [0.5, 0.9]`.
    pub fn bound(&self) -> String {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => format!("in [{lo}, {hi}]"),
            (Some(lo), None) => format!(">= {lo}"),
            (None, Some(hi)) => format!("<= {hi}"),
            (None, None) => "anything".into(),
        }
    }
}

/// Checks every gate against every model it applies to.
pub fn check(models: &[ModelInfo], records: &[Record], gates: &[Gate]) -> Vec<GateOutcome> {
    let mut out = Vec::new();
    for g in gates {
        let models: Vec<ModelSpec> = match &g.model {
            Some(m) => vec![m.clone()],
            None => models.iter().map(|m| m.spec.clone()).collect(),
        };
        for model in models {
            let samples: Vec<f64> = records
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
