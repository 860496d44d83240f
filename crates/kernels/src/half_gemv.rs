//! Products with 16-bit weights (bf16 or f16) and f32 activations, accumulated in f32.
//!
//! candle 0.11 has no bf16 matmul on the CPU, and its f16 one rounds the activations
//! to f16 too. A decode step is bound by reading the weights, so [`HalfGemv`] streams
//! the 16-bit rows once with every core and widens each in L1 before its dot products:
//! half the bytes of f32 for the same arithmetic (bf16 rows on AVX512-BF16 are dotted
//! without widening, against the activations rounded to bf16). Longer inputs are
//! compute-bound: bf16 weights go through [`crate::bf16_gemm`] where the CPU has
//! AVX512-BF16 (twice the multiply-adds per instruction); elsewhere, and for f16, a tile
//! of rows at a time is widened and handed to candle's f32 matmul, so a prefill costs
//! what f32 costs plus one widening pass per tile.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

use crate::bf16_gemm::{bf16_matmul_t, round_pairs};
use crate::{avx512, x86, MulAdd, LANES};

/// Inputs with at most this many rows go through [`HalfGemv`].
pub const HALF_GEMV_MAX_ROWS: usize = 4;

/// Output rows per parallel task of [`HalfGemv`].
const BLOCK: usize = 32;

/// Weights below which [`HalfGemv`] runs on one thread (a fork-join costs more than
/// reading them).
const PARALLEL_MIN: usize = 1 << 18;

/// Widened f32 bytes per tile of the prefill path: small enough to stay in L2/L3
/// while the matmul reads it, large enough that each matmul call runs at full speed.
const TILE_BYTES: usize = 4 << 20;

/// A 16-bit float type the kernels widen, one element at a time in integer and float
/// arithmetic that vectorises (no per-element feature test, no lookup).
pub trait Half: Copy + Send + Sync + 'static {
    fn widen(self) -> f32;
}

impl Half for bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        // A bf16 is the top half of an f32.
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

impl Half for f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        // Exponent and mantissa moved into f32 position, then rebiased by a multiply by
        // 2^112, which also turns f16 subnormals into the right normal f32; inf and NaN
        // get the f32 all-ones exponent.
        let h = self.to_bits() as u32;
        let em = h & 0x7fff;
        let scaled = f32::from_bits(em << 13) * f32::from_bits(0x7780_0000);
        let special = if em >= 0x7c00 { 0x7f80_0000 } else { 0 };
        f32::from_bits(scaled.to_bits() | special | ((h & 0x8000) << 16))
    }
}

/// `Σ w[i] * x[i]` with `w` widened as it is read, in [`LANES`] partial sums.
#[inline(always)]
fn dot_half<F: MulAdd, H: Half>(w: &[H], x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (cw, cx) = (w.chunks_exact(LANES), x.chunks_exact(LANES));
    let mut rest = 0f32;
    for (a, b) in cw.remainder().iter().zip(cx.remainder()) {
        rest = F::mul_add(a.widen(), *b, rest);
    }
    for (a, b) in cw.zip(cx) {
        for l in 0..LANES {
            acc[l] = F::mul_add(a[l].widen(), b[l], acc[l]);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// `out[j*m + i] = x[i] · w[j]` for the rows `j` of `w` that `out` covers.
#[inline(always)]
fn rows_body<F: MulAdd, H: Half>(x: &[f32], w: &[H], k: usize, m: usize, out: &mut [f32]) {
    for (wr, o) in w.chunks_exact(k).zip(out.chunks_exact_mut(m)) {
        for (i, o) in o.iter_mut().enumerate() {
            *o = dot_half::<F, H>(wr, &x[i * k..(i + 1) * k]);
        }
    }
}

#[inline(always)]
fn bf16_rows_body<F: MulAdd>(x: &[f32], w: &[bf16], k: usize, m: usize, out: &mut [f32]) {
    rows_body::<F, bf16>(x, w, k, m, out)
}

#[inline(always)]
fn f16_rows_body<F: MulAdd>(x: &[f32], w: &[f16], k: usize, m: usize, out: &mut [f32]) {
    rows_body::<F, f16>(x, w, k, m, out)
}

crate::dispatch!(fn bf16_rows(x: &[f32], w: &[bf16], k: usize, m: usize, out: &mut [f32]) => bf16_rows_body::<MulAdd>);
crate::dispatch!(fn f16_rows(x: &[f32], w: &[f16], k: usize, m: usize, out: &mut [f32]) => f16_rows_body::<MulAdd>);

/// `out[j*m + i] = dot(w[j] as bits, row i of x)` for the weight rows `w` (length K)
/// that `out` covers, `x` holding `m` rows of activations in the kernel's format.
#[inline(always)]
fn dot_rows<A, H: Half>(
    x: &[A],
    w: &[H],
    (k, m): (usize, usize),
    out: &mut [f32],
    dot: impl Fn(&[u16], &[A]) -> f32,
) {
    let row = x.len() / m;
    for (wr, o) in w.chunks_exact(k).zip(out.chunks_exact_mut(m)) {
        // SAFETY: `Half` types are 16-bit floats, laid out as u16.
        let bits = unsafe { std::slice::from_raw_parts(wr.as_ptr() as *const u16, k) };
        for (o, xr) in o.iter_mut().zip(x.chunks_exact(row)) {
            *o = dot(bits, xr);
        }
    }
}

/// [`gemv_t`]'s rows through [`x86::dot_16bit`] (K a multiple of 16).
fn x86_rows<H: Half + Bits>(x: &[f32], w: &[H], k: usize, m: usize, out: &mut [f32]) {
    dot_rows(x, w, (k, m), out, |bits, xr| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: callers checked `x86::available()` and K % 16 == 0.
        return unsafe { x86::dot_16bit(bits, xr, H::BF16) };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("x86::available() is false elsewhere: {bits:?} {xr:?}")
    })
}

/// Which 16-bit format a [`Half`] is.
pub trait Bits {
    const BF16: bool;
}

impl Bits for bf16 {
    const BF16: bool = true;
}

impl Bits for f16 {
    const BF16: bool = false;
}

/// [`gemv_t`]'s rows through [`avx512::dot_bf16`], with `x` as bf16 pairs `[M, K/2]`.
fn bf16_pair_rows(x: &[u32], w: &[bf16], k: usize, m: usize, out: &mut [f32]) {
    dot_rows(x, w, (k, m), out, |bits, xr| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: callers checked `avx512::has_bf16()`; K is even.
        return unsafe { avx512::dot_bf16(bits, xr) };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("avx512::has_bf16() is false elsewhere: {bits:?} {xr:?}")
    })
}

/// `yᵀ [N, M]` for activations `x` (`M` rows, f32 or bf16 pairs) and `w [N, K]`, row
/// blocks over the rayon pool.
fn gemv_t<A: Sync, H: Half>(
    x: &[A],
    w: &[H],
    (m, k, n): (usize, usize, usize),
    rows: fn(&[A], &[H], usize, usize, &mut [f32]),
) -> Vec<f32> {
    let mut yt = vec![0f32; n * m];
    let task = |(blk, out): (usize, &mut [f32])| {
        let w = &w[blk * BLOCK * k..(blk * BLOCK * k + out.len() / m * k)];
        rows(x, w, k, m, out)
    };
    if n * k >= PARALLEL_MIN {
        yt.par_chunks_mut(BLOCK * m).enumerate().for_each(task);
    } else {
        yt.chunks_mut(BLOCK * m).enumerate().for_each(task);
    }
    yt
}

/// `x @ wᵀ` for a few f32 rows `x [M, K]` and 16-bit weights `w [N, K]` -> f32 `[M, N]`.
pub struct HalfGemv;

impl CustomOp2 for HalfGemv {
    fn name(&self) -> &'static str {
        "half-gemv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((m, k), (n, k2)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if k != k2 || m == 0 || m > HALF_GEMV_MAX_ROWS {
            bail!("{}: x {:?}, w {:?}", self.name(), l1.dims(), l2.dims())
        }
        let (Some((x0, x1)), Some((w0, w1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            bail!("{}: inputs must be contiguous", self.name())
        };
        let CpuStorage::F32(x) = s1 else {
            bail!("{}: x must be f32, not {:?}", self.name(), s1.dtype())
        };
        let x = &x[x0..x1];
        let fast = k.is_multiple_of(16) && x86::available();
        let yt = match s2 {
            // Rounded to bf16 as the prefill rounds them (`bf16_gemm`).
            CpuStorage::BF16(w) if k % 2 == 0 && avx512::has_bf16() => {
                let mut pairs = vec![0u32; m * k / 2];
                for (r, o) in x.chunks_exact(k).zip(pairs.chunks_exact_mut(k / 2)) {
                    round_pairs(r, o);
                }
                gemv_t(&pairs, &w[w0..w1], (m, k, n), bf16_pair_rows)
            }
            CpuStorage::BF16(w) if fast => gemv_t(x, &w[w0..w1], (m, k, n), x86_rows),
            CpuStorage::F16(w) if fast => gemv_t(x, &w[w0..w1], (m, k, n), x86_rows),
            CpuStorage::BF16(w) => gemv_t(x, &w[w0..w1], (m, k, n), bf16_rows),
            CpuStorage::F16(w) => gemv_t(x, &w[w0..w1], (m, k, n), f16_rows),
            s => bail!(
                "{}: w must be bf16 or f16, not {:?}",
                self.name(),
                s.dtype()
            ),
        };
        let y = crate::untranspose(yt, m, n);
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }
}

/// `x @ wᵀ` for f32 `x [M, K]` and 16-bit `w [N, K]`, accumulated in f32 -> `[M, N]`.
pub fn half_matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    let (m, k) = x.dims2()?;
    let n = w.dim(0)?;
    if !x.device().is_cpu() {
        // GPUs have native 16-bit matmuls that accumulate in f32.
        return x.to_dtype(w.dtype())?.matmul(&w.t()?)?.to_dtype(DType::F32);
    }
    if m <= HALF_GEMV_MAX_ROWS {
        return x.apply_op2_no_bwd(w, &HalfGemv);
    }
    if let Some(y) = bf16_matmul_t(&x, w)? {
        return Ok(y);
    }
    let tile = (TILE_BYTES / (4 * k.max(1))).clamp(16, n.max(16));
    let parts = (0..n)
        .step_by(tile)
        .map(|start| {
            let wt = widen_rows(&w.narrow(0, start, tile.min(n - start))?)?;
            x.matmul(&wt.t()?)
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&parts, 1)
}

/// A 16-bit `[R, K]` tensor as f32, widened with every core.
fn widen_rows(w: &Tensor) -> Result<Tensor> {
    let w = w.contiguous()?;
    let (r, k) = w.dims2()?;
    let mut out = vec![0f32; r * k];
    let (storage, layout) = w.storage_and_layout();
    let Some((a, b)) = layout.contiguous_offsets() else {
        bail!("widen: not contiguous")
    };
    match &*storage {
        candle_core::Storage::Cpu(CpuStorage::BF16(s)) => widen_all(&s[a..b], &mut out, k),
        candle_core::Storage::Cpu(CpuStorage::F16(s)) => widen_all(&s[a..b], &mut out, k),
        _ => bail!(
            "widen: expected bf16 or f16 on the CPU, got {:?}",
            w.dtype()
        ),
    }
    drop(storage);
    Tensor::from_vec(out, (r, k), w.device())
}

fn widen_all<H: Half>(src: &[H], out: &mut [f32], k: usize) {
    out.par_chunks_mut(k * 16)
        .zip(src.par_chunks(k * 16))
        .for_each(|(o, s)| widen_slice(s, o));
}

#[inline(always)]
fn widen_body<H: Half>(src: &[H], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.widen();
    }
}

/// [`widen_body`] for the instruction set the CPU has (generic, so dispatched by hand).
fn widen_slice<H: Half>(src: &[H], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn avx2<H: Half>(src: &[H], dst: &mut [f32]) {
            widen_body(src, dst)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { avx2(src, dst) };
        }
    }
    widen_body(src, dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn data(n: usize, k: usize, salt: usize) -> Tensor {
        let v: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7 + salt) % 19) as f32 * 0.1 - 0.9)
            .collect();
        Tensor::from_vec(v, (n, k), &Device::Cpu).unwrap()
    }

    #[test]
    fn f16_widening_is_exact_for_normals_subnormals_zeros_and_infinities() {
        for bits in (0..=u16::MAX).filter(|b| (b & 0x7c00) != 0x7c00 || (b & 0x3ff) == 0) {
            let h = f16::from_bits(bits);
            assert_eq!(h.widen().to_bits(), h.to_f32().to_bits(), "{bits:#06x}");
        }
        assert!(f16::NAN.widen().is_nan());
    }

    #[test]
    fn every_row_count_and_both_types_match_the_widened_f32_product() {
        // N not a multiple of the block; K = 37 takes the portable rows, 64 the AVX2
        // ones where the CPU has them; 1..4 rows take the gemv, 5 and 300 the tiles.
        for (n, k) in [(BLOCK * 5 + 3, 37), (BLOCK * 2 + 1, 64)] {
            let w = data(n, k, 0);
            for dtype in [DType::BF16, DType::F16] {
                let wh = w.to_dtype(dtype).unwrap();
                let wf = wh.to_dtype(DType::F32).unwrap();
                for m in [1, 2, 3, 4, 5, 300] {
                    let x = data(m, k, 3);
                    // AVX512-BF16 products round the activations to bf16 too.
                    let rounded =
                        dtype == DType::BF16 && k % 2 == 0 && crate::bf16_gemm::available();
                    let xw = match rounded {
                        true => x
                            .to_dtype(DType::BF16)
                            .unwrap()
                            .to_dtype(DType::F32)
                            .unwrap(),
                        false => x.clone(),
                    };
                    let want = xw.matmul(&wf.t().unwrap()).unwrap();
                    let got = half_matmul_t(&x, &wh).unwrap();
                    assert_eq!(got.dims(), &[m, n]);
                    let d = (got - want).unwrap().abs().unwrap().max_all().unwrap();
                    // Same widened weights, f32 sums of O(1) products: rounding only.
                    assert!(
                        d.to_scalar::<f32>().unwrap() < 1e-4,
                        "{dtype:?} k {k} m {m}"
                    );
                }
            }
        }
    }
}
