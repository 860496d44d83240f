//! The [`CausalLm`] of an implementation with a batched forward that continues its
//! state (both of ours): prefill, decode, chunked logits and chunked log-probabilities
//! written once, so both families get the same care.

use candle_core::{DType, Device, Tensor};
use kernels::Logits;
use results::ModelInfo;

use crate::model::{chunked_log_probs, CausalLm, LOGITS_CHUNK};
use crate::{Error, Result};

/// A model whose forward takes a whole chunk of tokens.
pub trait Batched {
    fn info(&self) -> &ModelInfo;

    /// Drops all state (recurrent state or KV cache).
    fn reset(&mut self) -> Result<()>;

    /// Bytes held now by the recurrent state or the KV cache.
    fn state_bytes(&self) -> usize;

    fn device(&self) -> Device;

    /// Runs `input` `(1, T)` after the current state.
    ///
    /// # Shapes
    /// `(1, T, V)` for [`Logits::All`], `(1, V)` for [`Logits::Last`], f32.
    fn forward_batch(&mut self, input: &Tensor, logits: Logits) -> Result<Tensor>;
}

/// Runs `tokens` after the current state: `(T, V)` for `All`, `(V,)` for `Last`.
fn forward<M: Batched>(m: &mut M, tokens: &[u32], logits: Logits) -> Result<Tensor> {
    if tokens.is_empty() {
        return Err(Error::Unsupported(format!(
            "{}: a forward needs at least one token",
            m.info().spec
        )));
    }
    let input = Tensor::new(tokens, &m.device())?.unsqueeze(0)?;
    Ok(m.forward_batch(&input, logits)?.squeeze(0)?)
}

impl<M: Batched> CausalLm for M {
    fn info(&self) -> &ModelInfo {
        Batched::info(self)
    }

    fn reset(&mut self) -> Result<()> {
        Batched::reset(self)
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<Tensor> {
        forward(self, tokens, Logits::Last)
    }

    fn step(&mut self, token: u32) -> Result<Tensor> {
        forward(self, &[token], Logits::Last)
    }

    fn state_bytes(&self) -> usize {
        Batched::state_bytes(self)
    }

    /// One batched forward per `LOGITS_CHUNK` positions.
    fn logits_all(&mut self, tokens: &[u32]) -> Result<Tensor> {
        Batched::reset(self)?;
        let rows = tokens
            .chunks(LOGITS_CHUNK)
            .map(|chunk| forward(self, chunk, Logits::All))
            .collect::<Result<Vec<_>>>()?;
        if rows.is_empty() {
            let vocab = Batched::info(self).vocab;
            return Ok(Tensor::zeros((0, vocab), DType::F32, &self.device())?);
        }
        Ok(Tensor::cat(&rows, 0)?)
    }

    /// Batched forwards of `LOGITS_CHUNK` positions; each chunk's logits are reduced to
    /// log-probabilities of the next tokens before the next chunk runs.
    fn log_probs(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        Batched::reset(self)?;
        chunked_log_probs(tokens, |chunk| forward(self, chunk, Logits::All))
    }
}
