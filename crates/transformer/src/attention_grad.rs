//! Causal grouped-query attention as a differentiable candle op, for training, in
//! O(T) memory per head: no `T x T` score matrix is ever stored.
//!
//! The forward keeps, per query row, only the log-sum-exp of its scores
//! (`lse = m + ln Σ exp(s - m)`); the backward recomputes the probabilities from it
//! (FlashAttention-2's backward, Dao 2023, Algorithm 2):
//!
//! ```text
//! P = exp(S - lse)     D_i = dO_i · O_i     dS = P ∘ (dO Vᵀ - D)
//! dQ = scale dS K      dK = scale dSᵀ Q     dV = Pᵀ dO
//! ```
//!
//! Each (batch row, query head) is one task, run in parallel with rayon; a task walks
//! its queries `BLOCK` rows at a time against the keys up to the block's end, each
//! product one single-threaded gemm call reading q, k and v in place (their rows are
//! `heads x D` apart). The scores of one block, `BLOCK x T`, are the largest buffer.
//! The key/value gradients of the query heads that share a key/value head are summed.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::Result;

/// Query rows per block (the `m` of every product).
const BLOCK: usize = 64;

/// `softmax(q kᵀ / sqrt(D) + causal mask) v`.
///
/// # Shapes
/// `q (B, T, H, D)`, `k`, `v` `(B, T, Hkv, D)` with `H` a multiple of `Hkv` ->
/// `(B, T, H, D)`.
pub fn causal_attention_train(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let op = AttentionTrain {
        lse: Mutex::new(Vec::new()),
    };
    Ok(q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)?)
}

struct AttentionTrain {
    /// `[B, H, T]` log-sum-exp of every query row, from the forward.
    lse: Mutex<Vec<f32>>,
}

#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    seq: usize,
    heads: usize,
    kv_heads: usize,
    dim: usize,
}

impl Dims {
    fn of(q: &Shape, k: &Shape, v: &Shape) -> candle_core::Result<Self> {
        let (batch, seq, heads, dim) = q.dims4()?;
        let (kb, kt, kv_heads, kd) = k.dims4()?;
        if (kb, kt, kd) != (batch, seq, dim) || k != v || kv_heads == 0 || heads % kv_heads != 0 {
            bail!(
                "attention-train: q {:?}, k {:?}, v {:?}",
                q.dims(),
                k.dims(),
                v.dims()
            )
        }
        Ok(Self {
            batch,
            seq,
            heads,
            kv_heads,
            dim,
        })
    }

    fn scale(&self) -> f32 {
        1.0 / (self.dim as f32).sqrt()
    }

    /// Task `task`'s query rows and its key/value head's rows, as matrix views.
    fn rows(&self, task: usize) -> (View, View) {
        let (b, h) = (task / self.heads, task % self.heads);
        let kh = h / (self.heads / self.kv_heads);
        let view = |heads: usize, head: usize| View {
            offset: (b * self.seq * heads + head) * self.dim,
            rows: self.seq,
            cols: self.dim,
            rs: heads * self.dim,
            cs: 1,
        };
        (view(self.heads, h), view(self.kv_heads, kh))
    }
}

/// A strided matrix in a slice: element `(i, j)` at `offset + i·rs + j·cs`.
#[derive(Clone, Copy)]
struct View {
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl View {
    /// A contiguous row-major `rows x cols` matrix at `offset`.
    fn dense(offset: usize, rows: usize, cols: usize) -> Self {
        Self {
            offset,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// Rows `start..start + n`.
    fn narrow(self, start: usize, n: usize) -> Self {
        Self {
            offset: self.offset + start * self.rs,
            rows: n,
            ..self
        }
    }

    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Panics unless every element lies in a slice of `len`.
    fn check(&self, len: usize) {
        assert!(self.rows > 0 && self.cols > 0);
        let last = self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
        assert!(last < len, "view past the end of its buffer");
    }
}

/// `dst = scale · a b` (or `dst += scale · a b` with `accumulate`), single-threaded.
fn matmul(
    (dst, dv): (&mut [f32], View),
    (a, av): (&[f32], View),
    (b, bv): (&[f32], View),
    scale: f32,
    accumulate: bool,
) {
    assert!(av.rows == dv.rows && bv.cols == dv.cols && av.cols == bv.rows);
    dv.check(dst.len());
    av.check(a.len());
    bv.check(b.len());
    // SAFETY: the three views were just checked to lie inside their slices, and `dst`
    // is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            dv.rows,
            dv.cols,
            av.cols,
            dst.as_mut_ptr().add(dv.offset),
            dv.cs as isize,
            dv.rs as isize,
            accumulate,
            a.as_ptr().add(av.offset),
            av.cs as isize,
            av.rs as isize,
            b.as_ptr().add(bv.offset),
            bv.cs as isize,
            bv.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

fn data<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(d) = s else {
        bail!("attention-train: f32 only, got {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&d[a..b]),
        None => bail!("attention-train: inputs must be contiguous"),
    }
}

/// Query blocks of a sequence: `(start, rows)`.
fn query_blocks(seq: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..seq)
        .step_by(BLOCK)
        .map(move |start| (start, BLOCK.min(seq - start)))
}

/// One (batch row, query head) forward: `o [T, D]` and `lse [T]`.
fn forward_task(q: &[f32], k: &[f32], v: &[f32], d: &Dims, task: usize) -> (Vec<f32>, Vec<f32>) {
    let (n, t) = (d.dim, d.seq);
    let (qv, kv) = d.rows(task);
    let (mut o, mut lse) = (vec![0f32; t * n], vec![0f32; t]);
    let mut s = vec![0f32; BLOCK * t];
    for (start, rows) in query_blocks(t) {
        let end = start + rows;
        let sv = View::dense(0, rows, end);
        let keys = kv.narrow(0, end);
        matmul(
            (&mut s, sv),
            (q, qv.narrow(start, rows)),
            (k, keys.t()),
            d.scale(),
            false,
        );
        for (i, row) in s[..rows * end].chunks_exact_mut(end).enumerate() {
            let (live, dead) = row.split_at_mut(start + i + 1);
            let max = live.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for x in live.iter_mut() {
                *x = kernels::exp(*x - max);
                sum += *x;
            }
            let inv = 1.0 / sum;
            live.iter_mut().for_each(|x| *x *= inv);
            dead.fill(0.0);
            lse[start + i] = max + sum.ln();
        }
        matmul(
            (&mut o, View::dense(start * n, rows, n)),
            (&s, sv),
            (v, keys),
            1.0,
            false,
        );
    }
    (o, lse)
}

/// Inputs of one backward task.
struct Backward<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    o: &'a [f32],
    d_o: &'a [f32],
    lse: &'a [f32],
}

/// One (batch row, query head)'s `dq`, `dk`, `dv`, each `[T, D]` (the last two for its
/// key/value head, to be summed over the group).
fn backward_task(x: &Backward<'_>, d: &Dims, task: usize) -> [Vec<f32>; 3] {
    let (n, t) = (d.dim, d.seq);
    let (qv, kv) = d.rows(task);
    let lse = &x.lse[task * t..(task + 1) * t];
    let delta: Vec<f32> = (0..t)
        .map(|i| {
            let at = qv.offset + i * qv.rs;
            kernels::dot(&x.d_o[at..at + n], &x.o[at..at + n])
        })
        .collect();
    let z = || vec![0f32; t * n];
    let (mut dq, mut dk, mut dv) = (z(), z(), z());
    let (mut p, mut ds) = (vec![0f32; BLOCK * t], vec![0f32; BLOCK * t]);
    for (start, rows) in query_blocks(t) {
        let end = start + rows;
        let sv = View::dense(0, rows, end);
        let keys = kv.narrow(0, end);
        let (qb, dob) = (qv.narrow(start, rows), qv.narrow(start, rows));
        matmul((&mut p, sv), (x.q, qb), (x.k, keys.t()), d.scale(), false);
        matmul((&mut ds, sv), (x.d_o, dob), (x.v, keys.t()), 1.0, false);
        let p_rows = p[..rows * end].chunks_exact_mut(end);
        let ds_rows = ds[..rows * end].chunks_exact_mut(end);
        for (i, (pr, gr)) in p_rows.zip(ds_rows).enumerate() {
            let live = start + i + 1;
            let (l, dl) = (lse[start + i], delta[start + i]);
            for (pj, gj) in pr[..live].iter_mut().zip(gr[..live].iter_mut()) {
                *pj = kernels::exp(*pj - l);
                *gj = d.scale() * *pj * (*gj - dl);
            }
            pr[live..].fill(0.0);
            gr[live..].fill(0.0);
        }
        let dense_keys = View::dense(0, end, n);
        matmul(
            (&mut dq, View::dense(start * n, rows, n)),
            (&ds, sv),
            (x.k, keys),
            1.0,
            false,
        );
        matmul((&mut dk, dense_keys), (&ds, sv.t()), (x.q, qb), 1.0, true);
        matmul((&mut dv, dense_keys), (&p, sv.t()), (x.d_o, dob), 1.0, true);
    }
    [dq, dk, dv]
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("attention-train: a previous run panicked".into())
}

impl CustomOp3 for AttentionTrain {
    fn name(&self) -> &'static str {
        "attention-train"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Dims::of(ql.shape(), kl.shape(), vl.shape())?;
        let (q, k, v) = (data(qs, ql)?, data(ks, kl)?, data(vs, vl)?);
        let per_task: Vec<(Vec<f32>, Vec<f32>)> = (0..d.batch * d.heads)
            .into_par_iter()
            .map(|task| forward_task(q, k, v, &d, task))
            .collect();
        let mut out = vec![0f32; q.len()];
        let mut lse = Vec::with_capacity(d.batch * d.heads * d.seq);
        for (task, (o, l)) in per_task.into_iter().enumerate() {
            let (qv, _) = d.rows(task);
            for (t, row) in o.chunks_exact(d.dim).enumerate() {
                let at = qv.offset + t * qv.rs;
                out[at..at + d.dim].copy_from_slice(row);
            }
            lse.extend(l);
        }
        *self.lse.lock().map_err(|_| poisoned())? = lse;
        Ok((CpuStorage::F32(out), ql.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = Dims::of(q.shape(), k.shape(), v.shape())?;
        let vec = |t: &Tensor| t.contiguous()?.flatten_all()?.to_vec1::<f32>();
        let (qv, kv, vv, ov, dov) = (vec(q)?, vec(k)?, vec(v)?, vec(res)?, vec(grad_res)?);
        let lse = self.lse.lock().map_err(|_| poisoned())?;
        if lse.len() != d.batch * d.heads * d.seq {
            bail!("{}: backward without a forward", self.name())
        }
        let x = Backward {
            q: &qv,
            k: &kv,
            v: &vv,
            o: &ov,
            d_o: &dov,
            lse: &lse,
        };
        let per_task: Vec<[Vec<f32>; 3]> = (0..d.batch * d.heads)
            .into_par_iter()
            .map(|task| backward_task(&x, &d, task))
            .collect();
        let mut dq = vec![0f32; qv.len()];
        let (mut dk, mut dv) = (vec![0f32; kv.len()], vec![0f32; vv.len()]);
        for (task, [tq, tk, tv]) in per_task.iter().enumerate() {
            let (qr, kr) = d.rows(task);
            for t in 0..d.seq {
                let row = t * d.dim..(t + 1) * d.dim;
                let at = qr.offset + t * qr.rs;
                dq[at..at + d.dim].copy_from_slice(&tq[row.clone()]);
                let at = kr.offset + t * kr.rs;
                for c in 0..d.dim {
                    dk[at + c] += tk[row.start + c];
                    dv[at + c] += tv[row.start + c];
                }
            }
        }
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    /// Plain attention through candle ops, with the `T x T` scores, for reference.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (b, t, h, n) = q.dims4()?;
        let hkv = k.dim(2)?;
        let expand = |x: &Tensor| -> Result<Tensor> {
            let x = x.transpose(1, 2)?; // (B, Hkv, T, D)
            Ok(x.unsqueeze(2)?
                .broadcast_as((b, hkv, h / hkv, t, n))?
                .reshape((b, h, t, n))?)
        };
        let q = q.transpose(1, 2)?.contiguous()?;
        let (k, v) = (expand(k)?.contiguous()?, expand(v)?.contiguous()?);
        let s = (q.matmul(&k.t()?)? / (n as f64).sqrt())?;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        let s = s.broadcast_add(&Tensor::from_vec(mask, (t, t), q.device())?)?;
        let p = candle_nn::ops::softmax(&s, D::Minus1)?;
        Ok(p.matmul(&v)?.transpose(1, 2)?.contiguous()?)
    }

    #[test]
    fn matches_autograd_of_plain_attention() -> Result<()> {
        let dev = Device::Cpu;
        // MHA, GQA and MQA, lengths 1 and odd.
        for (b, t, h, hkv, n) in [
            (2, 9, 2, 2, 8),
            (1, 13, 4, 2, 16),
            (1, 1, 3, 1, 4),
            (2, 21, 3, 1, 12),
            // more than one block of queries
            (1, 300, 2, 1, 8),
        ] {
            let var =
                |heads: usize| Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, heads, n), &dev)?);
            let (q, k, v) = (var(h)?, var(hkv)?, var(hkv)?);
            let ours = causal_attention_train(&q, &k, &v)?;
            let want = reference(&q, &k, &v)?;
            let diff: f32 = (&ours - &want)?.abs()?.flatten_all()?.max(0)?.to_scalar()?;
            assert!(diff < 1e-5, "forward max|Δ| {diff}");
            let w = Tensor::randn(0f32, 1.0, ours.shape(), &dev)?;
            let g_ours = (ours * &w)?.sum_all()?.backward()?;
            let g_want = (want * &w)?.sum_all()?.backward()?;
            for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
                let (a, e) = (
                    g_ours.get(x).expect("ours"),
                    g_want.get(x).expect("reference"),
                );
                let diff: f32 = (a - e)?.abs()?.flatten_all()?.max(0)?.to_scalar()?;
                assert!(
                    diff < 1e-4,
                    "d{name} max|Δ| {diff} for {:?}",
                    (b, t, h, hkv, n)
                );
            }
        }
        Ok(())
    }
}
