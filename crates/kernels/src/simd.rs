//! Vectorisable f32 primitives: `exp`, `sigmoid` and the reductions `sum`, `dot` and
//! `max_of`.
//!
//! All are `#[inline(always)]`, so that they compile to SIMD inside the callers'
//! `#[target_feature]` kernels (see [`dispatch!`](crate::dispatch!)).

use crate::mul_add::MulAdd;

/// Accumulator lanes for reductions: independent partial results that the compiler
/// keeps in vector registers (float addition is not associative, so it will not split
/// a plain `iter().sum()` by itself). 16 fills one AVX-512 or two AVX2 registers.
pub const LANES: usize = 16;

/// `exp(x)` to within 1 ulp for `x` in `[-87.33, 88.37]` (Cephes `expf`: range
/// reduction by `ln 2`, degree-6 polynomial); outside it the result saturates at about
/// `1.2e-38` (not 0) and `2.4e38` (not infinity).
///
/// It exists because `f32::exp` calls libm, which neither inlines nor vectorises, and
/// both model crates take exponentials in their innermost loops: the RWKV time mix four
/// per channel per token, attention at long context `heads x T² / 2` per layer.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // ln 2 split so that `n * LN2_HI` is exact for the n that occur.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer n (no rounding instruction on
    // baseline x86-64) and leaves n in the low mantissa bits, from which 2^n is built
    // with integer adds and shifts: a float-to-int cast would be scalarised.
    const ROUND: f32 = 12_582_912.0;
    // Keeps n in [-126, 127], so that 2^n is a normal float: at 88.38 and above n
    // rounds to 128, whose exponent field is infinity's.
    let x = x.clamp(-87.33, 88.37);
    let t = x * std::f32::consts::LOG2_E + ROUND;
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
    // of bits(t) + 127 are the biased exponent n + 127 (in 1..=254 after the clamp).
    y * f32::from_bits(t.to_bits().wrapping_add(127) << 23)
}

/// `1 / (1 + exp(-x))`, with [`exp`].
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `Σ xs[i]`, in [`LANES`] partial sums.
#[inline(always)]
pub fn sum(xs: &[f32]) -> f32 {
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

/// `Σ a[i] * b[i]` over the common length, multiplying and adding separately, in
/// [`LANES`] partial sums.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// [`dot`] accumulated with `F::mul_add` (fused under [`Fused`](crate::Fused)). `a` and
/// `b` must have the same length.
#[inline(always)]
pub fn dot_mul_add<F: MulAdd>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut rest = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        rest = F::mul_add(*x, *y, rest);
    }
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] = F::mul_add(x[l], y[l], acc[l]);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// The largest element (`-inf` for an empty slice), in [`LANES`] partial maxima.
#[inline(always)]
pub fn max_of(xs: &[f32]) -> f32 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fused, Unfused};

    /// Distance in units in the last place between two positive finite floats.
    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn exp_is_within_one_ulp_over_its_range() {
        // Every f32 of the range was checked once (worst: 1 ulp); here a
        // million points of it, against f64's exp rounded to f32.
        let (lo, hi) = (-87.33f64, 88.37f64);
        let mut worst = (0, 0f32);
        for i in 0..=1_000_000 {
            let x = (lo + (hi - lo) * i as f64 / 1e6) as f32;
            let d = ulps(exp(x), (x as f64).exp() as f32);
            if d > worst.0 {
                worst = (d, x);
            }
        }
        assert!(worst.0 <= 1, "{} ulp at {}", worst.0, worst.1);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn exp_saturates_to_normal_finite_floats() {
        for x in [-87.34, -100.0, -1000.0, f32::NEG_INFINITY] {
            let e = exp(x);
            assert!(e.is_normal() && e < 1.2e-38, "exp({x}) = {e:e}");
        }
        // Up to ln(f32::MAX) = 88.72 the true value is finite; so is this one beyond.
        for x in [88.38, 88.5, 88.72, 89.0, 1000.0, f32::INFINITY] {
            let e = exp(x);
            assert!(e.is_finite() && e > 2.3e38, "exp({x}) = {e:e}");
        }
    }

    #[test]
    fn sigmoid_matches_the_definition() {
        assert_eq!(sigmoid(0.0), 0.5);
        for i in -400..=400 {
            let x = i as f32 * 0.05;
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((sigmoid(x) as f64 - want).abs() < 1e-7, "{x}");
        }
        assert!(sigmoid(-200.0) < 1e-38);
        assert_eq!(sigmoid(200.0), 1.0);
    }

    #[test]
    fn reductions_match_plain_loops_with_and_without_a_remainder() {
        for len in [0, 1, 15, 16, 17, 64, 101] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 37) % 11) as f32 * 0.25 - 1.0)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 13) % 7) as f32 * 0.5 - 1.5)
                .collect();
            // Quarter and half steps of small integers: every sum here is exact.
            let want_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(sum(&a), a.iter().sum::<f32>(), "len {len}");
            assert_eq!(dot(&a, &b), want_dot, "len {len}");
            assert_eq!(dot_mul_add::<Fused>(&a, &b), want_dot, "len {len}");
            assert_eq!(dot_mul_add::<Unfused>(&a, &b), want_dot, "len {len}");
            let want_max = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max_of(&a), want_max, "len {len}");
        }
    }
}
