//! The accuracy cost of a weight dtype: the same weights stored another way, compared
//! with f32 position by position (cosine similarity of the logits and agreement of the
//! top token), and the mean loss of the sequence under each.
//!
//! On random weights the loss says nothing about the model, but the agreement still
//! measures how far the storage type moves the outputs; on trained or user checkpoints
//! the loss change is the perplexity cost.

use candle_core::{Tensor, D};
use kernels::WeightDtype;
use models::model::token_log_prob;
use models::{registry, BuildOptions};
use results::ModelSpec;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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

/// Per-position cosine similarity of two `(T, V)` logits tensors, and whether their
/// argmaxes agree.
fn compare(a: &Tensor, b: &Tensor) -> Result<Vec<(f64, bool)>> {
    let dot = (a * b)?.sum(D::Minus1)?;
    let norms = (a.sqr()?.sum(D::Minus1)?.sqrt()? * b.sqr()?.sum(D::Minus1)?.sqrt()?)?;
    let cos = (dot / norms)?.to_vec1::<f32>()?;
    let (ta, tb) = (
        a.argmax(D::Minus1)?.to_vec1::<u32>()?,
        b.argmax(D::Minus1)?.to_vec1::<u32>()?,
    );
    Ok(cos
        .into_iter()
        .zip(ta.iter().zip(&tb))
        .map(|(c, (x, y))| (c as f64, x == y))
        .collect())
}

/// Mean loss of `tokens[1..]` under `(T, V)` logits.
fn mean_loss(logits: &Tensor, tokens: &[u32]) -> Result<f64> {
    let n = tokens.len().saturating_sub(1);
    let mut total = 0.0;
    for (i, &next) in tokens.iter().enumerate().skip(1) {
        total -= token_log_prob(&logits.get(i - 1)?, next)? as f64;
    }
    Ok(total / n.max(1) as f64)
}

/// Builds `spec` in f32 and in each of `dtypes` (one at a time, so only two models are
/// ever held) and compares their logits over `tokens`.
pub fn agreement(
    spec: &ModelSpec,
    dtypes: &[WeightDtype],
    tokens: &[u32],
    base: &BuildOptions,
) -> Result<Vec<Agreement>> {
    if registry::spec_dtype(spec)?.is_some() {
        return Err(Error::spec(
            spec,
            "give the model without `dtype=`: every dtype is compared with its f32 build",
        ));
    }
    if tokens.len() < 2 {
        return Err(Error::spec(spec, "at least 2 tokens are needed"));
    }
    let build = |dtype: WeightDtype| {
        let opts = BuildOptions {
            dtype,
            ..base.clone()
        };
        registry::build(spec, &opts)
    };
    let reference = build(WeightDtype::F32)?.logits_all(tokens)?;
    let loss_f32 = mean_loss(&reference, tokens)?;
    dtypes
        .iter()
        .map(|&dtype| {
            let mut model = build(dtype)?;
            let logits = model.logits_all(tokens)?;
            let rows = compare(&logits, &reference)?;
            let n = rows.len();
            Ok(Agreement {
                dtype: dtype.name().into(),
                weight_bytes: model.info().weight_bytes,
                positions: n,
                min_cosine: rows.iter().map(|r| r.0).fold(f64::INFINITY, f64::min),
                mean_cosine: rows.iter().map(|r| r.0).sum::<f64>() / n as f64,
                top1: rows.iter().filter(|r| r.1).count() as f64 / n as f64,
                loss: mean_loss(&logits, tokens)?,
                loss_f32,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_agrees_with_itself_and_a_spec_dtype_is_refused() {
        let spec: ModelSpec = "rwkv7:preset=tiny".parse().unwrap();
        let tokens: Vec<u32> = (0..24).map(|i| (i * 37 % 512) as u32).collect();
        let a = agreement(
            &spec,
            &[WeightDtype::F32],
            &tokens,
            &BuildOptions::default(),
        )
        .unwrap();
        assert_eq!(a[0].positions, 24);
        assert!(a[0].min_cosine > 0.999_999 && a[0].top1 == 1.0, "{a:?}");
        assert!(a[0].perplexity_change().abs() < 1e-9);
        let spec: ModelSpec = "rwkv7:preset=tiny,dtype=q8_0".parse().unwrap();
        let e = agreement(
            &spec,
            &[WeightDtype::Q8_0],
            &tokens,
            &BuildOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("dtype="), "{e}");
    }
}
