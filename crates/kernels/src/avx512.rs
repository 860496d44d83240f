//! AVX-512 versions of [`crate::x86`]'s decode dot products, for CPUs that have the
//! 512-bit integer and bf16 dot instructions (Zen 4 and later, Ice Lake / Sapphire
//! Rapids): a decode step with 16-bit or block weights is bound by the instructions per
//! weight byte at 2 cores, not by memory, so twice the bytes per instruction and the
//! fused dots (`vpdpbusd`, `vpdpwssd`, `vdpbf16ps`) are what bring it to the bytes.
//!
//! Each function computes what its `x86` counterpart computes, from the same inputs
//! (bf16 products take the activations as bf16 pairs, as the prefill does); callers
//! check [`has_vnni`] / [`has_bf16`] first. Also here: block rows decoded straight to
//! bf16 for [`crate::bf16_gemm`] ([`has_bf16_convert`]), candle's values rounded.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether the block-dot kernels here run on this CPU.
pub fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::x86::available()
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether [`dot_bf16`] runs on this CPU.
pub fn has_bf16() -> bool {
    crate::bf16_gemm::available()
}

/// `Σ w[i] x[i]` for bf16 bits `w` and the activations as bf16 pairs `x` (low half the
/// even element, [`crate::bf16_gemm`]'s layout); `w.len() == 2 * x.len()`.
///
/// # Safety
/// The CPU must have AVX512-F and AVX512-BF16 ([`has_bf16`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn dot_bf16(w: &[u16], x: &[u32]) -> f32 {
    debug_assert_eq!(w.len(), 2 * x.len());
    let bh = |v: __m512i| std::mem::transmute::<__m512i, __m512bh>(v);
    let (wp, xp) = (w.as_ptr() as *const u32, x.as_ptr());
    let n = x.len();
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // Four independent sums of 16 pairs each: enough to cover the dot's latency.
    while i + 64 <= n {
        for (j, a) in acc.iter_mut().enumerate() {
            let wv = _mm512_loadu_si512(wp.add(i + 16 * j) as *const _);
            let xv = _mm512_loadu_si512(xp.add(i + 16 * j) as *const _);
            *a = _mm512_dpbf16_ps(*a, bh(xv), bh(wv));
        }
        i += 64;
    }
    while i < n {
        let mask: __mmask16 = if n - i >= 16 {
            !0
        } else {
            (1u16 << (n - i)) - 1
        };
        let wv = _mm512_maskz_loadu_epi32(mask, wp.add(i) as *const i32);
        let xv = _mm512_maskz_loadu_epi32(mask, xp.add(i) as *const i32);
        acc[0] = _mm512_dpbf16_ps(acc[0], bh(xv), bh(wv));
        i += 16;
    }
    let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(s)
}

/// [`crate::x86::dot_q8_0`] two blocks per instruction, with `vpdpbusd`.
///
/// # Safety
/// As `x86::dot_q8_0`, and the CPU must pass [`has_vnni`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot_q8_0(w: &[u8], xd: &[f32], xq: &[i8]) -> f32 {
    debug_assert!(w.len() == 34 * xd.len() && xq.len() == 32 * xd.len());
    let zero = _mm512_setzero_si512();
    let mut acc = [_mm512_setzero_ps(); 2];
    let blocks = xd.len();
    let mut b = 0;
    while b + 2 <= blocks {
        let w0 = _mm256_loadu_si256(w.as_ptr().add(34 * b + 2) as *const __m256i);
        let w1 = _mm256_loadu_si256(w.as_ptr().add(34 * b + 36) as *const __m256i);
        let wq = _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1);
        let xv = _mm512_loadu_si512(xq.as_ptr().add(32 * b) as *const _);
        // |w| (unsigned) × x with w's sign: vpdpbusd takes unsigned × signed bytes.
        let aw = _mm512_abs_epi8(wq);
        let sx = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(wq), zero, xv);
        let p = _mm512_dpbusd_epi32(zero, aw, sx);
        let d0 = crate::x86::f16_at(w, 34 * b) * xd[b];
        let d1 = crate::x86::f16_at(w, 34 * b + 34) * xd[b + 1];
        let d = _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
        let a = &mut acc[(b / 2) % 2];
        *a = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), *a);
        b += 2;
    }
    let mut s = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
    if b < blocks {
        s += crate::x86::dot_q8_0(&w[34 * b..], &xd[b..], &xq[32 * b..]);
    }
    s
}

/// [`crate::x86::dot_q4_k`] with 64 bytes of nibbles per instruction and `vpdpwssd`
/// applying the sub-block scales.
///
/// # Safety
/// As `x86::dot_q4_k`, and the CPU must pass [`has_vnni`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot_q4_k(w: &[u8], xd: &[f32], xq: &[i8], xsums: &[i32]) -> f32 {
    debug_assert!(w.len() == 144 * xd.len());
    debug_assert!(xq.len() == 256 * xd.len() && xsums.len() == 8 * xd.len());
    let low = _mm512_set1_epi8(0x0F);
    // Two 256-bit halves as one register.
    let join = |a: __m256i, b: __m256i| _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    let load = |p: *const i8| _mm256_loadu_si256(p as *const __m256i);
    // Which of the 8 sub-block scales each 16-bit lane of a pass multiplies: lanes 0-15
    // cover one sub-block, 16-31 another (see the loop). Set once, permuted per block.
    let lanes = |a: i16, b: i16| join(_mm256_set1_epi16(a), _mm256_set1_epi16(b));
    let pick = [[lanes(0, 2), lanes(1, 3)], [lanes(4, 6), lanes(5, 7)]];
    let mut acc = _mm512_setzero_ps();
    let mut mins = 0f32;
    for (b, &dx) in xd.iter().enumerate() {
        let blk = &w[144 * b..144 * (b + 1)];
        let (d, sc, min) = crate::x86::q4k_block(blk, dx, &xsums[8 * b..8 * b + 8]);
        mins += min;
        let sc16 = _mm512_cvtepu8_epi16(_mm256_zextsi128_si256(_mm_loadl_epi64(
            sc.as_ptr() as *const __m128i
        )));
        let (qs, xs) = (blk.as_ptr().add(16), xq.as_ptr().add(256 * b));
        let mut sumi = _mm512_setzero_si512();
        // Nibble bytes 64h..64h+64 hold sub-blocks 4h, 4h+2 (low nibbles) and 4h+1,
        // 4h+3 (high nibbles), each against its own 32 activations.
        for (h, pick) in pick.iter().enumerate() {
            let q = _mm512_loadu_si512(qs.add(64 * h) as *const _);
            let lo = _mm512_and_si512(q, low);
            let hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low);
            let x = xs.add(128 * h);
            let (x_lo, x_hi) = (
                join(load(x), load(x.add(64))),
                join(load(x.add(32)), load(x.add(96))),
            );
            let s_lo = _mm512_permutexvar_epi16(pick[0], sc16);
            let s_hi = _mm512_permutexvar_epi16(pick[1], sc16);
            sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(lo, x_lo), s_lo);
            sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(hi, x_hi), s_hi);
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    _mm512_reduce_add_ps(acc) - mins
}

/// Whether [`to_bf16`], [`q8_0_to_bf16`] and [`q4_k_to_bf16`] run on this CPU.
pub fn has_bf16_convert() -> bool {
    has_bf16() && has_vnni()
}

/// `src` rounded to bf16 (to nearest even, as `half::bf16::from_f32`), 32 at a time.
///
/// # Safety
/// The CPU must pass [`has_bf16_convert`]; `dst.len() == src.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub unsafe fn to_bf16(src: &[f32], dst: &mut [half::bf16]) {
    debug_assert_eq!(src.len(), dst.len());
    let n = src.len() / 32 * 32;
    for i in (0..n).step_by(32) {
        let (lo, hi) = (
            _mm512_loadu_ps(src.as_ptr().add(i)),
            _mm512_loadu_ps(src.as_ptr().add(i + 16)),
        );
        store_bf16(dst.as_mut_ptr().add(i), _mm512_cvtne2ps_pbh(hi, lo));
    }
    for (d, s) in dst[n..].iter_mut().zip(&src[n..]) {
        *d = half::bf16::from_f32(*s);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn store_bf16(dst: *mut half::bf16, v: __m512bh) {
    _mm512_storeu_si512(dst as *mut _, std::mem::transmute::<__m512bh, __m512i>(v));
}

/// Rows of q8_0 blocks as bf16: candle's `BlockQ8_0::to_float` (`d * q`), rounded.
///
/// # Safety
/// The CPU must pass [`has_bf16_convert`]; `w` is whole blocks and `out.len() == 32 *
/// w.len() / 34`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512bf16,avx2,fma,f16c")]
pub unsafe fn q8_0_to_bf16(w: &[u8], out: &mut [half::bf16]) {
    debug_assert_eq!(out.len() * 34, w.len() * 32);
    for b in 0..w.len() / 34 {
        let d = _mm512_set1_ps(crate::x86::f16_at(w, 34 * b));
        let q = _mm256_loadu_si256(w.as_ptr().add(34 * b + 2) as *const __m256i);
        let lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
        let hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
        let v = _mm512_cvtne2ps_pbh(_mm512_mul_ps(d, hi), _mm512_mul_ps(d, lo));
        store_bf16(out.as_mut_ptr().add(32 * b), v);
    }
}

/// Rows of q4_k super-blocks as bf16: candle's `BlockQ4K::to_float` (`d * scale * q -
/// dmin * min` per sub-block of 32), rounded.
///
/// # Safety
/// The CPU must pass [`has_bf16_convert`]; `w` is whole super-blocks and `out.len() ==
/// 256 * w.len() / 144`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512bf16,avx2,fma,f16c")]
pub unsafe fn q4_k_to_bf16(w: &[u8], out: &mut [half::bf16]) {
    debug_assert_eq!(out.len() * 144, w.len() * 256);
    let low = _mm256_set1_epi8(0x0F);
    for b in 0..w.len() / 144 {
        let blk = &w[144 * b..144 * (b + 1)];
        let (d, dmin) = (crate::x86::f16_at(blk, 0), crate::x86::f16_at(blk, 2));
        let (sc, mn) = crate::x86::q4k_scales_mins(&blk[4..16]);
        for j in 0..4 {
            let q = _mm256_loadu_si256(blk.as_ptr().add(16 + 32 * j) as *const __m256i);
            let halves = [
                _mm256_and_si256(q, low),
                _mm256_and_si256(_mm256_srli_epi16(q, 4), low),
            ];
            for (h, nib) in halves.into_iter().enumerate() {
                let s = 2 * j + h;
                let scale = _mm512_set1_ps(d * sc[s] as f32);
                let min = _mm512_set1_ps(dmin * mn[s] as f32);
                let value = |v: __m128i| {
                    _mm512_sub_ps(
                        _mm512_mul_ps(scale, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v))),
                        min,
                    )
                };
                let lo = value(_mm256_castsi256_si128(nib));
                let hi = value(_mm256_extracti128_si256(nib, 1));
                store_bf16(
                    out.as_mut_ptr().add(256 * b + 64 * j + 32 * h),
                    _mm512_cvtne2ps_pbh(hi, lo),
                );
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn values(n: usize, salt: u32) -> Vec<f32> {
        let mut s = 0x9e37_79b9u32.wrapping_mul(salt | 1);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// Random i8 in [-127, 127] and per-block scales, as `quant_gemv` quantises.
    fn activations(k: usize, block: usize) -> (Vec<f32>, Vec<i8>, Vec<i32>) {
        let q: Vec<i8> = values(k, 7).iter().map(|v| (v * 254.0) as i8).collect();
        let d = values(k / block, 9)
            .iter()
            .map(|v| v.abs() + 0.01)
            .collect();
        let sums = q
            .chunks_exact(32)
            .map(|c| c.iter().map(|&v| v as i32).sum())
            .collect();
        (d, q, sums)
    }

    fn blocks(k: usize, dtype: GgmlDType) -> Vec<u8> {
        let w = Tensor::from_vec(values(k, 3), (1, k), &Device::Cpu).unwrap();
        QTensor::quantize(&w, dtype)
            .unwrap()
            .data()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn block_dots_equal_the_avx2_ones() {
        if !has_vnni() {
            return;
        }
        // An odd number of q8_0 blocks takes the 256-bit tail.
        for k in [32, 96, 768, 2304] {
            let (d, q, _) = activations(k, 32);
            let w = blocks(k, GgmlDType::Q8_0);
            // SAFETY: checked above; lengths from the block count.
            let (got, want) = unsafe { (dot_q8_0(&w, &d, &q), crate::x86::dot_q8_0(&w, &d, &q)) };
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "q8_0 k {k}: {got} {want}"
            );
        }
        for k in [256, 768, 2304] {
            let (d, q, s) = activations(k, 256);
            let w = blocks(k, GgmlDType::Q4K);
            // SAFETY: as above.
            let (got, want) = unsafe {
                (
                    dot_q4_k(&w, &d, &q, &s),
                    crate::x86::dot_q4_k(&w, &d, &q, &s),
                )
            };
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "q4_k k {k}: {got} {want}"
            );
        }
    }

    #[test]
    fn block_rows_widen_to_candles_values_rounded_to_bf16() {
        if !has_bf16_convert() {
            return;
        }
        let k = 768;
        let w = Tensor::from_vec(values(4 * k, 5), (4, k), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4K] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let want: Vec<half::bf16> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|&v| half::bf16::from_f32(v))
                .collect();
            let mut got = vec![half::bf16::ZERO; 4 * k];
            let data = q.data().unwrap();
            // SAFETY: checked above; whole blocks, 4 rows of k values.
            unsafe {
                match dtype {
                    GgmlDType::Q8_0 => q8_0_to_bf16(&data, &mut got),
                    _ => q4_k_to_bf16(&data, &mut got),
                }
            }
            assert_eq!(got, want, "{dtype:?}");
        }
        let src = values(100, 11);
        let mut got = vec![half::bf16::ZERO; 100];
        // SAFETY: checked above; equal lengths.
        unsafe { to_bf16(&src, &mut got) };
        let want: Vec<half::bf16> = src.iter().map(|&v| half::bf16::from_f32(v)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bf16_dot_is_the_sum_of_the_rounded_products() {
        if !has_bf16() {
            return;
        }
        for k in [2, 30, 64, 130, 768] {
            let w: Vec<half::bf16> = values(k, 1)
                .iter()
                .map(|&v| half::bf16::from_f32(v))
                .collect();
            let x: Vec<half::bf16> = values(k, 2)
                .iter()
                .map(|&v| half::bf16::from_f32(v))
                .collect();
            let pairs: Vec<u32> = x
                .chunks_exact(2)
                .map(|p| p[0].to_bits() as u32 | (p[1].to_bits() as u32) << 16)
                .collect();
            let bits: Vec<u16> = w.iter().map(|v| v.to_bits()).collect();
            let want: f64 = w.iter().zip(&x).map(|(a, b)| a.to_f64() * b.to_f64()).sum();
            // SAFETY: checked above; w holds two values per pair.
            let got = unsafe { dot_bf16(&bits, &pairs) } as f64;
            assert!(
                (got - want).abs() < 1e-5 * (k as f64),
                "k {k}: {got} {want}"
            );
        }
    }
}
