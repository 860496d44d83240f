//! The model contract: every implementation under test is a stateful causal LM.

use candle_core::{DType, Tensor, D};
use results::ModelInfo;

use crate::Result;

/// A stateful causal language model.
///
/// `prefill` and `step` return the logits of the last position as an f32 tensor of
/// shape `(vocab,)`. State accumulates across calls until `reset`.
pub trait CausalLm {
    fn info(&self) -> &ModelInfo;

    /// Drops all state (recurrent state or KV cache).
    fn reset(&mut self) -> Result<()>;

    /// Consumes a prompt and returns the logits after its last token.
    fn prefill(&mut self, tokens: &[u32]) -> Result<Tensor>;

    /// Consumes one token and returns the logits after it.
    fn step(&mut self, token: u32) -> Result<Tensor>;

    /// Bytes held now by the recurrent state or the KV cache.
    fn state_bytes(&self) -> usize;

    /// Logits at every position of `tokens`, shape `(T, vocab)` f32, from a fresh state.
    ///
    /// The default runs one step per token; implementations with a batched forward
    /// override it. For parity checks (`rwkv-bench logits`), so `T` is small.
    fn logits_all(&mut self, tokens: &[u32]) -> Result<Tensor> {
        self.logits_stepwise(tokens)
    }

    /// Logits at every position from single-token steps, shape `(T, vocab)` f32.
    fn logits_stepwise(&mut self, tokens: &[u32]) -> Result<Tensor> {
        self.reset()?;
        let rows = tokens
            .iter()
            .map(|&t| self.step(t))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(&rows, 0)?)
    }

    /// `log p(t_i | t_<i)` for `i = 1..T` (length `T - 1`), from a fresh state.
    ///
    /// The default walks the sequence one token at a time, so no `T x vocab` logits
    /// tensor ever exists; implementations with a batched forward override it with a
    /// chunked one.
    fn log_probs(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.reset()?;
        let mut out = Vec::with_capacity(tokens.len().saturating_sub(1));
        let Some((&first, rest)) = tokens.split_first() else {
            return Ok(out);
        };
        let mut logits = self.prefill(&[first])?;
        for &next in rest {
            out.push(token_log_prob(&logits, next)?);
            logits = self.step(next)?;
        }
        Ok(out)
    }
}

/// `log_softmax(logits)[token]` for a `(vocab,)` logits tensor.
pub fn token_log_prob(logits: &Tensor, token: u32) -> Result<f32> {
    let logits = logits.to_dtype(DType::F32)?;
    let lse = logits
        .broadcast_sub(&logits.max_keepdim(D::Minus1)?)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .broadcast_add(&logits.max_keepdim(D::Minus1)?)?;
    let picked = logits.narrow(D::Minus1, token as usize, 1)?;
    Ok((picked - lse)?.flatten_all()?.to_vec1::<f32>()?[0])
}

/// Positions per batched forward in chunked `logits_all` / `log_probs`: bounds the
/// logits held at once to `LOGITS_CHUNK x vocab`.
pub const LOGITS_CHUNK: usize = 256;

/// `log p(t_i | t_<i)` for `i = 1..T` from batched forwards of `LOGITS_CHUNK`
/// positions: `forward(chunk)` must continue the state and return `(chunk, vocab)`
/// logits. Each chunk is reduced to log-probabilities before the next one runs.
pub fn chunked_log_probs(
    tokens: &[u32],
    mut forward: impl FnMut(&[u32]) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(tokens.len().saturating_sub(1));
    for (c, chunk) in tokens.chunks(LOGITS_CHUNK).enumerate() {
        let start = c * LOGITS_CHUNK;
        // Row i predicts token start + i + 1, which the last row of the document
        // does not have.
        let targets = &tokens[start + 1..(start + chunk.len() + 1).min(tokens.len())];
        if targets.is_empty() {
            break;
        }
        let logits = forward(chunk)?.narrow(0, 0, targets.len())?;
        let max = logits.max_keepdim(D::Minus1)?;
        let lse = logits
            .broadcast_sub(&max)?
            .exp()?
            .sum_keepdim(D::Minus1)?
            .log()?
            .add(&max)?;
        let index = Tensor::new(targets, logits.device())?.unsqueeze(1)?;
        let picked = logits.gather(&index, 1)?;
        out.extend((picked - lse)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}
