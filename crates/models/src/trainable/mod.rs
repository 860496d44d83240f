//! The training contract: a model whose parameters are candle [`Var`]s under their
//! checkpoint keys, and whose next-token loss autograd can differentiate; plus what
//! every training step around it needs (the loss, AdamW, clipping).

pub mod adamw;
pub mod clip;
pub mod linear_ce;
#[cfg(test)]
mod loss;
pub mod step;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Tensor, Var};
use results::ModelInfo;

use crate::Result;

pub use adamw::AdamW;
pub use step::Stepper;

pub trait Differentiable {
    /// What the model is, as the inference build of the same spec describes it.
    fn info(&self) -> &ModelInfo;

    /// `tokens (B, T)` u32 -> the last norm's output `(B, T, C)` f32, differentiable.
    fn hidden(&self, tokens: &Tensor) -> Result<Tensor>;

    /// The output head `(V, C)` (the embeddings, when tied).
    fn head(&self) -> Result<Tensor>;

    /// `tokens (B, T)` u32 -> logits `(B, T, V)` f32, differentiable.
    fn logits(&self, tokens: &Tensor) -> Result<Tensor> {
        Ok(self.hidden(tokens)?.broadcast_matmul(&self.head()?.t()?)?)
    }

    /// Mean next-token cross-entropy of `tokens (B, T)` (positions `0..T-1`
    /// predicting `1..T`, Hugging Face's `labels = input_ids`), a scalar; with
    /// `weights (B, T-1)`, over the targets they count. The head and the loss are
    /// fused ([`linear_ce`]): the whole `(B, T, V)` logits never exist.
    fn loss_weighted(&self, tokens: &Tensor, weights: Option<&Tensor>) -> Result<Tensor> {
        linear_ce::linear_next_token(&self.hidden(tokens)?, &self.head()?, tokens, weights)
    }

    fn loss(&self, tokens: &Tensor) -> Result<Tensor> {
        self.loss_weighted(tokens, None)
    }

    /// Token ids are `0..vocab()`.
    fn vocab(&self) -> usize;

    /// The trainable parameters, under their checkpoint keys.
    fn params(&self) -> Vec<(String, Var)>;

    /// Every tensor of the checkpoint with its shape, in checkpoint order, including
    /// those the loss does not depend on (their gradient is zero).
    fn checkpoint_keys(&self) -> Vec<(String, Vec<usize>)>;

    /// Writes the current weights in the model's own checkpoint format into the
    /// existing, empty directory `dir`; returns the path a model spec loads them from
    /// (a file for RWKV-7, the directory for a Hugging Face model).
    fn save(&self, dir: &Path) -> Result<PathBuf>;
}

/// The loss of `tokens (B, T)` and the gradient of every checkpoint tensor, in
/// checkpoint order and shape (zeros where the loss does not depend on a tensor).
pub fn gradients(
    model: &dyn Differentiable,
    tokens: &Tensor,
) -> Result<(Tensor, Vec<(String, Tensor)>)> {
    let loss = model.loss(tokens)?;
    let grads = loss.backward()?;
    let params: HashMap<String, Var> = model.params().into_iter().collect();
    let mut out = Vec::new();
    for (key, shape) in model.checkpoint_keys() {
        let grad = match params.get(&key).and_then(|v| grads.get(v.as_tensor())) {
            Some(g) => g.reshape(shape)?,
            None => Tensor::zeros(shape, candle_core::DType::F32, tokens.device())?,
        };
        out.push((key, grad));
    }
    Ok((loss, out))
}
