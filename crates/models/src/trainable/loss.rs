//! Next-token cross-entropy through candle's own ops on whole logits, optionally
//! counting only chosen targets: the plain reference [`super::linear_ce`] is tested
//! against (training uses the fused op, which never holds the whole logits).

use candle_core::{DType, Tensor, D};

use crate::{Error, Result};

/// Mean cross-entropy of `logits (B, T, V)` at positions `0..T-1` against `tokens
/// (B, T)` at `1..T`. With `weights (B, T-1)` (f32, 1 where a target counts, 0 where it
/// does not), the mean is over the counted targets only.
pub fn next_token(logits: &Tensor, tokens: &Tensor, weights: Option<&Tensor>) -> Result<Tensor> {
    let (batch, seq, vocab) = logits.dims3()?;
    if seq < 2 {
        return Err(Error::Unsupported(format!(
            "a loss needs at least 2 tokens per sequence, got {seq}"
        )));
    }
    let rows = batch * (seq - 1);
    let inputs = logits.narrow(1, 0, seq - 1)?.reshape((rows, vocab))?;
    let targets = tokens
        .narrow(1, 1, seq - 1)?
        .flatten_all()?
        .to_dtype(DType::U32)?;
    let Some(weights) = weights else {
        return Ok(candle_nn::loss::cross_entropy(&inputs, &targets)?);
    };
    let log_p = candle_nn::ops::log_softmax(&inputs, D::Minus1)?;
    let picked = log_p.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    let weights = weights.flatten_all()?.to_dtype(DType::F32)?;
    let count = weights.sum_all()?.to_scalar::<f32>()?;
    if count <= 0.0 {
        return Err(Error::Unsupported(
            "the loss weights count no target".into(),
        ));
    }
    Ok(((picked * weights)?.sum_all()? * (-1.0 / count as f64))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn all_ones_weights_equal_the_plain_mean_and_zeros_drop_targets() {
        let dev = Device::Cpu;
        let v: Vec<f32> = (0..2 * 4 * 5)
            .map(|i| ((i * 37 % 11) as f32) * 0.3)
            .collect();
        let logits = Tensor::from_vec(v, (2, 4, 5), &dev).unwrap();
        let tokens = Tensor::new(&[[0u32, 3, 1, 4], [2, 2, 0, 1]], &dev).unwrap();
        let plain = next_token(&logits, &tokens, None)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let ones = Tensor::ones((2, 3), DType::F32, &dev).unwrap();
        let w = next_token(&logits, &tokens, Some(&ones))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((plain - w).abs() < 1e-6, "{plain} vs {w}");

        // Only the first target of the second row counts: its own cross-entropy.
        let mask = Tensor::new(&[[0f32, 0., 0.], [1., 0., 0.]], &dev).unwrap();
        let one = next_token(&logits, &tokens, Some(&mask))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let row = logits
            .get(1)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let lse = row.iter().map(|x| x.exp()).sum::<f32>().ln();
        assert!((one - (lse - row[2])).abs() < 1e-5, "{one}");
        let none = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        assert!(next_token(&logits, &tokens, Some(&none)).is_err());
    }
}
