//! The WKV-7 recurrence ("generalised delta rule") as one fused CPU kernel.
//!
//! Per head, with state `S` of shape `[N, N]` (rows: value index i, columns: key index
//! j) and per token:
//!
//! ```text
//! S = S·diag(w) + (S·(-κ))(κ⊙a)ᵀ + v kᵀ        y = S r
//! ```
//!
//! See the RWKV-7 paper, <https://arxiv.org/abs/2503.14456>, and `RWKV_x070` in the
//! official `rwkv` package, which this follows to float precision.
//!
//! Everything between the time mix's projections and its output projection works on
//! one (token, head) slice of N channels at a time: the decay, in-context rate and
//! value-residual activations, the key normalisation, the recurrence, the GroupNorm,
//! the bonus term and the gate. The kernel does all of it in the same pass, so the
//! activations are read once from memory and the `[N, N]` state stays in L1. Work is
//! split over (batch, head) with rayon; each task walks its tokens in order.

use std::sync::Mutex;

use candle_core::{bail, CpuStorage, InplaceOp2, Layout, Tensor};
use rayon::prelude::*;

use kernels::{dot, dot_mul_add, exp, sigmoid, sum, MulAdd};

use crate::ops::{f32_data, f32_data_mut};
use crate::Result;

/// `exp(-0.5)` as the official CPU code writes it (`w = exp(-0.606531 * sigmoid(..))`).
const DECAY_SCALE: f32 = 0.606_531;
/// GroupNorm epsilon of `ln_x` (the official inference code fixes it at `64e-5`).
const GROUP_NORM_EPS: f32 = 64e-5;
/// `F.normalize`'s epsilon for the key normalisation.
const NORMALIZE_EPS: f32 = 1e-12;
/// Calls with at least this many tokens walk the state key-major (see `run_head_generic`).
const KEY_MAJOR_MIN_TOKENS: usize = 4;
/// Rows of the state one pass of the key-major update keeps in registers (two AVX2
/// vectors each for `S·(-κ)`, `v` and `y`).
const ROW_BLOCK: usize = 16;

/// Slots of the stacked per-token input, each `[B, T, C]`.
pub mod slot {
    /// Receptance `r`.
    pub const R: usize = 0;
    /// Key `k`, before the in-context-rate adjustment.
    pub const K: usize = 1;
    /// Value `v`, before the value residual.
    pub const V: usize = 2;
    /// Decay LoRA output `tanh(xw @ w1) @ w2`, before `w0`.
    pub const DECAY: usize = 3;
    /// In-context-rate LoRA output `(xa @ a1) @ a2`, before `a0`.
    pub const ICLR: usize = 4;
    /// Output gate `sigmoid(xg @ g1) @ g2`.
    pub const GATE: usize = 5;
    /// Value-residual LoRA output `(xv @ v1) @ v2`, before `v0` (layers >= 1).
    pub const VALUE_RESIDUAL: usize = 6;
    /// Layer 0's value `v_first` (layers >= 1).
    pub const V_FIRST: usize = 7;
    /// Slots of layer 0, which has no value residual.
    pub const FIRST_LAYER: usize = 6;
    /// Slots of every later layer.
    pub const LATER_LAYER: usize = 8;
}

/// One layer's per-channel time-mix parameters used inside the kernel, each of
/// length C (`r_k` flattened from `[H, N]`).
#[derive(Debug, Clone)]
pub struct WkvParams {
    pub w0: Vec<f32>,
    pub a0: Vec<f32>,
    /// `None` in layer 0, which has no value residual.
    pub v0: Option<Vec<f32>>,
    pub k_k: Vec<f32>,
    pub k_a: Vec<f32>,
    pub r_k: Vec<f32>,
    /// GroupNorm (`ln_x`) weight and bias.
    pub ln_w: Vec<f32>,
    pub ln_b: Vec<f32>,
}

/// The fused WKV-7 op: updates the state in place and produces the gated output.
///
/// candle ops have one output, and a decode step should neither allocate nor copy the
/// state (196 KB per layer at the 0.1B shape, which costs page faults every token).
/// So the op runs in place on the state and hands `y` back through a buffer of its
/// own; [`wkv7`] wraps both.
///
/// # Shapes
/// `state [B, H, N, N]` (updated), `inputs [S, B, T, C]` -> `y [B, T, C]`. S is
/// [`slot::FIRST_LAYER`] when `params.v0` is `None`, else [`slot::LATER_LAYER`].
pub struct Wkv7<'a> {
    pub heads: usize,
    pub head_size: usize,
    pub params: &'a WkvParams,
    y: Mutex<Vec<f32>>,
}

impl<'a> Wkv7<'a> {
    pub fn new(heads: usize, head_size: usize, params: &'a WkvParams) -> Self {
        Self {
            heads,
            head_size,
            params,
            y: Mutex::new(Vec::new()),
        }
    }
}

/// Runs the op on a state that no other tensor shares (it is written in place):
/// returns `y [B, T, C]`.
pub fn wkv7(state: &Tensor, inputs: &Tensor, op: &Wkv7<'_>) -> Result<Tensor> {
    let (_, b, t, c) = inputs.dims4()?;
    state.inplace_op2(inputs, op)?;
    let y = std::mem::take(&mut *op.y.lock().map_err(|_| poisoned())?);
    Ok(Tensor::from_vec(y, (b, t, c), inputs.device())?)
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("rwkv-wkv7: a previous run panicked".into())
}

impl InplaceOp2 for Wkv7<'_> {
    fn name(&self) -> &'static str {
        "rwkv-wkv7"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let inputs = f32_data(s2, l2, self.name())?;
        let state = f32_data_mut(s1, l1, self.name())?;
        let (h, n) = (self.heads, self.head_size);
        let (slots, b, t, c) = l2.shape().dims4()?;
        let expected_slots = if self.params.v0.is_some() {
            slot::LATER_LAYER
        } else {
            slot::FIRST_LAYER
        };
        if slots != expected_slots || c != h * n || l1.dims() != [b, h, n, n] {
            bail!(
                "{}: state {:?}, inputs {:?} with {h} heads of {n}",
                self.name(),
                l1.dims(),
                l2.dims()
            )
        }
        let ctx = Ctx {
            inputs,
            params: self.params,
            batch: b,
            seq: t,
            width: c,
            head_size: n,
        };
        let run = |(task, s): (usize, &mut [f32])| {
            let mut ys = vec![0f32; t * n];
            run_head(&ctx, task / h, task % h, s, &mut ys);
            ys
        };
        // Outputs of one task are strided in `y`; collecting them per task and
        // scattering afterwards keeps the kernel free of unsafe aliasing.
        let per_task: Vec<Vec<f32>> = if t * b * h >= 64 {
            state.par_chunks_mut(n * n).enumerate().map(run).collect()
        } else {
            state.chunks_mut(n * n).enumerate().map(run).collect()
        };
        let mut y = vec![0f32; b * t * c];
        for (task, ys) in per_task.iter().enumerate() {
            let (bi, hi) = (task / h, task % h);
            for (ti, yt) in ys.chunks_exact(n).enumerate() {
                let at = (bi * t + ti) * c + hi * n;
                y[at..at + n].copy_from_slice(yt);
            }
        }
        *self.y.lock().map_err(|_| poisoned())? = y;
        Ok(())
    }
}

struct Ctx<'a> {
    inputs: &'a [f32],
    params: &'a WkvParams,
    batch: usize,
    seq: usize,
    width: usize,
    head_size: usize,
}

kernels::dispatch!(
    /// Runs one (batch row, head) over all tokens: `s` is its `[N, N]` state, `ys` gets
    /// the `[T, N]` outputs. On AVX2 or AVX-512 with FMA the recurrence runs as 8- or
    /// 16-wide fused multiply-adds instead of the 4-wide separate ones of the baseline.
    fn run_head(ctx: &Ctx<'_>, b: usize, h: usize, s: &mut [f32], ys: &mut [f32])
        => run_head_generic::<MulAdd>
);

/// `dst[j*n + i] = src[i*n + j]`.
#[inline(always)]
fn transpose(src: &[f32], dst: &mut [f32], n: usize) {
    for (i, row) in src.chunks_exact(n).enumerate() {
        for (j, &x) in row.iter().enumerate() {
            dst[j * n + i] = x;
        }
    }
}

#[inline(always)]
fn run_head_generic<F: MulAdd>(ctx: &Ctx<'_>, b: usize, h: usize, s: &mut [f32], ys: &mut [f32]) {
    let (n, c) = (ctx.head_size, ctx.width);
    let slot_len = ctx.batch * ctx.seq * c;
    let ch = h * n..(h + 1) * n;
    let p = ctx.params;
    let params = HeadParams {
        w0: &p.w0[ch.clone()],
        a0: &p.a0[ch.clone()],
        v0: p.v0.as_ref().map(|v| &v[ch.clone()]),
        k_k: &p.k_k[ch.clone()],
        k_a: &p.k_a[ch.clone()],
        r_k: &p.r_k[ch.clone()],
        ln_w: &p.ln_w[ch.clone()],
        ln_b: &p.ln_b[ch],
    };
    let mut scratch = Scratch::new(n);
    // The state is stored [value i, key j] (the official layout). For a chunk of
    // tokens it pays to walk it key-major: every step is then an operation on whole
    // columns of length N, with no horizontal sums (`S·x = Σ_j x[j]·S[:, j]`). The two
    // transposes that costs are more than a whole token's work, so a few tokens (a
    // decode step) use the rows as they are.
    let key_major = ctx.seq >= KEY_MAJOR_MIN_TOKENS;
    let mut transposed = Vec::new();
    let state: &mut [f32] = if key_major {
        transposed.resize(n * n, 0.0);
        transpose(s, &mut transposed, n);
        &mut transposed
    } else {
        s
    };
    for (t, out) in ys.chunks_exact_mut(n).enumerate() {
        let at = (b * ctx.seq + t) * c + h * n;
        let input = |slot: usize| &ctx.inputs[slot * slot_len + at..slot * slot_len + at + n];
        let token = TokenInputs {
            r: input(slot::R),
            k: input(slot::K),
            v: input(slot::V),
            decay: input(slot::DECAY),
            iclr: input(slot::ICLR),
            gate: input(slot::GATE),
            value_residual: params
                .v0
                .map(|_| (input(slot::VALUE_RESIDUAL), input(slot::V_FIRST))),
        };
        prepare(&params, &token, &mut scratch);
        if key_major {
            recur_key_major::<F>(&mut scratch, state, token.r);
        } else {
            recur_row_major::<F>(&mut scratch, state, token.r);
        }
        finish(&params, &token, &mut scratch, out);
    }
    if key_major {
        transpose(&transposed, s, n);
    }
}

/// One head's slice (length N) of the per-channel parameters.
struct HeadParams<'a> {
    w0: &'a [f32],
    a0: &'a [f32],
    v0: Option<&'a [f32]>,
    k_k: &'a [f32],
    k_a: &'a [f32],
    r_k: &'a [f32],
    ln_w: &'a [f32],
    ln_b: &'a [f32],
}

/// One (token, head)'s inputs, each of length N.
struct TokenInputs<'a> {
    r: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    decay: &'a [f32],
    iclr: &'a [f32],
    gate: &'a [f32],
    /// `(value-residual LoRA output, v_first)` from layer 1 on.
    value_residual: Option<(&'a [f32], &'a [f32])>,
}

/// Per-task buffers of length N.
struct Scratch {
    w: Vec<f32>,
    a: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// `-κ`, the negated normalised key.
    neg_kk: Vec<f32>,
    /// `κ ⊙ a`.
    kka: Vec<f32>,
    /// `S·(-κ)`.
    sa: Vec<f32>,
    y: Vec<f32>,
}

impl Scratch {
    fn new(n: usize) -> Self {
        let z = || vec![0f32; n];
        Self {
            w: z(),
            a: z(),
            k: z(),
            v: z(),
            neg_kk: z(),
            kka: z(),
            sa: z(),
            y: z(),
        }
    }
}

/// The per-channel activations of one (token, head): decay, in-context rate, the
/// adjusted key and value, and the normalised key.
#[inline(always)]
fn prepare(p: &HeadParams<'_>, x: &TokenInputs<'_>, sc: &mut Scratch) {
    let n = sc.w.len();
    // Re-slicing everything to length n lets the compiler drop the bounds checks, and
    // with them vectorise these loops.
    let (a0, w0, k_k, k_a) = (&p.a0[..n], &p.w0[..n], &p.k_k[..n], &p.k_a[..n]);
    let (iclr, decay, k_in, v_in) = (&x.iclr[..n], &x.decay[..n], &x.k[..n], &x.v[..n]);
    let (w, a, k, v) = (
        &mut sc.w[..n],
        &mut sc.a[..n],
        &mut sc.k[..n],
        &mut sc.v[..n],
    );
    let (neg_kk, kka) = (&mut sc.neg_kk[..n], &mut sc.kka[..n]);
    for j in 0..n {
        let aj = sigmoid(a0[j] + iclr[j]);
        w[j] = exp(-DECAY_SCALE * sigmoid(w0[j] + decay[j]));
        a[j] = aj;
        neg_kk[j] = k_in[j] * k_k[j];
        k[j] = k_in[j] * (1.0 + (aj - 1.0) * k_a[j]);
    }
    match (x.value_residual, p.v0) {
        (Some((vr, v_first)), Some(v0)) => {
            let (vr, v_first, v0) = (&vr[..n], &v_first[..n], &v0[..n]);
            for j in 0..n {
                let vj = v_in[j];
                v[j] = vj + (v_first[j] - vj) * sigmoid(v0[j] + vr[j]);
            }
        }
        _ => v.copy_from_slice(v_in),
    }
    let inv_norm = 1.0 / dot(neg_kk, neg_kk).sqrt().max(NORMALIZE_EPS);
    for j in 0..n {
        let kk = neg_kk[j] * inv_norm;
        kka[j] = kk * a[j];
        neg_kk[j] = -kk;
    }
}

/// The state update and output for one (token, head), on the key-major (transposed)
/// state `st[j*N + i] = S[i, j]`; leaves `y` in `sc.y`.
///
/// Rows are taken [`ROW_BLOCK`] at a time, so that the block's `S·(-κ)`, value and
/// output stay in vector registers while the columns stream past.
#[inline(always)]
fn recur_key_major<F: MulAdd>(sc: &mut Scratch, st: &mut [f32], r: &[f32]) {
    let n = sc.y.len();
    if !n.is_multiple_of(ROW_BLOCK) {
        return recur_key_major_any::<F>(sc, st, r);
    }
    let (w, kka, k, neg_kk) = (&sc.w[..n], &sc.kka[..n], &sc.k[..n], &sc.neg_kk[..n]);
    let r = &r[..n];
    for i0 in (0..n).step_by(ROW_BLOCK) {
        let mut sa = [0f32; ROW_BLOCK];
        for (j, &nk) in neg_kk.iter().enumerate() {
            let col = &st[j * n + i0..j * n + i0 + ROW_BLOCK];
            for l in 0..ROW_BLOCK {
                sa[l] = F::mul_add(col[l], nk, sa[l]);
            }
        }
        let mut v = [0f32; ROW_BLOCK];
        v.copy_from_slice(&sc.v[i0..i0 + ROW_BLOCK]);
        let mut y = [0f32; ROW_BLOCK];
        for j in 0..n {
            let col = &mut st[j * n + i0..j * n + i0 + ROW_BLOCK];
            let (w, kka, k, r) = (w[j], kka[j], k[j], r[j]);
            for l in 0..ROW_BLOCK {
                let new = F::mul_add(v[l], k, F::mul_add(sa[l], kka, col[l] * w));
                col[l] = new;
                y[l] = F::mul_add(new, r, y[l]);
            }
        }
        sc.y[i0..i0 + ROW_BLOCK].copy_from_slice(&y);
    }
}

/// [`recur_key_major`] for head sizes that are not a multiple of [`ROW_BLOCK`].
#[inline(always)]
fn recur_key_major_any<F: MulAdd>(sc: &mut Scratch, st: &mut [f32], r: &[f32]) {
    let n = sc.y.len();
    // sa = S·(-κ), from the state before this token.
    sc.sa.fill(0.0);
    for (col, &nk) in st.chunks_exact(n).zip(&sc.neg_kk) {
        for (sa, &s) in sc.sa.iter_mut().zip(col) {
            *sa = F::mul_add(s, nk, *sa);
        }
    }
    // S[:, j] = S[:, j]·w[j] + sa·(κa)[j] + v·k[j];  y = S·r.
    sc.y.fill(0.0);
    for (j, col) in st.chunks_exact_mut(n).enumerate() {
        let (w, kka, k, r) = (sc.w[j], sc.kka[j], sc.k[j], r[j]);
        for (((s, &sa), &v), y) in col.iter_mut().zip(&sc.sa).zip(&sc.v).zip(sc.y.iter_mut()) {
            let new = F::mul_add(v, k, F::mul_add(sa, kka, *s * w));
            *s = new;
            *y = F::mul_add(new, r, *y);
        }
    }
}

/// The same on the state as stored, `s[i*N + j] = S[i, j]`, one row at a time.
#[inline(always)]
fn recur_row_major<F: MulAdd>(sc: &mut Scratch, s: &mut [f32], r: &[f32]) {
    let n = sc.y.len();
    for (i, row) in s.chunks_exact_mut(n).enumerate() {
        let sa = dot_mul_add::<F>(row, &sc.neg_kk);
        let vi = sc.v[i];
        for (((s, &w), &kka), &k) in row.iter_mut().zip(&sc.w).zip(&sc.kka).zip(&sc.k) {
            *s = F::mul_add(vi, k, F::mul_add(sa, kka, *s * w));
        }
        sc.y[i] = dot_mul_add::<F>(row, r);
    }
}

/// GroupNorm of `y` over the head, bonus term and gate, into `out`.
#[inline(always)]
fn finish(p: &HeadParams<'_>, x: &TokenInputs<'_>, sc: &mut Scratch, out: &mut [f32]) {
    let n = out.len();
    let y = &mut sc.y[..n];
    let mean = sum(y) / n as f32;
    for yj in y.iter_mut() {
        *yj -= mean;
    }
    let inv_std = 1.0 / (dot(y, y) / n as f32 + GROUP_NORM_EPS).sqrt();
    let (r, r_k, gate) = (&x.r[..n], &p.r_k[..n], &x.gate[..n]);
    let (ln_w, ln_b, k, v) = (&p.ln_w[..n], &p.ln_b[..n], &sc.k[..n], &sc.v[..n]);
    let mut bonus = [0f32; 8];
    for j in 0..n {
        bonus[j % 8] += r[j] * k[j] * r_k[j];
    }
    let bonus: f32 = bonus.iter().sum();
    for j in 0..n {
        out[j] = (y[j] * inv_std * ln_w[j] + ln_b[j] + bonus * v[j]) * gate[j];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The recurrence and its surroundings written plainly, in f64, one token at a time.
    fn reference(
        p: &WkvParams,
        h: usize,
        n: usize,
        inputs: &[Vec<f64>], // per slot, [T, C]
        t: usize,
        s0: &[f64],
    ) -> (Vec<f64>, Vec<f64>) {
        let c = h * n;
        let mut s = s0.to_vec();
        let mut ys = vec![0.0; t * c];
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let f = |v: &Vec<f32>| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let (w0, a0, k_k, k_a, r_k, lw, lb) = (
            f(&p.w0),
            f(&p.a0),
            f(&p.k_k),
            f(&p.k_a),
            f(&p.r_k),
            f(&p.ln_w),
            f(&p.ln_b),
        );
        for ti in 0..t {
            let at = |slot: usize, ch: usize| inputs[slot][ti * c + ch];
            for hi in 0..h {
                let chs: Vec<usize> = (hi * n..(hi + 1) * n).collect();
                let w: Vec<f64> = chs
                    .iter()
                    .map(|&q| (-(DECAY_SCALE as f64) * sig(w0[q] + at(slot::DECAY, q))).exp())
                    .collect();
                let a: Vec<f64> = chs
                    .iter()
                    .map(|&q| sig(a0[q] + at(slot::ICLR, q)))
                    .collect();
                let mut kk: Vec<f64> = chs.iter().map(|&q| at(slot::K, q) * k_k[q]).collect();
                let norm = kk.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
                kk.iter_mut().for_each(|x| *x /= norm);
                let k: Vec<f64> = chs
                    .iter()
                    .enumerate()
                    .map(|(j, &q)| at(slot::K, q) * (1.0 + (a[j] - 1.0) * k_a[q]))
                    .collect();
                let v: Vec<f64> = chs
                    .iter()
                    .map(|&q| match &p.v0 {
                        Some(v0) => {
                            let v = at(slot::V, q);
                            v + (at(slot::V_FIRST, q) - v)
                                * sig(v0[q] as f64 + at(slot::VALUE_RESIDUAL, q))
                        }
                        None => at(slot::V, q),
                    })
                    .collect();
                let r: Vec<f64> = chs.iter().map(|&q| at(slot::R, q)).collect();
                let st = &mut s[hi * n * n..(hi + 1) * n * n];
                let old = st.to_vec();
                let mut y = vec![0.0; n];
                for i in 0..n {
                    let sa: f64 = (0..n).map(|j| old[i * n + j] * -kk[j]).sum();
                    for j in 0..n {
                        st[i * n + j] = old[i * n + j] * w[j] + sa * kk[j] * a[j] + v[i] * k[j];
                    }
                    y[i] = (0..n).map(|j| st[i * n + j] * r[j]).sum();
                }
                let mean = y.iter().sum::<f64>() / n as f64;
                let var = y.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
                let bonus: f64 = (0..n).map(|j| r[j] * k[j] * r_k[chs[j]]).sum();
                for j in 0..n {
                    let q = chs[j];
                    let yn = (y[j] - mean) / (var + GROUP_NORM_EPS as f64).sqrt() * lw[q] + lb[q];
                    ys[ti * c + q] = (yn + bonus * v[j]) * at(slot::GATE, q);
                }
            }
        }
        (ys, s)
    }

    fn pseudo(seed: u64, len: usize, scale: f32) -> Vec<f32> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }

    #[test]
    fn kernel_matches_a_plain_f64_reference_for_odd_head_sizes_and_both_walks() {
        // Head sizes that are and are not multiples of the vector width; both layer kinds.
        // 7 tokens walk the state key-major, 1 and 2 row-major.
        for (h, n, residual, t) in [
            (2, 20, true, 7),
            (3, 16, false, 7),
            (1, 37, true, 7),
            (2, 20, true, 1),
            (1, 37, false, 2),
        ] {
            let c = h * n;
            let params = WkvParams {
                w0: pseudo(1, c, 3.0),
                a0: pseudo(2, c, 1.0),
                v0: residual.then(|| pseudo(3, c, 1.0)),
                k_k: pseudo(4, c, 1.0),
                k_a: pseudo(5, c, 1.0),
                r_k: pseudo(6, c, 0.5),
                ln_w: pseudo(7, c, 1.0),
                ln_b: pseudo(8, c, 0.2),
            };
            let slots = if residual {
                slot::LATER_LAYER
            } else {
                slot::FIRST_LAYER
            };
            let inputs: Vec<Vec<f32>> = (0..slots)
                .map(|i| pseudo(10 + i as u64, t * c, 1.0))
                .collect();
            let state0 = pseudo(99, h * n * n, 0.3);
            let dev = Device::Cpu;
            let flat: Vec<f32> = inputs.concat();
            let x = Tensor::from_vec(flat, (slots, 1, t, c), &dev).unwrap();
            let s = Tensor::from_vec(state0.clone(), (1, h, n, n), &dev).unwrap();
            let op = Wkv7::new(h, n, &params);
            let y = wkv7(&s, &x, &op).unwrap();
            let s1 = s;
            let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let s1 = s1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let inputs64: Vec<Vec<f64>> = inputs
                .iter()
                .map(|v| v.iter().map(|&x| x as f64).collect())
                .collect();
            let s0: Vec<f64> = state0.iter().map(|&x| x as f64).collect();
            let (want_y, want_s) = reference(&params, h, n, &inputs64, t, &s0);
            let dy = y
                .iter()
                .zip(&want_y)
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max);
            let ds = s1
                .iter()
                .zip(&want_s)
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max);
            // f32 against f64 over 7 tokens of O(1) values: rounding is ~1e-6.
            assert!(
                dy < 2e-5 && ds < 2e-5,
                "h {h} n {n}: |dy| {dy:e}, |ds| {ds:e}"
            );
        }
    }
}
