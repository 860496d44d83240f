//! The training contract: a model whose parameters are candle [`Var`]s under their
//! checkpoint keys, and whose next-token loss autograd can differentiate.

use candle_core::{Tensor, Var};

use crate::Result;

pub trait Differentiable {
    /// Mean next-token cross-entropy of `tokens (B, T)` u32 (positions `0..T-1`
    /// predicting `1..T`), a scalar.
    fn loss(&self, tokens: &Tensor) -> Result<Tensor>;

    /// The trainable parameters, under their checkpoint keys.
    fn params(&self) -> Vec<(String, Var)>;

    /// Every tensor of the checkpoint with its shape, in checkpoint order, including
    /// those the loss does not depend on (their gradient is zero).
    fn checkpoint_keys(&self) -> Vec<(String, Vec<usize>)>;
}
