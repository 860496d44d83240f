//! The bare WKV-7 recurrence as a differentiable candle op, for training.
//!
//! Per head, with state `S [N, N]` (rows: value index i, columns: key index j), zero
//! at the start of every sequence, and per token:
//!
//! ```text
//! sa = S a        S = S·diag(w) + sa bᵀ + v kᵀ        y = S r
//! ```
//!
//! with `a = -κ` and `b = κ ⊙ iclr` as the time mix forms them (the official training
//! kernel's `RUN_CUDA_RWKV7g(r, w, k, v, -kk, kk*a)`). Everything around the recurrence
//! (decay, key normalisation, GroupNorm, bonus, gate) stays in candle ops, whose
//! autograd differentiates it; this op is the one part that would otherwise be a
//! `T`-long chain of tiny matrix ops.
//!
//! The forward keeps the state at every [`CHUNK`]-th token only (`T/CHUNK · N²` floats
//! per head instead of `T · N²`); the backward recomputes the states inside one chunk
//! from its checkpoint, then walks that chunk's tokens backwards. Gradients, per token
//! and with `dS` the gradient of the state after it:
//!
//! ```text
//! dS += dy rᵀ;  dr = Sᵀ dy;  dv = dS k;  dk = dSᵀ v;  dsa = dS b;  db = dSᵀ sa
//! dw = Σ_i dS ⊙ S_prev;  da = S_prevᵀ dsa;  dS_prev = dS·diag(w) + dsa aᵀ
//! ```
//!
//! Each (batch row, head) is one sequential task, run in parallel with rayon: on a CPU
//! this fused walk touches each state element a few times per token from L1, where a
//! chunked matrix form (fla's `chunk_rwkv7`) would trade that for `[CHUNK, CHUNK]`
//! matmuls too small to reach the matmul peak.

use std::sync::Mutex;

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::ops::f32_data;
use crate::Result;

/// Tokens between two stored states: the backward recomputes at most this many
/// states per head at a time (`CHUNK · N²` floats, 512 KiB at N = 64).
pub const CHUNK: usize = 32;

/// Slots of the stacked input, each `[B, T, C]`.
pub mod slot {
    pub const R: usize = 0;
    /// The per-channel decay factor `w` in (0, 1), already `exp(-0.6065·sigmoid(..))`.
    pub const W: usize = 1;
    pub const K: usize = 2;
    pub const V: usize = 3;
    /// `-κ`.
    pub const A: usize = 4;
    /// `κ ⊙ iclr`.
    pub const B: usize = 5;
    pub const COUNT: usize = 6;
}

/// `y = WKV(r, w, k, v, a, b)` over whole sequences, each input `[B, T, C]` with
/// `C = heads · head_size`; returns `y [B, T, C]`, differentiable in all six.
pub fn wkv7_train(
    inputs: [&Tensor; slot::COUNT],
    heads: usize,
    head_size: usize,
) -> Result<Tensor> {
    let stacked = Tensor::stack(&inputs, 0)?.contiguous()?;
    Ok(stacked.apply_op1(Wkv7Train {
        heads,
        head_size,
        checkpoints: Mutex::new(Vec::new()),
    })?)
}

struct Wkv7Train {
    heads: usize,
    head_size: usize,
    /// Per task, the states before tokens `0, CHUNK, 2·CHUNK, ...`, written by the
    /// forward for the backward.
    checkpoints: Mutex<Vec<Vec<f32>>>,
}

/// Shapes of one call and the stacked input.
struct Dims {
    batch: usize,
    seq: usize,
    width: usize,
    heads: usize,
    n: usize,
}

impl Dims {
    fn of(op: &Wkv7Train, shape: &Shape) -> candle_core::Result<Self> {
        let (slots, batch, seq, width) = shape.dims4()?;
        if slots != slot::COUNT || width != op.heads * op.head_size {
            bail!(
                "rwkv-wkv7-train: inputs {:?}, expected [{}, B, T, {}]",
                shape.dims(),
                slot::COUNT,
                op.heads * op.head_size
            )
        }
        Ok(Self {
            batch,
            seq,
            width,
            heads: op.heads,
            n: op.head_size,
        })
    }

    fn tasks(&self) -> usize {
        self.batch * self.heads
    }

    fn chunks(&self) -> usize {
        self.seq.div_ceil(CHUNK)
    }

    /// Offset of task `task`'s channels of token `t` in slot `s` of the stacked layout.
    fn at(&self, s: usize, task: usize, t: usize) -> usize {
        let (b, h) = (task / self.heads, task % self.heads);
        ((s * self.batch + b) * self.seq + t) * self.width + h * self.n
    }
}

/// One token's inputs for one head, each of length N.
struct Token<'a> {
    r: &'a [f32],
    w: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    a: &'a [f32],
    b: &'a [f32],
}

fn token<'a>(x: &'a [f32], d: &Dims, task: usize, t: usize) -> Token<'a> {
    let get = |s: usize| {
        let at = d.at(s, task, t);
        &x[at..at + d.n]
    };
    Token {
        r: get(slot::R),
        w: get(slot::W),
        k: get(slot::K),
        v: get(slot::V),
        a: get(slot::A),
        b: get(slot::B),
    }
}

/// Advances `s` by one token; writes `y = S r` when `y` is given.
#[inline(always)]
fn step(s: &mut [f32], x: &Token<'_>, mut y: Option<&mut [f32]>) {
    let n = x.r.len();
    let (r, w, k, v, a, b) = (
        &x.r[..n],
        &x.w[..n],
        &x.k[..n],
        &x.v[..n],
        &x.a[..n],
        &x.b[..n],
    );
    for (i, row) in s.chunks_exact_mut(n).enumerate() {
        let row = &mut row[..n];
        let sa = kernels::dot(row, a);
        let vi = v[i];
        for j in 0..n {
            row[j] = row[j] * w[j] + sa * b[j] + vi * k[j];
        }
        if let Some(y) = y.as_deref_mut() {
            y[i] = kernels::dot(row, r);
        }
    }
}

#[inline(always)]
fn forward_task_body(x: &[f32], d: &Dims, task: usize, y: &mut [f32], ckpt: &mut [f32]) {
    let nn = d.n * d.n;
    let mut s = vec![0f32; nn];
    for (t, yt) in y.chunks_exact_mut(d.n).enumerate() {
        if t % CHUNK == 0 {
            ckpt[t / CHUNK * nn..(t / CHUNK + 1) * nn].copy_from_slice(&s);
        }
        step(&mut s, &token(x, d, task, t), Some(yt));
    }
}

kernels::dispatch!(
    /// One (batch row, head): outputs `y [T, N]`, checkpoints `[T/CHUNK, N, N]`.
    fn forward_task(x: &[f32], d: &Dims, task: usize, y: &mut [f32], ckpt: &mut [f32])
        => forward_task_body
);

/// Gradients of one task, `[slot::COUNT, T, N]`.
#[inline(always)]
fn backward_task_body(x: &[f32], dy: &[f32], d: &Dims, task: usize, ckpt: &[f32], g: &mut [f32]) {
    let (n, t_len) = (d.n, d.seq);
    let nn = n * n;
    let mut ds = vec![0f32; nn];
    let mut states = vec![0f32; (CHUNK + 1) * nn];
    let mut sa = vec![0f32; n];
    // Per-token gradients, in `slot` order.
    let mut dt = vec![0f32; slot::COUNT * n];
    let grad_at = |s: usize, t: usize| (s * t_len + t) * n;
    for c in (0..d.chunks()).rev() {
        let (t0, t1) = (c * CHUNK, ((c + 1) * CHUNK).min(t_len));
        states[..nn].copy_from_slice(&ckpt[c * nn..(c + 1) * nn]);
        for t in t0..t1 {
            let (done, next) = states.split_at_mut((t - t0 + 1) * nn);
            next[..nn].copy_from_slice(&done[(t - t0) * nn..]);
            step(&mut next[..nn], &token(x, d, task, t), None);
        }
        for t in (t0..t1).rev() {
            let xt = token(x, d, task, t);
            let (r, w, k, v, a, b) = (
                &xt.r[..n],
                &xt.w[..n],
                &xt.k[..n],
                &xt.v[..n],
                &xt.a[..n],
                &xt.b[..n],
            );
            let prev = &states[(t - t0) * nn..(t - t0 + 1) * nn];
            let cur = &states[(t - t0 + 1) * nn..(t - t0 + 2) * nn];
            let dyt = &dy[d.at(0, task, t)..d.at(0, task, t) + n];
            for (i, p) in prev.chunks_exact(n).enumerate() {
                sa[i] = kernels::dot(p, a);
            }
            dt.fill(0.0);
            let (dr, rest) = dt.split_at_mut(n);
            let (dw, rest) = rest.split_at_mut(n);
            let (dk, rest) = rest.split_at_mut(n);
            let (dv, rest) = rest.split_at_mut(n);
            let (da, db) = rest.split_at_mut(n);
            for i in 0..n {
                let row = &mut ds[i * n..(i + 1) * n];
                let (p, s) = (&prev[i * n..(i + 1) * n], &cur[i * n..(i + 1) * n]);
                let dyi = dyt[i];
                for j in 0..n {
                    row[j] += dyi * r[j];
                }
                dv[i] = kernels::dot(row, k);
                let dsai = kernels::dot(row, b);
                let (vi, sai) = (v[i], sa[i]);
                for j in 0..n {
                    dr[j] += s[j] * dyi;
                    dk[j] += row[j] * vi;
                    db[j] += row[j] * sai;
                    dw[j] += row[j] * p[j];
                    da[j] += p[j] * dsai;
                    row[j] = row[j] * w[j] + dsai * a[j];
                }
            }
            for (s, grad) in dt.chunks_exact(n).enumerate() {
                g[grad_at(s, t)..grad_at(s, t) + n].copy_from_slice(grad);
            }
        }
    }
}

kernels::dispatch!(
    /// One (batch row, head)'s input gradients, `[slot::COUNT, T, N]`.
    fn backward_task(x: &[f32], dy: &[f32], d: &Dims, task: usize, ckpt: &[f32], g: &mut [f32])
        => backward_task_body
);

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("rwkv-wkv7-train: a previous run panicked".into())
}

impl CustomOp1 for Wkv7Train {
    fn name(&self) -> &'static str {
        "rwkv-wkv7-train"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_data(storage, layout, self.name())?;
        let d = Dims::of(self, layout.shape())?;
        let nn = d.n * d.n;
        let per_task: Vec<(Vec<f32>, Vec<f32>)> = (0..d.tasks())
            .into_par_iter()
            .map(|task| {
                let mut y = vec![0f32; d.seq * d.n];
                let mut ckpt = vec![0f32; d.chunks() * nn];
                forward_task(x, &d, task, &mut y, &mut ckpt);
                (y, ckpt)
            })
            .collect();
        let mut y = vec![0f32; d.batch * d.seq * d.width];
        let mut checkpoints = Vec::with_capacity(d.tasks());
        for (task, (ys, ckpt)) in per_task.into_iter().enumerate() {
            for (t, yt) in ys.chunks_exact(d.n).enumerate() {
                let at = d.at(0, task, t);
                y[at..at + d.n].copy_from_slice(yt);
            }
            checkpoints.push(ckpt);
        }
        *self.checkpoints.lock().map_err(|_| poisoned())? = checkpoints;
        Ok((CpuStorage::F32(y), Shape::from((d.batch, d.seq, d.width))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let d = Dims::of(self, arg.shape())?;
        let x = arg.flatten_all()?.to_vec1::<f32>()?;
        let dy = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let checkpoints = self.checkpoints.lock().map_err(|_| poisoned())?;
        if checkpoints.len() != d.tasks() {
            bail!("{}: backward without a forward", self.name())
        }
        let per_task: Vec<Vec<f32>> = (0..d.tasks())
            .into_par_iter()
            .map(|task| {
                let mut g = vec![0f32; slot::COUNT * d.seq * d.n];
                backward_task(&x, &dy, &d, task, &checkpoints[task], &mut g);
                g
            })
            .collect();
        let mut grad = vec![0f32; x.len()];
        for (task, g) in per_task.iter().enumerate() {
            for (row, gt) in g.chunks_exact(d.n).enumerate() {
                let (s, t) = (row / d.seq, row % d.seq);
                let at = d.at(s, task, t);
                grad[at..at + d.n].copy_from_slice(gt);
            }
        }
        Ok(Some(Tensor::from_vec(grad, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var, D};

    /// The recurrence in plain candle ops, differentiated by candle's autograd.
    fn reference(x: [&Tensor; slot::COUNT], heads: usize, n: usize) -> Result<Tensor> {
        let (b, t, _) = x[0].dims3()?;
        let per_head = |s: usize| x[s].reshape((b, t, heads, n));
        let (r, w, k, v, a, bb) = (
            per_head(slot::R)?,
            per_head(slot::W)?,
            per_head(slot::K)?,
            per_head(slot::V)?,
            per_head(slot::A)?,
            per_head(slot::B)?,
        );
        let mut s = Tensor::zeros((b, heads, n, n), DType::F32, &Device::Cpu)?;
        let mut ys = Vec::new();
        for ti in 0..t {
            let col = |x: &Tensor| {
                x.narrow(1, ti, 1)
                    .unwrap()
                    .squeeze(1)
                    .unwrap()
                    .contiguous()
                    .unwrap()
            };
            let (rt, wt, kt, vt, at, bt) = (col(&r), col(&w), col(&k), col(&v), col(&a), col(&bb));
            let sa = s.matmul(&at.unsqueeze(D::Minus1)?)?; // [b, h, n, 1]
            s = (s.broadcast_mul(&wt.unsqueeze(2)?)?
                + sa.matmul(&bt.unsqueeze(2)?)?
                + vt.unsqueeze(D::Minus1)?.matmul(&kt.unsqueeze(2)?)?)?;
            ys.push(s.matmul(&rt.unsqueeze(D::Minus1)?)?.squeeze(D::Minus1)?); // [b, h, n]
        }
        Ok(Tensor::stack(&ys, 1)?.reshape((b, t, heads * n))?)
    }

    /// Uniform values in `[lo, hi)` from a seeded xorshift (candle's CPU rng cannot be
    /// seeded).
    fn uniform(shape: (usize, usize, usize), lo: f32, hi: f32, seed: &mut u64) -> Result<Tensor> {
        let n = shape.0 * shape.1 * shape.2;
        let data: Vec<f32> = (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                lo + (hi - lo) * ((*seed >> 40) as f32 / (1u64 << 24) as f32)
            })
            .collect();
        Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
    }

    fn inputs(b: usize, t: usize, c: usize, mut seed: u64) -> Result<Vec<Var>> {
        let shape = (b, t, c);
        let mut u = |lo: f32, hi: f32| uniform(shape, lo, hi, &mut seed);
        // As the time mix makes them: w in (0.55, 1), a = -κ, b = κ·iclr, κ of unit
        // norm (over the whole row here, which is smaller per head).
        let (r, w, k, v) = (u(-1.0, 1.0)?, u(0.55, 1.0)?, u(-0.5, 0.5)?, u(-1.0, 1.0)?);
        let kk = u(-1.0, 1.0)?;
        let kk = kk.broadcast_div(&kk.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)?;
        let iclr = u(0.0, 1.0)?;
        [r, w, k, v, kk.neg()?, (kk * iclr)?]
            .iter()
            .map(|t| Ok(Var::from_tensor(t)?))
            .collect()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Sequence lengths on, off and across chunk boundaries, two batch rows, and a
    /// head size that is not a multiple of the SIMD width.
    #[test]
    fn matches_autograd_of_the_plain_recurrence() -> Result<()> {
        for (b, t, heads, n, seed) in [(2, 37, 2, 8, 1), (1, 64, 3, 16, 2), (1, 5, 1, 12, 3)] {
            let vars = inputs(b, t, heads * n, seed)?;
            let xs: Vec<&Tensor> = vars.iter().map(|v| v.as_tensor()).collect();
            let x: [&Tensor; slot::COUNT] = xs.clone().try_into().expect("six inputs");
            let ours = wkv7_train(x, heads, n)?;
            let want = reference(x, heads, n)?;
            assert!(
                max_abs_diff(&ours, &want) < 1e-4,
                "forward differs at {t} tokens"
            );
            // A loss that weights every output differently, so no gradient is symmetric.
            let weights = uniform(ours.dims3()?, -1.0, 1.0, &mut 99)?;
            let g_ours = (ours * &weights)?.sum_all()?.backward()?;
            let g_want = (want * &weights)?.sum_all()?.backward()?;
            for (s, v) in vars.iter().enumerate() {
                let (a, e) = (
                    g_ours.get(v).expect("ours"),
                    g_want.get(v).expect("reference"),
                );
                let scale = e.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1.0);
                let diff = max_abs_diff(a, e);
                assert!(
                    diff <= 1e-4 * scale,
                    "slot {s}: max|Δgrad| {diff} (scale {scale}) at {t} tokens"
                );
            }
        }
        Ok(())
    }
}
