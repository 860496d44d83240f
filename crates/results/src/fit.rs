//! The largest context a model serves under a memory budget: the prompt lengths a
//! search tried in isolated processes, what each peaked at, and the analytic
//! prediction they are checked against.

use serde::{Deserialize, Serialize};

use crate::spec::ModelSpec;

/// How one prompt length came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// Prefilled and decoded with the process's peak RSS within the budget.
    Fits,
    /// The process passed the budget (it was killed there, or its peak was above it).
    OverBudget,
    /// It failed for another reason (an error, a crash, a timeout): the search stops.
    Failed,
}

/// One prompt length a search tried, in a process of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitProbe {
    pub seq_len: usize,
    pub outcome: ProbeOutcome,
    /// The process's peak RSS (for one killed over budget: the highest RSS seen).
    pub peak_rss: u64,
    /// RSS once the model was built; absent when the process did not finish.
    pub rss_after_load: Option<u64>,
    /// `state_bytes()` after the prompt; absent when the process did not finish.
    pub state_bytes: Option<u64>,
    pub wall_s: f64,
    /// Why it did not fit or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The memory model a search starts from: what stays (weights, runtime, activations of
/// a prompt chunk) and what grows with the context (a KV cache; an RNN state does not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitPrediction {
    /// The weights as stored (`ModelInfo.weight_bytes`), from the shapes.
    pub weight_bytes: Option<u64>,
    /// Peak RSS of the first probe less its state: weights, runtime and the
    /// activations of one prompt chunk (bounded by the chunk, not the context).
    pub fixed_bytes: u64,
    /// State bytes each token of context adds: the KV cache's
    /// `2 · layers · kv_heads · head_dim · dtype size`, 0 for a constant state.
    pub bytes_per_token: f64,
    /// State bytes that do not grow (an RNN's whole state).
    pub constant_state_bytes: u64,
    /// `(budget − fixed − constant state) / bytes per token`; absent when nothing
    /// grows (the memory never reaches the budget by context alone).
    pub max_context: Option<usize>,
}

impl FitPrediction {
    /// The predicted peak at a context of `seq_len` tokens.
    pub fn peak_at(&self, seq_len: usize) -> f64 {
        self.fixed_bytes as f64
            + self.constant_state_bytes as f64
            + self.bytes_per_token * seq_len as f64
    }
}

/// A max-context search of one model under one budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub model: ModelSpec,
    /// The weights' storage (`f32`, `q4_k`, …).
    pub dtype: String,
    pub budget_bytes: u64,
    /// The longest prompt tried: the stated maximum (and the model's own, if lower).
    pub cap: usize,
    /// The longest prompt that fitted; absent when even the shortest tried did not.
    pub max_context: Option<usize>,
    /// The shortest prompt that did not fit; absent when none was found below the cap.
    pub over_budget_at: Option<usize>,
    /// Why the search ended before it bracketed the limit (a failed probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub prediction: Option<FitPrediction>,
    pub probes: Vec<FitProbe>,
}

impl Fit {
    /// Whether the search reached the cap without passing the budget.
    pub fn capped(&self) -> bool {
        self.max_context == Some(self.cap)
    }

    /// The maximum context in words: `9,216 tokens (9,600 over budget)`, `≥ 16,384
    /// tokens (the cap)`, `none`.
    pub fn describe(&self) -> String {
        let n = |t: usize| thousands(t);
        match (self.max_context, self.over_budget_at) {
            (Some(m), _) if self.capped() => format!("≥ {} tokens (the cap)", n(m)),
            (Some(m), Some(over)) => format!("{} tokens ({} over budget)", n(m), n(over)),
            (Some(m), None) => format!("≥ {} tokens (search stopped)", n(m)),
            (None, Some(over)) => format!("none ({} tokens over budget)", n(over)),
            (None, None) => "none".into(),
        }
    }
}

/// `12345` as `12,345`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(max: Option<usize>, over: Option<usize>) -> Fit {
        Fit {
            model: "llama:preset=tiny".parse().unwrap(),
            dtype: "f32".into(),
            budget_bytes: 1 << 30,
            cap: 16384,
            max_context: max,
            over_budget_at: over,
            stopped: None,
            prediction: None,
            probes: Vec::new(),
        }
    }

    #[test]
    fn describes_each_way_a_search_ends() {
        assert_eq!(
            fit(Some(9216), Some(9600)).describe(),
            "9,216 tokens (9,600 over budget)"
        );
        assert_eq!(
            fit(Some(16384), None).describe(),
            "≥ 16,384 tokens (the cap)"
        );
        assert_eq!(
            fit(None, Some(512)).describe(),
            "none (512 tokens over budget)"
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(16), "16");
        assert_eq!(thousands(1024), "1,024");
        assert_eq!(thousands(131_072), "131,072");
        assert_eq!(thousands(1_048_576), "1,048,576");
    }
}
