//! Vectorised element-wise kernels on f32 slices: the masked row softmax of the fused
//! attention and the SwiGLU of the MLP.
//!
//! Attention at long context evaluates `heads x T^2 / 2` exponentials per layer; a scalar
//! libm `expf` would cost as much as the matrix products. Both kernels are built from
//! the shared [`kernels::exp`] polynomial, which compiles to SIMD (the crate is built for
//! baseline x86-64, so [`kernels::dispatch!`] chooses AVX2 and AVX-512 versions at run
//! time).

use kernels::{exp, max_of, LANES};

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

kernels::dispatch!(
    /// Softmax over `row[..valid]` in place, and zeros in `row[valid..]` (the causal
    /// mask). `valid` must be in `1..=row.len()`.
    pub(crate) fn softmax_prefix(row: &mut [f32], valid: usize) => softmax_prefix_body
);

kernels::dispatch!(
    /// `out[i] = silu(gate[i]) * up[i]` over the common length.
    pub(crate) fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) => swiglu_body
);

#[cfg(test)]
mod tests {
    use super::*;

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
