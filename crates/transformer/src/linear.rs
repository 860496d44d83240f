//! A linear layer `y = x W^T + b` with the Hugging Face weight layout `(out, in)`,
//! the weight stored in the model's compute dtype or in a weight dtype of its own
//! ([`Matrix`]: bf16/f16 widened as read, ggml blocks through candle's k-quant kernels).
//!
//! On the CPU a single-row product (a decode step) goes to gemm's matrix-vector kernel,
//! which runs on one thread; memory bandwidth then caps a decode step. Splitting the
//! output features across the rayon pool reads the weight with every core.

use candle_core::{DType, Tensor};
use kernels::{Matrix, WeightSource};
use rayon::prelude::*;

use crate::Result;

/// Output features below which a single-row product is not split across threads.
const MIN_SPLIT: usize = 256;

#[derive(Debug, Clone)]
pub struct Linear {
    /// Shape `(out, in)`.
    weight: Matrix,
    /// Shape `(out,)`.
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Matrix, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// Reads `{prefix}.weight` (and `{prefix}.bias` when `bias` is true), the weight
    /// stored as the source stores it.
    pub fn load(
        w: &dyn WeightSource,
        prefix: &str,
        (in_dim, out_dim): (usize, usize),
        bias: bool,
    ) -> Result<Self> {
        let weight = w.matrix(&format!("{prefix}.weight"), (out_dim, in_dim))?;
        let bias = if bias {
            Some(w.tensor(&format!("{prefix}.bias"), &[out_dim])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn weight(&self) -> &Matrix {
        &self.weight
    }

    /// Elements of the bias (0 without one).
    pub fn bias_len(&self) -> usize {
        self.bias.as_ref().map_or(0, |b| b.elem_count())
    }

    /// # Shapes
    /// `x`: `(N, in)` -> `(N, out)`, in the compute dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            Matrix::Dense(w) if w.dtype() == x.dtype() => product(x, w)?,
            m => m.forward(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype())?,
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// `x wᵀ` with `x` and `w` in one dtype.
fn product(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    {
        let rows = x.dim(0)?;
        let out_dim = weight.dim(0)?;
        let threads = rayon::current_num_threads();
        let y = if rows == 1 && x.device().is_cpu() && threads > 1 && out_dim >= 2 * MIN_SPLIT {
            let parts = threads.min(out_dim / MIN_SPLIT);
            let step = out_dim.div_ceil(parts);
            let pieces = (0..out_dim)
                .step_by(step)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|start| {
                    let w = weight.narrow(0, start, step.min(out_dim - start))?;
                    x.matmul(&w.t()?)
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&pieces, 1)?
        } else {
            x.matmul(&weight.t()?)?
        };
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};

    #[test]
    fn split_single_row_product_equals_the_plain_one() {
        let dev = Device::Cpu;
        let w = Tensor::arange(0f32, (1000 * 24) as f32, &dev)
            .unwrap()
            .reshape((1000, 24))
            .unwrap()
            .sin()
            .unwrap();
        let b = Tensor::arange(0f32, 1000., &dev).unwrap();
        let lin = Linear::new(Matrix::Dense(w.clone()), Some(b.clone()));
        let x = Tensor::arange(0f32, 24., &dev)
            .unwrap()
            .cos()
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let got = lin.forward(&x).unwrap();
        let want = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        let diff = (got - want).unwrap().abs().unwrap().max(D::Minus1).unwrap();
        assert!(diff.to_vec1::<f32>().unwrap()[0] < 1e-5);
    }
}
