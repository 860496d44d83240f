//! Prefill products with bf16 weights on CPUs with AVX512-BF16.
//!
//! `vdpbf16ps` multiplies 32 pairs of bf16 and adds each pair's sum into one of 16 f32
//! lanes: twice the multiply-adds of an f32 FMA per instruction. A prefill is bound by
//! arithmetic, so this is what makes bf16 weights faster than f32 there, not only
//! smaller. The activations are rounded to bf16 on the way in (as llama.cpp does for a
//! bf16 model: its `vec_dot_type` is bf16) and every sum stays in f32.
//!
//! Layout: the weights `w [N, K]` are packed one panel of [`NR`] output columns at a
//! time into `[K/2, NR]` words, each word the bf16 pair `(w[n][2p], w[n][2p+1])`, so a
//! 64-byte load serves 16 columns; each pair of the activations is broadcast from its
//! row. A micro-kernel keeps an `R × NR` tile of sums (R ≤ [`MR`]) in 24 registers.

use candle_core::{bail, CpuStorage, DType, Result, Storage, Tensor};
use half::bf16;
use rayon::prelude::*;

/// Output columns per packed panel: four 16-lane vectors.
const NR: usize = 64;

/// Activation rows per micro-kernel call: 6 × 4 accumulators, 4 weight vectors and a
/// broadcast fit the 32 vector registers.
const MR: usize = 6;

/// Whether this CPU runs [`bf16_matmul_t`].
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x @ wᵀ` for f32 `x [M, K]` and bf16 `w [N, K]` on the CPU -> f32 `[M, N]`, with `x`
/// rounded to bf16. `None` where the CPU lacks AVX512-BF16 or K is odd (the caller
/// widens the weights instead).
pub fn bf16_matmul_t(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    let (m, k) = x.dims2()?;
    let (n, k2) = w.dims2()?;
    if k != k2 {
        bail!("bf16 matmul: x {:?}, w {:?}", x.dims(), w.dims())
    }
    if !available() || k % 2 == 1 || w.dtype() != DType::BF16 || !x.device().is_cpu() {
        return Ok(None);
    }
    let x = x.contiguous()?.to_dtype(DType::F32)?;
    let w = w.contiguous()?;
    let xs = x.storage_and_layout();
    let ws = w.storage_and_layout();
    let (Some((x0, x1)), Some((w0, w1))) = (xs.1.contiguous_offsets(), ws.1.contiguous_offsets())
    else {
        bail!("bf16 matmul: inputs must be contiguous")
    };
    let (Storage::Cpu(CpuStorage::F32(xv)), Storage::Cpu(CpuStorage::BF16(wv))) = (&*xs.0, &*ws.0)
    else {
        bail!("bf16 matmul: expected f32 x and bf16 w on the CPU")
    };
    let y = matmul_t(&xv[x0..x1], &wv[w0..w1], (m, k, n));
    drop((xs, ws));
    Ok(Some(Tensor::from_vec(y, (m, n), x.device())?))
}

/// `x` (even length) rounded to bf16, as pairs: `out[p] = (x[2p], x[2p + 1])`.
pub(crate) fn round_pairs(x: &[f32], out: &mut [u32]) {
    assert_eq!(x.len(), 2 * out.len());
    // SAFETY: a pair word is two bf16 in memory order (low half first, little-endian),
    // so the words are the bf16 array of `x`'s length.
    let halves = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut bf16, x.len()) };
    round(x, halves, crate::avx512::has_bf16_convert());
}

/// `src` rounded to bf16 (to nearest even) into `dst`; `fast` where the CPU passed
/// [`crate::avx512::has_bf16_convert`].
pub(crate) fn round(src: &[f32], dst: &mut [bf16], fast: bool) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: `fast` means the CPU has the features; equal lengths.
        return unsafe { crate::avx512::to_bf16(src, dst) };
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d = bf16::from_f32(*s);
    }
}

/// The product on slices; callers checked [`available`] and that K is even.
fn matmul_t(x: &[f32], w: &[bf16], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
    gemm_t(x, (m, k, n), |start, rows| {
        rows.copy_from_slice(&w[start * k..start * k + rows.len()])
    })
}

/// `x [M, K] @ wᵀ` for weights `w [N, K]` that `rows(start, out)` writes as bf16, a
/// panel of `out.len() / K` rows from row `start` at a time (so block-quantised weights
/// are decoded a panel at a time, in cache, never whole).
///
/// # Panics
/// Where the CPU lacks AVX512-BF16 ([`available`]) or K is odd: callers check both.
pub(crate) fn gemm_t(
    x: &[f32],
    (m, k, n): (usize, usize, usize),
    rows: impl Fn(usize, &mut [bf16]) + Sync,
) -> Vec<f32> {
    // The micro-kernel's instructions would fault without the features.
    assert!(
        available() && k % 2 == 0,
        "bf16 GEMM without AVX512-BF16 or with odd K {k}"
    );
    assert_eq!(x.len(), m * k, "bf16 GEMM: x is not [{m}, {k}]");
    let kp = k / 2;
    let mut xb = vec![0u32; m * kp];
    xb.par_chunks_mut(kp)
        .zip(x.par_chunks(k))
        .for_each(|(o, r)| round_pairs(r, o));
    let mut y = vec![0f32; m * n];
    let out = SharedOut(y.as_mut_ptr());
    (0..n.div_ceil(NR)).into_par_iter().for_each(|panel| {
        let n0 = panel * NR;
        let width = NR.min(n - n0);
        let mut w = vec![bf16::ZERO; width * k];
        rows(n0, &mut w);
        let packed = pack(&w, k, width);
        let mut tile = [0f32; MR * NR];
        for m0 in (0..m).step_by(MR) {
            let rows = MR.min(m - m0);
            // SAFETY: `available()` was asserted above; `xb` holds `rows` rows of
            // `kp` words from `m0`, and `packed` `kp` panels of NR words.
            unsafe { micro(rows, &xb[m0 * kp..(m0 + rows) * kp], kp, &packed, &mut tile) };
            for r in 0..rows {
                // SAFETY: each panel writes only its own columns `n0..n0 + width` of
                // `y`, which outlives the parallel loop; rows and columns are in range.
                unsafe {
                    let dst = out.at((m0 + r) * n + n0);
                    std::ptr::copy_nonoverlapping(tile[r * NR..].as_ptr(), dst, width);
                }
            }
        }
    });
    y
}

/// The output buffer, written by disjoint column panels from several threads.
struct SharedOut(*mut f32);
// SAFETY: the panels write disjoint elements (see `gemm_t`).
unsafe impl Sync for SharedOut {}
unsafe impl Send for SharedOut {}

impl SharedOut {
    /// The element `i` (a method, so closures capture the whole wrapper).
    fn at(&self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// `width` weight rows of length `k` as `[k/2, NR]` pair words, columns past `width`
/// zero.
fn pack(w: &[bf16], k: usize, width: usize) -> Vec<u32> {
    let kp = k / 2;
    let mut packed = vec![0u32; kp * NR];
    for (c, row) in w.chunks_exact(k).take(width).enumerate() {
        // SAFETY: `row` holds `2 * kp` bf16, read as `kp` (unaligned) pair words in
        // memory order, which is `pair`'s order.
        let words = row.as_ptr() as *const u32;
        for p in 0..kp {
            packed[p * NR + c] = unsafe { words.add(p).read_unaligned() };
        }
    }
    packed
}

/// `tile[r][c] = Σ_p xb[r][p] · packed[p][c]` for `rows` ≤ [`MR`] rows.
///
/// # Safety
/// The CPU must have AVX512-F and AVX512-BF16; `xb` holds `rows × kp` words and
/// `packed` `kp × NR`.
unsafe fn micro(rows: usize, xb: &[u32], kp: usize, packed: &[u32], tile: &mut [f32; MR * NR]) {
    debug_assert!(xb.len() == rows * kp && packed.len() == kp * NR);
    #[cfg(target_arch = "x86_64")]
    match rows {
        6 => x86::micro::<6>(xb, kp, packed, tile),
        5 => x86::micro::<5>(xb, kp, packed, tile),
        4 => x86::micro::<4>(xb, kp, packed, tile),
        3 => x86::micro::<3>(xb, kp, packed, tile),
        2 => x86::micro::<2>(xb, kp, packed, tile),
        _ => x86::micro::<1>(xb, kp, packed, tile),
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (rows, xb, kp, packed, tile);
        unreachable!("available() is false off x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{MR, NR};

    /// [`super::micro`] for `R` rows.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn micro<const R: usize>(
        xb: &[u32],
        kp: usize,
        packed: &[u32],
        tile: &mut [f32; MR * NR],
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let (xp, bp) = (xb.as_ptr(), packed.as_ptr());
        for p in 0..kp {
            let b = bp.add(p * NR);
            let bv: [__m512bh; 4] = [
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b as *const _)),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.add(16) as *const _)),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.add(32) as *const _)),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.add(48) as *const _)),
            ];
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_epi32(*xp.add(r * kp + p) as i32);
                let a = std::mem::transmute::<__m512i, __m512bh>(a);
                for (acc, b) in acc.iter_mut().zip(bv) {
                    *acc = _mm512_dpbf16_ps(*acc, a, b);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(tile.as_mut_ptr().add(r * NR + v * 16), *acc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{matrix, relative_error};

    fn data(rows: usize, cols: usize, step: f32) -> Tensor {
        matrix(rows, cols, f32::sin, step)
    }

    #[test]
    fn every_shape_edge_matches_the_product_of_the_rounded_inputs() {
        if !available() {
            return;
        }
        // Row counts around MR, columns around NR (a partial panel), K from one pair up.
        for (m, n, k) in [
            (5, 16, 2),
            (7, 64 * 2 + 5, 38),
            (13, 64, 512),
            (300, 200, 96),
        ] {
            let x = data(m, k, 0.11);
            let w = data(n, k, 0.37).to_dtype(DType::BF16).unwrap();
            let got = bf16_matmul_t(&x, &w).unwrap().unwrap();
            assert_eq!(got.dims(), &[m, n]);
            // The same product in f32 over the inputs as the kernel sees them: exact
            // products of bf16 values, so only the f32 sum order differs.
            let xr = x
                .to_dtype(DType::BF16)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap();
            let wf = w.to_dtype(DType::F32).unwrap();
            let want = xr.matmul(&wf.t().unwrap()).unwrap();
            let d = relative_error(&got, &want);
            assert!(d < 1e-5, "m {m} n {n} k {k}: {d}");
            // Against the unrounded activations: rounding to bf16 moves each x by at
            // most 2^-9 of itself, so each sum by at most 2^-9 Σ|x w| (2^-8 allowed).
            let exact = x.matmul(&wf.t().unwrap()).unwrap();
            let bound = x
                .abs()
                .unwrap()
                .matmul(&wf.abs().unwrap().t().unwrap())
                .unwrap();
            let excess = ((got - exact).unwrap().abs().unwrap() - (bound / 256.0).unwrap())
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(excess <= 0.0, "m {m} n {n} k {k} vs f32 x: {excess}");
        }
    }

    #[test]
    fn odd_k_and_other_dtypes_are_left_to_the_caller() {
        let x = data(8, 7, 0.1);
        let w = data(4, 7, 0.2).to_dtype(DType::BF16).unwrap();
        assert!(bf16_matmul_t(&x, &w).unwrap().is_none());
        let w = data(4, 8, 0.2).to_dtype(DType::F16).unwrap();
        assert!(bf16_matmul_t(&data(8, 8, 0.1), &w).unwrap().is_none());
    }
}
