//! The accuracy a weight dtype gives up against f32 on the same weights: how close its
//! logits stay position by position, and how much the loss moves. `rwkv-bench
//! dtype-cost` prints it; a suite's `measure.dtype_cost` records it for every model
//! stored in another dtype than f32.

use serde::{Deserialize, Serialize};

use crate::spec::ModelSpec;

/// One dtype against f32, over one token sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub dtype: String,
    /// Bytes the weights take as stored, where the implementation knows.
    pub weight_bytes: Option<u64>,
    pub positions: usize,
    /// The least and the mean per-position cosine similarity with the f32 logits.
    pub min_cosine: f64,
    pub mean_cosine: f64,
    /// Positions whose most likely token is f32's, as a fraction.
    pub top1: f64,
    /// Mean loss (nats per token) of the sequence's next tokens.
    pub loss: f64,
    /// The same under f32 weights.
    pub loss_f32: f64,
}

impl Agreement {
    /// `exp(loss - loss_f32) - 1`: the relative perplexity change.
    pub fn perplexity_change(&self) -> f64 {
        (self.loss - self.loss_f32).exp() - 1.0
    }
}

/// A suite model's dtype cost (`measure.dtype_cost`), measured in the parent process
/// after every timing cell had finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DtypeCost {
    /// The model as the suite names it (its records carry the same spec).
    pub model: ModelSpec,
    /// The f32 build it was compared with: the same spec, weights and seed.
    pub reference: ModelSpec,
    /// Seeded random tokens compared (`dtype_cost.tokens`), drawn with the suite's seed.
    pub tokens: usize,
    pub seed: u64,
    /// Absent when the measurement failed (`error` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<Agreement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perplexity_change_is_relative_and_a_failure_round_trips_without_agreement() {
        let a = Agreement {
            dtype: "q8_0".into(),
            weight_bytes: Some(10),
            positions: 4,
            min_cosine: 0.99,
            mean_cosine: 0.995,
            top1: 1.0,
            loss: 2.0 + 0.01f64.ln_1p(),
            loss_f32: 2.0,
        };
        assert!((a.perplexity_change() - 0.01).abs() < 1e-12);
        let failed = DtypeCost {
            model: "llama:preset=tiny,dtype=q8_0".parse().unwrap(),
            reference: "llama:preset=tiny,dtype=f32".parse().unwrap(),
            tokens: 8,
            seed: 0,
            agreement: None,
            error: Some("boom".into()),
        };
        let text = serde_json::to_string(&failed).unwrap();
        assert!(!text.contains("agreement"), "{text}");
        assert_eq!(serde_json::from_str::<DtypeCost>(&text).unwrap(), failed);
    }
}
