//! Vectorised element-wise kernels on f32 slices: the masked row softmax of the fused
//! attention and the SwiGLU of the MLP.
//!
//! Attention at long context evaluates `heads x T^2 / 2` exponentials per layer; a scalar
//! libm `expf` would cost as much as the matrix products. The polynomial below compiles
//! to SIMD (the crate is built for baseline x86-64, so AVX2 and AVX-512 versions are
//! chosen at run time).

/// `exp(x)` to about 2 ulp for `x` in `[-87.3, 88.7]` (Cephes `expf`: range reduction
/// by `ln 2`, degree-6 polynomial); smaller inputs give about `1e-38`, not 0.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that `n * LN2_HI` is exact for the n that occur.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer n (no rounding instruction on
    // baseline x86-64) and leaves n in the low mantissa bits, from which 2^n is built
    // with integer adds and shifts: a float-to-int cast would be scalarised.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.336_55, 88.722_83);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // bits(t) = bits(ROUND) + n and bits(ROUND) is a multiple of 2^9, so the low 9 bits
    // of bits(t) + 127 are the biased exponent n + 127 (in 1..=255 after the clamp).
    y * f32::from_bits(t.to_bits().wrapping_add(127) << 23)
}

const LANES: usize = 16;

#[inline(always)]
fn max_of(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    let mut m = tail.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for a in acc {
        m = m.max(a);
    }
    m
}

/// Replaces `xs[i]` by `exp(xs[i] - shift)` and returns the sum.
#[inline(always)]
fn exp_shifted_sum(xs: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = xs.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            let e = exp(c[i] - shift);
            c[i] = e;
            acc[i] += e;
        }
    }
    let mut sum = 0.0;
    for x in chunks.into_remainder() {
        *x = exp(*x - shift);
        sum += *x;
    }
    sum + acc.iter().sum::<f32>()
}

#[inline(always)]
fn softmax_prefix_body(row: &mut [f32], valid: usize) {
    let (head, tail) = row.split_at_mut(valid);
    let max = max_of(head);
    let sum = exp_shifted_sum(head, max);
    let inv = 1.0 / sum;
    for x in head.iter_mut() {
        *x *= inv;
    }
    tail.fill(0.0);
}

#[inline(always)]
fn swiglu_body(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + exp(-g)) * u;
    }
}

/// Defines `pub fn $name` that runs `$body` compiled for AVX-512, AVX2 or baseline,
/// whichever the CPU running it supports.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) => $body:ident) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the features `avx512` was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above, for `avx2`.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

dispatch!(
    /// Softmax over `row[..valid]` in place, and zeros in `row[valid..]` (the causal
    /// mask). `valid` must be in `1..=row.len()`.
    softmax_prefix(row: &mut [f32], valid: usize) => softmax_prefix_body
);

dispatch!(
    /// `out[i] = silu(gate[i]) * up[i]` over the common length.
    swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) => swiglu_body
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 87.0 * i as f32 / 200_000.0;
            let rel = ((exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 5e-7, "max relative error {worst}");
        assert!(exp(-1000.0) < 1e-37 && exp(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn swiglu_matches_the_definition() {
        let g: Vec<f32> = (0..41).map(|i| i as f32 * 0.5 - 10.0).collect();
        let u: Vec<f32> = (0..41).map(|i| 1.0 - i as f32 * 0.1).collect();
        let mut out = vec![0f32; 41];
        swiglu(&g, &u, &mut out);
        for i in 0..41 {
            let (g, u) = (g[i] as f64, u[i] as f64);
            let want = g / (1.0 + (-g).exp()) * u;
            assert!(
                (out[i] as f64 - want).abs() < 1e-6 * want.abs().max(1.0),
                "{i}"
            );
        }
    }

    #[test]
    fn softmax_prefix_matches_the_definition_and_masks_the_tail() {
        let mut row: Vec<f32> = (0..37)
            .map(|i| ((i * 7919) % 23) as f32 * 0.37 - 4.0)
            .collect();
        let orig = row.clone();
        softmax_prefix(&mut row, 21);
        let max = orig[..21].iter().copied().fold(f32::MIN, f32::max) as f64;
        let z: f64 = orig[..21].iter().map(|&x| (x as f64 - max).exp()).sum();
        for i in 0..21 {
            let want = (orig[i] as f64 - max).exp() / z;
            assert!((row[i] as f64 - want).abs() < 1e-7, "{i}");
        }
        assert!(row[21..].iter().all(|&x| x == 0.0));
    }
}
