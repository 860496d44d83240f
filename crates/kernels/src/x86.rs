//! AVX2 dot products of one weight row in a storage type with f32 or 8-bit activations:
//! the inner loops of the decode kernels ([`crate::half_gemv`], [`crate::quant_gemv`]).
//!
//! Written with intrinsics because the compiler does not find these by itself: the
//! widening loads of 16-bit weights, and the `maddubs` trick (unsigned × signed bytes
//! summed in pairs) that ggml uses for 8- and 4-bit blocks. Each returns `None` where
//! the CPU lacks AVX2/FMA/F16C, and the caller takes its portable path.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether the kernels here run on this CPU.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Sum of the 8 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// `Σ w[i] x[i]` for bf16 (`bf16 = true`) or f16 bits `w`; lengths equal, a multiple of 16.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_16bit(w: &[u16], x: &[f32], bf16: bool) -> f32 {
    debug_assert!(w.len() == x.len() && w.len().is_multiple_of(16));
    let mut acc = [_mm256_setzero_ps(); 4];
    let widen = |p: *const u16| -> __m256 {
        // SAFETY: p points at 8 readable u16 (the loop bounds below).
        unsafe {
            let h = _mm_loadu_si128(p as *const __m128i);
            if bf16 {
                _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
            } else {
                _mm256_cvtph_ps(h)
            }
        }
    };
    let mut i = 0;
    // Four independent accumulators: enough to cover the FMA latency.
    while i + 32 <= w.len() {
        let (wp, xp) = (w.as_ptr().add(i), x.as_ptr().add(i));
        for (j, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(widen(wp.add(8 * j)), _mm256_loadu_ps(xp.add(8 * j)), *a);
        }
        i += 32;
    }
    while i < w.len() {
        let (wp, xp) = (w.as_ptr().add(i), x.as_ptr().add(i));
        acc[0] = _mm256_fmadd_ps(widen(wp), _mm256_loadu_ps(xp), acc[0]);
        acc[1] = _mm256_fmadd_ps(widen(wp.add(8)), _mm256_loadu_ps(xp.add(8)), acc[1]);
        i += 16;
    }
    hsum(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ))
}

/// The f32 value of the little-endian f16 bytes at `at`, with F16C: `half`'s
/// conversion tests the CPU at every call, which cost a q8_0 row a third of its time.
///
/// # Safety
/// `at + 2 <= b.len()`; the CPU must have F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn f16_at(b: &[u8], at: usize) -> f32 {
    let bits = (b.as_ptr().add(at) as *const u16).read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// One row of q8_0 blocks (34 bytes: f16 scale, 32 × i8) against activations quantised
/// to blocks of 32 (`xd` one scale per block, `xq` the bytes).
///
/// One row per call: passes over 2 or 4 rows sharing the activation loads were faster
/// only where the weights sat in cache (a 3072 x 768 q8_0 product 195 µs against 287),
/// and slower where they stream from memory, as every matrix of a decode step does
/// (the 65536 x 768 head in q4_k 5.0 ms against 3.6).
///
/// # Safety
/// The CPU must have AVX2 and FMA; `w.len() == 34 * xd.len()`, `xq.len() == 32 * xd.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q8_0(w: &[u8], xd: &[f32], xq: &[i8]) -> f32 {
    debug_assert!(w.len() == 34 * xd.len() && xq.len() == 32 * xd.len());
    let mut acc = _mm256_setzero_ps();
    for (b, &dx) in xd.iter().enumerate() {
        let d = f16_at(w, 34 * b) * dx;
        let wq = _mm256_loadu_si256(w.as_ptr().add(34 * b + 2) as *const __m256i);
        let xv = _mm256_loadu_si256(xq.as_ptr().add(32 * b) as *const __m256i);
        // |w| (unsigned) × x with w's sign: maddubs takes unsigned × signed bytes.
        let aw = _mm256_sign_epi8(wq, wq);
        let sx = _mm256_sign_epi8(xv, wq);
        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p), acc);
    }
    hsum(acc)
}

/// The eight 6-bit scales and eight mins of a q4_k super-block's 12 scale bytes, all at
/// once in 32-bit words (ggml's `utmp` unpacking, without `get_scale_min_k4`'s branch
/// per sub-block).
#[inline(always)]
pub fn q4k_scales_mins(q: &[u8]) -> ([u8; 8], [u8; 8]) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (u0, u1, u2) = (word(0), word(1), word(2));
    let scales_hi = (u2 & LOW4) | (((u0 >> 6) & LOW2) << 4);
    let mins_hi = ((u2 >> 4) & LOW4) | (((u1 >> 6) & LOW2) << 4);
    let mut scales = [0u8; 8];
    let mut mins = [0u8; 8];
    scales[..4].copy_from_slice(&(u0 & LOW6).to_le_bytes());
    scales[4..].copy_from_slice(&scales_hi.to_le_bytes());
    mins[..4].copy_from_slice(&(u1 & LOW6).to_le_bytes());
    mins[4..].copy_from_slice(&mins_hi.to_le_bytes());
    (scales, mins)
}

/// What a q4_k super-block's dot product needs besides its nibbles: `d` times the
/// activations' scale `dx`, the eight sub-block scales, and the mins term `dmin * dx *
/// Σ min × (sum of its 32 activations)`. The sum is exact in integers, so every kernel
/// that uses this gets the same term (a float sum in another order moved the
/// quantized_llama peer test's logits by 7e-2 through a later layer's 8-bit rounding).
///
/// # Safety
/// The CPU must have F16C; `blk` is one 144-byte super-block, `sums` its 8 sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn q4k_block(blk: &[u8], dx: f32, sums: &[i32]) -> (f32, [u8; 8], f32) {
    let (d, dmin) = (f16_at(blk, 0) * dx, f16_at(blk, 2) * dx);
    let (sc, mn) = q4k_scales_mins(&blk[4..16]);
    let summ: i32 = mn.iter().zip(sums).map(|(&m, &s)| m as i32 * s).sum();
    (d, sc, dmin * summ as f32)
}

/// One row of q4_k super-blocks (144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales
/// and mins, 128 bytes of nibbles) against activations quantised to blocks of 256
/// (`xd` one scale per block, `xq` the bytes, `xsums` the sum of each 32 of them).
///
/// # Safety
/// The CPU must have AVX2 and FMA; `w.len() == 144 * xd.len()`, `xq.len() == 256 *
/// xd.len()`, `xsums.len() == 8 * xd.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q4_k(w: &[u8], xd: &[f32], xq: &[i8], xsums: &[i32]) -> f32 {
    debug_assert!(w.len() == 144 * xd.len());
    debug_assert!(xq.len() == 256 * xd.len() && xsums.len() == 8 * xd.len());
    let low = _mm256_set1_epi8(0x0F);
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    for (b, &dx) in xd.iter().enumerate() {
        let blk = &w[144 * b..144 * (b + 1)];
        let (d, sc, min) = q4k_block(blk, dx, &xsums[8 * b..8 * b + 8]);
        let (qs, xs) = (blk.as_ptr().add(16), xq.as_ptr().add(256 * b));
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let q = _mm256_loadu_si256(qs.add(32 * j) as *const __m256i);
            let lo = _mm256_and_si256(q, low);
            let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
            let x_lo = _mm256_loadu_si256(xs.add(64 * j) as *const __m256i);
            let x_hi = _mm256_loadu_si256(xs.add(64 * j + 32) as *const __m256i);
            let p_lo = _mm256_madd_epi16(
                _mm256_maddubs_epi16(lo, x_lo),
                _mm256_set1_epi16(sc[2 * j] as i16),
            );
            let p_hi = _mm256_madd_epi16(
                _mm256_maddubs_epi16(hi, x_hi),
                _mm256_set1_epi16(sc[2 * j + 1] as i16),
            );
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        mins += min;
    }
    hsum(acc) - mins
}

/// One row of q6_k super-blocks (210 bytes: 128 bytes of low nibbles, 64 of high bit
/// pairs, 16 signed 8-bit scales of 16 values each, f16 d) against activations quantised
/// to blocks of 256 as for q4_k (`xd` one scale per block, `xq` the bytes): ggml's
/// `ggml_vec_dot_q6_K_q8_K`, the stored 0..63 taken as unsigned bytes and the offset of
/// 32 subtracted as `maddubs(32, x)`.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `w.len() == 210 * xd.len()`, `xq.len() == 256 *
/// xd.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q6_k(w: &[u8], xd: &[f32], xq: &[i8]) -> f32 {
    debug_assert!(w.len() == 210 * xd.len() && xq.len() == 256 * xd.len());
    let (low4, low2) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x03));
    let m32 = _mm256_set1_epi8(32);
    let mut acc = _mm256_setzero_ps();
    for (b, &dx) in xd.iter().enumerate() {
        let blk = w.as_ptr().add(210 * b);
        let d = f16_at(w, 210 * b + 208) * dx;
        let scales = std::slice::from_raw_parts(blk.add(192) as *const i8, 16);
        let xs = xq.as_ptr().add(256 * b);
        let mut sumi = _mm256_setzero_si256();
        // Two halves of 128 values; in each, group g of 32 values takes the low nibbles
        // of `ql`'s first (g = 0) or second (g = 1) 32 bytes, or their high nibbles
        // (g = 2, 3), and bit pair g of the half's 32 `qh` bytes.
        for j in 0..2 {
            let qh = _mm256_loadu_si256(blk.add(128 + 32 * j) as *const __m256i);
            let ql1 = _mm256_loadu_si256(blk.add(64 * j) as *const __m256i);
            let ql2 = _mm256_loadu_si256(blk.add(64 * j + 32) as *const __m256i);
            let high = |shift: i32| -> __m256i {
                let bits = match shift {
                    0 => qh,
                    2 => _mm256_srli_epi16(qh, 2),
                    4 => _mm256_srli_epi16(qh, 4),
                    _ => _mm256_srli_epi16(qh, 6),
                };
                _mm256_slli_epi16(_mm256_and_si256(bits, low2), 4)
            };
            let q = [
                _mm256_or_si256(_mm256_and_si256(ql1, low4), high(0)),
                _mm256_or_si256(_mm256_and_si256(ql2, low4), high(2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), high(4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql2, 4), low4), high(6)),
            ];
            for (g, q) in q.into_iter().enumerate() {
                let x = _mm256_loadu_si256(xs.add(128 * j + 32 * g) as *const __m256i);
                let p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, x), _mm256_maddubs_epi16(m32, x));
                // 16 pair sums: the first 8 cover scale 2g of this half, the rest 2g + 1.
                let s = 8 * j + 2 * g;
                let sc = _mm256_set_m128i(
                    _mm_set1_epi16(scales[s + 1] as i16),
                    _mm_set1_epi16(scales[s] as i16),
                );
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, p));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's `get_scale_min_k4`, the definition.
    fn scale_min(j: usize, q: &[u8]) -> (u8, u8) {
        if j < 4 {
            (q[j] & 63, q[j + 4] & 63)
        } else {
            (
                (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
                (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
            )
        }
    }

    #[test]
    fn q4k_scales_unpack_as_ggml_defines_them() {
        let mut s = 0x1234_5678u32;
        for _ in 0..200 {
            let q: Vec<u8> = (0..12)
                .map(|_| {
                    s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (s >> 24) as u8
                })
                .collect();
            let (sc, mn) = q4k_scales_mins(&q);
            for j in 0..8 {
                assert_eq!((sc[j], mn[j]), scale_min(j, &q), "sub-block {j} of {q:?}");
            }
        }
    }
}
