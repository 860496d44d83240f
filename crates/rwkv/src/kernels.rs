//! Fused element-wise CPU kernels, as candle custom ops.
//!
//! candle runs every element-wise op as its own pass with its own allocation. Between
//! the matrix products of a block that adds up: on the 2-core reference machine one
//! `[512, 768]` add takes about 1 ms, an eighth of a `[512, 768] x [768, 768]` matmul.
//! The steps here (layer norm, token shift, in-place residual add, squared ReLU) each
//! run in one pass, in parallel over rows once a tensor is large enough to pay for it;
//! [`Gemv`] is the matrix product of a decode step, which is bound by memory
//! bandwidth rather than arithmetic. They implement only `cpu_fwd`; on other devices
//! candle reports the op as missing.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, InplaceOp1, InplaceOp2, Layout, Result, Shape, Tensor,
};
use rayon::prelude::*;

/// Below this many elements a pass runs on the calling thread: a decode step's
/// vectors are too small to amortise a rayon fork-join.
const PARALLEL_MIN: usize = 1 << 15;

/// Accumulator lanes for reductions: independent partial sums that the compiler turns
/// into vector registers (float addition is not associative, so it will not do that
/// for a plain `sum()`).
pub(crate) const LANES: usize = 16;

/// The f32 data a contiguous layout describes.
pub(crate) fn f32_data<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expected f32 input, got {:?}", storage.dtype())
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

pub(crate) fn f32_data_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a mut [f32]> {
    let dtype = storage.dtype();
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expected f32 input, got {dtype:?}")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

/// Runs `f(row_index, row)` over the `row`-sized chunks of `out`, in parallel when
/// `out` is large.
pub(crate) fn for_each_row(out: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(row)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    } else {
        out.chunks_mut(row).enumerate().for_each(|(i, r)| f(i, r));
    }
}

#[inline(always)]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + rest
}

#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// `exp(x)` to about 1 ulp (Cephes `expf`: range reduction by ln 2 and a degree-6
/// polynomial). Unlike `f32::exp`, which calls libm, it inlines and vectorises, which
/// matters because the time mix takes four exponentials per channel per token.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to an integer, which then sits in the low mantissa bits.
    const SHIFT: f32 = 12_582_912.0;
    // Keeps 2^n a normal float: n stays in [-126, 127].
    let x = x.clamp(-87.33, 88.37);
    let t = x * std::f32::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let two_n = f32::from_bits(t.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(127) << 23);
    e * two_n
}

#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Multiply-add, fused where the CPU has FMA (one rounding instead of two; either is
/// far inside the 1e-4 parity tolerance).
pub(crate) trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

pub(crate) struct Fused;
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// Without FMA hardware `f32::mul_add` is a libm call per element, so the portable
/// path multiplies and adds.
pub(crate) struct Unfused;
impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Whether the AVX2 + FMA code paths can run here.
#[inline]
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

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
        let fused = has_avx2_fma();
        let task = |(blk, out): (usize, &mut [f32])| {
            let rows = &w[blk * GEMV_BLOCK * k..];
            #[cfg(target_arch = "x86_64")]
            if fused {
                // SAFETY: `has_avx2_fma` checked that the CPU supports AVX2 and FMA.
                unsafe { gemv_block_avx2(x, rows, k, m, out) };
                return;
            }
            let _ = fused;
            gemv_block::<Unfused>(x, rows, k, m, out);
        };
        if n * k >= GEMV_PARALLEL_MIN {
            yt.par_chunks_mut(GEMV_BLOCK * m).enumerate().for_each(task);
        } else {
            yt.chunks_mut(GEMV_BLOCK * m).enumerate().for_each(task);
        }
        let y = if m == 1 {
            yt
        } else {
            let mut y = vec![0f32; n * m];
            for (j, row) in yt.chunks_exact(m).enumerate() {
                for (i, &v) in row.iter().enumerate() {
                    y[i * n + j] = v;
                }
            }
            y
        };
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }
}

/// [`gemv_block`] compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemv_block_avx2(x: &[f32], w: &[f32], k: usize, m: usize, out: &mut [f32]) {
    gemv_block::<Fused>(x, w, k, m, out);
}

/// `out[j*m + i] = x[i] · w[j]` for the rows `j` of `w` that `out` covers.
#[inline(always)]
fn gemv_block<F: MulAdd>(x: &[f32], w: &[f32], k: usize, m: usize, out: &mut [f32]) {
    for (row, o) in w.chunks_exact(k).zip(out.chunks_exact_mut(m)) {
        for (i, o) in o.iter_mut().enumerate() {
            let xi = &x[i * k..(i + 1) * k];
            let mut acc = [0f32; LANES];
            let (cw, cx) = (row.chunks_exact(LANES), xi.chunks_exact(LANES));
            let mut rest = 0f32;
            for (a, b) in cw.remainder().iter().zip(cx.remainder()) {
                rest = F::mul_add(*a, *b, rest);
            }
            for (a, b) in cw.zip(cx) {
                for l in 0..LANES {
                    acc[l] = F::mul_add(a[l], b[l], acc[l]);
                }
            }
            *o = acc.iter().sum::<f32>() + rest;
        }
    }
}

/// `x @ wᵀ` for an `nn.Linear` weight `w [out, in]`: one matrix product over all rows
/// of `x`, through [`Gemv`] when `x` has only a few rows (decode).
///
/// # Shapes
/// `(x [M, K], w [N, K]) -> [M, N]`
pub(crate) fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dim(0)? <= GEMV_MAX_ROWS && x.device().is_cpu() {
        x.contiguous()?.apply_op2_no_bwd(w, &Gemv)
    } else {
        x.matmul(&w.t()?)
    }
}

/// Layer norm over the last dimension with a two-pass variance, like PyTorch's.
///
/// candle-nn's `layer_norm` takes the variance as `E[x²] - E[x]²`, which loses digits
/// when the residual stream's mean is large against its spread (trained RWKV models
/// reach that in deep layers).
///
/// # Shapes
/// `(x [.., C], weight [C], bias [C]) -> [.., C]`
pub(crate) struct LayerNorm {
    pub eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "rwkv-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(s1, l1, self.name())?;
        let (w, b) = (
            f32_data(s2, l2, self.name())?,
            f32_data(s3, l3, self.name())?,
        );
        let c = w.len();
        if b.len() != c || l1.dims().last() != Some(&c) {
            bail!(
                "{}: x {:?}, weight {c}, bias {}",
                self.name(),
                l1.dims(),
                b.len()
            )
        }
        let mut out = vec![0f32; x.len()];
        for_each_row(&mut out, c, |i, row| {
            let xs = &x[i * c..(i + 1) * c];
            let mean = sum(xs) / c as f32;
            for (o, &v) in row.iter_mut().zip(xs) {
                *o = v - mean;
            }
            let var = dot(row, row) / c as f32;
            let inv_std = 1.0 / (var + self.eps).sqrt();
            for ((o, &w), &b) in row.iter_mut().zip(w).zip(b) {
                *o = *o * inv_std * w + b;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// RWKV's token shift and lerp: for each of M coefficient vectors `mu`,
/// `x_t + (x_{t-1} - x_t) * mu`, with `x_{-1}` taken from `prev` (the previous call's
/// last position).
///
/// # Shapes
/// `(x [B*T, C], prev [B, C]) -> [M, B*T, C]`, `mix` holds M rows of C.
pub(crate) struct ShiftMix<'a> {
    pub mix: &'a [f32],
    pub batch: usize,
}

impl CustomOp2 for ShiftMix<'_> {
    fn name(&self) -> &'static str {
        "rwkv-shift-mix"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, prev) = (
            f32_data(s1, l1, self.name())?,
            f32_data(s2, l2, self.name())?,
        );
        let (rows, c) = l1.shape().dims2()?;
        if c == 0 || !self.mix.len().is_multiple_of(c) || prev.len() != self.batch * c {
            bail!(
                "{}: x {:?}, prev {:?}, {} mix values",
                self.name(),
                l1.dims(),
                l2.dims(),
                self.mix.len()
            )
        }
        if self.batch == 0 || rows % self.batch != 0 {
            bail!(
                "{}: {rows} rows do not split into batch {}",
                self.name(),
                self.batch
            )
        }
        let (m, seq) = (self.mix.len() / c, rows / self.batch);
        let mut out = vec![0f32; m * rows * c];
        for_each_row(&mut out, c, |i, row| {
            let (k, r) = (i / rows, i % rows);
            let cur = &x[r * c..(r + 1) * c];
            let before = if r % seq == 0 {
                let b = r / seq;
                &prev[b * c..(b + 1) * c]
            } else {
                &x[(r - 1) * c..r * c]
            };
            let mu = &self.mix[k * c..(k + 1) * c];
            for (((o, &x), &p), &mu) in row.iter_mut().zip(cur).zip(before).zip(mu) {
                *o = x + (p - x) * mu;
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((m, rows, c))))
    }
}

/// `dst += src`, in place (the residual stream).
pub(crate) struct AddAssign;

impl InplaceOp2 for AddAssign {
    fn name(&self) -> &'static str {
        "rwkv-add-assign"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let src = f32_data(s2, l2, self.name())?;
        let dst = f32_data_mut(s1, l1, self.name())?;
        if dst.len() != src.len() {
            bail!("{}: {:?} += {:?}", self.name(), l1.dims(), l2.dims())
        }
        for_each_row(dst, PARALLEL_MIN / 2, |i, row| {
            let s = &src[i * (PARALLEL_MIN / 2)..];
            for (d, &s) in row.iter_mut().zip(s) {
                *d += s;
            }
        });
        Ok(())
    }
}

/// `x = relu(x)^2`, in place (the channel mix's activation).
pub(crate) struct ReluSquare;

impl InplaceOp1 for ReluSquare {
    fn name(&self) -> &'static str {
        "rwkv-relu-square"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let x = f32_data_mut(storage, layout, self.name())?;
        for_each_row(x, PARALLEL_MIN / 2, |_, row| {
            for v in row {
                let r = v.max(0.0);
                *v = r * r;
            }
        });
        Ok(())
    }
}

/// Layer norm of the last dimension (eps 1e-5, as `F.layer_norm`'s default).
///
/// # Shapes
/// `x [.., C]`, `weight [C]`, `bias [C]` -> `[.., C]`
pub(crate) fn layer_norm(x: &Tensor, (weight, bias): &(Tensor, Tensor)) -> Result<Tensor> {
    x.apply_op3_no_bwd(weight, bias, &LayerNorm { eps: 1e-5 })
}

/// The last position of each sequence, copied so that it does not keep `x` alive.
///
/// # Shapes
/// `x [B*T, C]` -> `[B, C]`
pub(crate) fn last_positions(x: &Tensor, batch: usize) -> Result<Tensor> {
    let (rows, c) = x.dims2()?;
    let seq = rows / batch;
    x.reshape((batch, seq, c))?
        .narrow(1, seq - 1, 1)?
        .reshape((batch, c))?
        .force_contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn exp_is_accurate_to_a_few_ulp_over_the_used_range() {
        let mut worst = 0f64;
        for i in -80_000..=80_000 {
            let x = i as f32 * 1e-3;
            let rel = ((exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            worst = worst.max(rel);
        }
        // 1 ulp of f32 is 6e-8 to 1.2e-7 relative.
        assert!(worst < 3e-7, "max relative error {worst:e}");
        assert!(exp(-200.0) >= 0.0 && exp(-200.0) < 1e-37);
        assert!(exp(200.0).is_finite());
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn layer_norm_matches_the_definition_with_a_large_mean() {
        let dev = Device::Cpu;
        let c = 40;
        let xs: Vec<f32> = (0..3 * c)
            .map(|i| 1000.0 + ((i * 37) % 11) as f32 * 0.01)
            .collect();
        let w: Vec<f32> = (0..c).map(|i| 1.0 + i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..c).map(|i| i as f32 * -0.05).collect();
        let x = Tensor::from_vec(xs.clone(), (3, c), &dev).unwrap();
        let wt = Tensor::new(w.as_slice(), &dev).unwrap();
        let bt = Tensor::new(b.as_slice(), &dev).unwrap();
        let out = x
            .apply_op3_no_bwd(&wt, &bt, &LayerNorm { eps: 1e-5 })
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for r in 0..3 {
            let row: Vec<f64> = xs[r * c..(r + 1) * c].iter().map(|&v| v as f64).collect();
            let mean = row.iter().sum::<f64>() / c as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
            for j in 0..c {
                let want = (row[j] - mean) / (var + 1e-5).sqrt() * w[j] as f64 + b[j] as f64;
                // Inputs near 1000 carry f32 rounding of 6e-5 against a spread of 0.03,
                // times weights up to 4.9: errors up to ~1e-2. The one-pass variance
                // E[x²] - E[x]² loses everything here (errors of order 1).
                let d = (out[r * c + j] as f64 - want).abs();
                assert!(d < 2e-2, "{r},{j}: {d}");
            }
        }
    }

    #[test]
    fn shift_mix_takes_the_previous_token_per_batch_row() {
        let dev = Device::Cpu;
        // B = 2, T = 2, C = 2; prev rows are 100 and 200.
        let x = Tensor::new(&[[1f32, 2.], [3., 4.], [5., 6.], [7., 8.]], &dev).unwrap();
        let prev = Tensor::new(&[[100f32, 100.], [200., 200.]], &dev).unwrap();
        let mix = [0f32, 0., 1., 0.5];
        let out = x
            .apply_op2_no_bwd(
                &prev,
                &ShiftMix {
                    mix: &mix,
                    batch: 2,
                },
            )
            .unwrap();
        assert_eq!(out.dims(), &[2, 4, 2]);
        let out = out.to_vec3::<f32>().unwrap();
        assert_eq!(
            out[0],
            vec![vec![1., 2.], vec![3., 4.], vec![5., 6.], vec![7., 8.]]
        );
        assert_eq!(
            out[1],
            vec![
                vec![100., 51.],
                vec![1., 3.],
                vec![200., 103.],
                vec![5., 7.]
            ]
        );
    }

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
            let got = linear(&x, &w).unwrap();
            assert_eq!(got.dims(), &[m, n]);
            let d = (got - want).unwrap().abs().unwrap().max_all().unwrap();
            // Sums of 37 products of O(1): rounding differences ~1e-6.
            assert!(d.to_scalar::<f32>().unwrap() < 1e-4, "m {m}");
        }
    }

    #[test]
    fn in_place_ops() {
        let dev = Device::Cpu;
        let n = PARALLEL_MIN * 2 + 3;
        let a: Vec<f32> = (0..n).map(|i| i as f32 - 10.0).collect();
        let x = Tensor::new(a.as_slice(), &dev).unwrap();
        x.inplace_op2(&x.ones_like().unwrap(), &AddAssign).unwrap();
        x.inplace_op1(&ReluSquare).unwrap();
        let got = x.to_vec1::<f32>().unwrap();
        for (i, g) in got.iter().enumerate() {
            let want = (i as f32 - 9.0).max(0.0).powi(2);
            assert_eq!(*g, want, "{i}");
        }
    }
}
