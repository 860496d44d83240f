//! The accuracy cost of a weight dtype: the same weights stored another way, compared
//! with f32 position by position (cosine similarity of the logits and agreement of the
//! top token), and the mean loss of the sequence under each.
//!
//! On random weights the loss says nothing about the model, but the agreement still
//! measures how far the storage type moves the outputs; on trained or user checkpoints
//! the loss change is the perplexity cost.

use candle_core::{Tensor, D};
use kernels::WeightDtype;
use models::model::{token_log_prob, CausalLm};
use models::{registry, BuildOptions};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use results::ModelSpec;

pub use results::dtype_cost::Agreement;

use crate::{Error, Result};

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

/// `n` tokens drawn uniformly from `0..vocab` by a generator seeded with `seed`.
pub fn random_tokens(vocab: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..vocab as u32)).collect()
}

/// The f32 build of a spec and its logits over one sequence, which every other dtype
/// of the same weights is compared with. Only the logits are kept, so that comparing a
/// dtype holds one model at a time.
pub struct Reference {
    spec: ModelSpec,
    base: BuildOptions,
    tokens: Vec<u32>,
    /// Shape `(T, V)`, f32.
    logits: Tensor,
    loss: f64,
}

impl Reference {
    /// The f32 build's logits over `tokens`.
    pub fn new(spec: &ModelSpec, tokens: &[u32], base: &BuildOptions) -> Result<Self> {
        let model = Self::build_f32(spec, base)?;
        Self::over(spec, model, tokens.to_vec(), base)
    }

    /// The f32 build's logits over `n` random tokens of its vocabulary, drawn with
    /// `seed` ([`random_tokens`]).
    pub fn random(spec: &ModelSpec, n: usize, seed: u64, base: &BuildOptions) -> Result<Self> {
        let model = Self::build_f32(spec, base)?;
        let tokens = random_tokens(model.info().vocab, n, seed);
        Self::over(spec, model, tokens, base)
    }

    fn build_f32(spec: &ModelSpec, base: &BuildOptions) -> Result<Box<dyn CausalLm>> {
        if registry::spec_dtype(spec)?.is_some() {
            return Err(Error::spec(
                spec,
                "give the model without `dtype=`: every dtype is compared with its f32 build",
            ));
        }
        let opts = BuildOptions {
            dtype: WeightDtype::F32,
            ..base.clone()
        };
        registry::build(spec, &opts)
    }

    fn over(
        spec: &ModelSpec,
        mut model: Box<dyn CausalLm>,
        tokens: Vec<u32>,
        base: &BuildOptions,
    ) -> Result<Self> {
        if tokens.len() < 2 {
            return Err(Error::spec(spec, "at least 2 tokens are needed"));
        }
        let logits = model.logits_all(&tokens)?;
        let loss = mean_loss(&logits, &tokens)?;
        Ok(Self {
            spec: spec.clone(),
            base: base.clone(),
            tokens,
            logits,
            loss,
        })
    }

    /// The sequence compared.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Builds the spec with its weights stored as `dtype` and compares its logits with
    /// the f32 ones.
    pub fn compare(&self, dtype: WeightDtype) -> Result<Agreement> {
        let opts = BuildOptions {
            dtype,
            ..self.base.clone()
        };
        let mut model = registry::build(&self.spec, &opts)?;
        let logits = model.logits_all(&self.tokens)?;
        let rows = compare(&logits, &self.logits)?;
        let n = rows.len();
        Ok(Agreement {
            dtype: dtype.name().into(),
            weight_bytes: model.info().weight_bytes,
            positions: n,
            min_cosine: rows.iter().map(|r| r.0).fold(f64::INFINITY, f64::min),
            mean_cosine: rows.iter().map(|r| r.0).sum::<f64>() / n as f64,
            top1: rows.iter().filter(|r| r.1).count() as f64 / n as f64,
            loss: mean_loss(&logits, &self.tokens)?,
            loss_f32: self.loss,
        })
    }
}

/// Builds `spec` in f32 and in each of `dtypes` (one at a time, so only two models are
/// ever held) and compares their logits over `tokens`.
pub fn agreement(
    spec: &ModelSpec,
    dtypes: &[WeightDtype],
    tokens: &[u32],
    base: &BuildOptions,
) -> Result<Vec<Agreement>> {
    let reference = Reference::new(spec, tokens, base)?;
    dtypes.iter().map(|&d| reference.compare(d)).collect()
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

    #[test]
    fn random_references_are_seeded_and_a_quantised_build_stays_close() {
        assert_eq!(random_tokens(512, 16, 7), random_tokens(512, 16, 7));
        assert_ne!(random_tokens(512, 16, 7), random_tokens(512, 16, 8));
        assert!(random_tokens(3, 64, 1).iter().all(|&t| t < 3));
        let spec: ModelSpec = "llama:preset=tiny".parse().unwrap();
        let r = Reference::random(&spec, 32, 5, &BuildOptions::default()).unwrap();
        assert_eq!(r.tokens().len(), 32);
        let a = r.compare(WeightDtype::Q8_0).unwrap();
        assert_eq!((a.dtype.as_str(), a.positions), ("q8_0", 32));
        // q8_0 keeps 8 bits per weight: far closer than a different model would be.
        assert!(a.min_cosine > 0.99 && a.min_cosine < 1.0, "{a:?}");
    }
}
