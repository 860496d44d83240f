//! The matrix product of a decode step, as a candle custom op.
//!
//! A decode step multiplies one row (or a few) by every weight matrix, which is bound
//! by memory bandwidth rather than arithmetic; [`Gemv`] streams each matrix once with
//! every core. Longer inputs go to candle's matmul ([`linear`] picks).

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use kernels::{dot_mul_add, Matrix, MulAdd};
use rayon::prelude::*;

use crate::ops::f32_data;

/// Inputs with at most this many rows go through [`Gemv`] rather than candle's matmul.
pub(crate) const GEMV_MAX_ROWS: usize = 4;

/// Weights below which [`Gemv`] runs on one thread: a LoRA matrix (under 100 K
/// weights) reads in a few microseconds, less than a fork-join costs.
const GEMV_PARALLEL_MIN: usize = 1 << 18;

/// Output rows per parallel task of [`Gemv`]: 64 rows of a 768-wide matrix is 192 KB
/// of weights, enough to amortise a task.
const GEMV_BLOCK: usize = 64;

/// `x @ wᵀ` for a few rows of `x`, streaming `w` once with both cores.
///
/// A decode step's matrix products are bound by reading the weights (a 0.1B model
/// reads 560 MB per token). candle's gemm takes a matrix-vector path for one row that
/// reaches about a third of this machine's memory bandwidth; this kernel splits the
/// output rows over threads and reads each weight row once for all input rows.
///
/// # Shapes
/// `(x [M, K], w [N, K]) -> [M, N]`, M <= [`GEMV_MAX_ROWS`].
pub(crate) struct Gemv;

impl CustomOp2 for Gemv {
    fn name(&self) -> &'static str {
        "rwkv-gemv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (
            f32_data(s1, l1, self.name())?,
            f32_data(s2, l2, self.name())?,
        );
        let ((m, k), (n, k2)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if k != k2 || m > GEMV_MAX_ROWS || m == 0 {
            bail!("{}: x {:?}, w {:?}", self.name(), l1.dims(), l2.dims())
        }
        // Computed as yᵀ [N, M] so that every task owns a contiguous block.
        let mut yt = vec![0f32; n * m];
        let task =
            |(blk, out): (usize, &mut [f32])| gemv_rows(x, &w[blk * GEMV_BLOCK * k..], k, m, out);
        if n * k >= GEMV_PARALLEL_MIN {
            yt.par_chunks_mut(GEMV_BLOCK * m).enumerate().for_each(task);
        } else {
            yt.chunks_mut(GEMV_BLOCK * m).enumerate().for_each(task);
        }
        let y = kernels::untranspose(yt, m, n);
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }
}

kernels::dispatch!(
    /// [`gemv_block`] for the instruction set the CPU has.
    fn gemv_rows(x: &[f32], w: &[f32], k: usize, m: usize, out: &mut [f32]) => gemv_block::<MulAdd>
);

/// `out[j*m + i] = x[i] · w[j]` for the rows `j` of `w` that `out` covers.
#[inline(always)]
fn gemv_block<F: MulAdd>(x: &[f32], w: &[f32], k: usize, m: usize, out: &mut [f32]) {
    for (row, o) in w.chunks_exact(k).zip(out.chunks_exact_mut(m)) {
        for (i, o) in o.iter_mut().enumerate() {
            *o = dot_mul_add::<F>(row, &x[i * k..(i + 1) * k]);
        }
    }
}

/// `x @ wᵀ` for an `nn.Linear` weight `w [out, in]`: one matrix product over all rows
/// of `x`; f32 weights go through [`Gemv`] when `x` has only a few rows (decode), other
/// storage types through their own kernels ([`Matrix::forward`]).
///
/// # Shapes
/// `(x [M, K], w [N, K]) -> [M, N]`
pub(crate) fn linear(x: &Tensor, w: &Matrix) -> Result<Tensor> {
    match w.as_f32() {
        Some(w) => linear_f32(x, w),
        None => w.forward(x),
    }
}

fn linear_f32(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dim(0)? <= GEMV_MAX_ROWS && x.device().is_cpu() {
        x.contiguous()?.apply_op2_no_bwd(w, &Gemv)
    } else {
        x.matmul(&w.t()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn gemv_matches_matmul_for_every_row_count() {
        let dev = Device::Cpu;
        // K not a multiple of the lane count, N not a multiple of the block.
        let (n, k) = (GEMV_BLOCK * 3 + 5, 37);
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6)
            .collect();
        let w = Tensor::from_vec(w, (n, k), &dev).unwrap();
        for m in 1..=GEMV_MAX_ROWS {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 5) % 11) as f32 * 0.2 - 1.0)
                .collect();
            let x = Tensor::from_vec(x, (m, k), &dev).unwrap();
            let want = x.matmul(&w.t().unwrap()).unwrap();
            let got = linear_f32(&x, &w).unwrap();
            assert_eq!(got.dims(), &[m, n]);
            let d = (got - want).unwrap().abs().unwrap().max_all().unwrap();
            // Sums of 37 products of O(1): rounding differences ~1e-6.
            assert!(d.to_scalar::<f32>().unwrap() < 1e-4, "m {m}");
        }
    }
}
