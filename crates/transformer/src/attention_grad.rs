//! Causal grouped-query attention as a differentiable candle op, for training, in
//! O(T) memory per head: no `T x T` score matrix is ever stored.
//!
//! The forward keeps, per query row, only the log-sum-exp of its scores
//! (`lse = m + ln Σ exp(s - m)`); the backward recomputes each row's probabilities
//! from it (FlashAttention-2's backward, Dao 2023, Algorithm 2, one row at a time):
//!
//! ```text
//! p_ij = exp(s_ij - lse_i)     D_i = dO_i · O_i     ds_ij = p_ij (dO_i · v_j - D_i)
//! dq_i = scale Σ_j ds_ij k_j   dk_j = scale Σ_i ds_ij q_i   dv_j = Σ_i p_ij dO_i
//! ```
//!
//! Each (batch row, query head) is one task, run in parallel with rayon; the key/value
//! gradients of the query heads that share a key/value head are summed afterwards.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::Result;

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

    /// Offset of row `t` of head `h` in a `(B, T, heads, D)` tensor.
    fn at(&self, b: usize, t: usize, heads: usize, h: usize) -> usize {
        ((b * self.seq + t) * heads + h) * self.dim
    }

    fn kv_head(&self, h: usize) -> usize {
        h / (self.heads / self.kv_heads)
    }

    fn scale(&self) -> f32 {
        1.0 / (self.dim as f32).sqrt()
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

/// The scores of query row `i` against keys `0..=i`, into `s`; returns their maximum.
#[inline(always)]
fn scores(q: &[f32], k: &[f32], d: &Dims, b: usize, h: usize, i: usize, s: &mut [f32]) -> f32 {
    let (n, kh, scale) = (d.dim, d.kv_head(h), d.scale());
    let qi = &q[d.at(b, i, d.heads, h)..][..n];
    let mut max = f32::NEG_INFINITY;
    for (j, sj) in s[..=i].iter_mut().enumerate() {
        *sj = kernels::dot(qi, &k[d.at(b, j, d.kv_heads, kh)..][..n]) * scale;
        max = max.max(*sj);
    }
    max
}

#[inline(always)]
fn forward_task_body(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d: &Dims,
    task: usize,
    o: &mut [f32],
    lse: &mut [f32],
) {
    let (b, h, n) = (task / d.heads, task % d.heads, d.dim);
    let kh = d.kv_head(h);
    let mut s = vec![0f32; d.seq];
    for i in 0..d.seq {
        let max = scores(q, k, d, b, h, i, &mut s);
        let oi = &mut o[i * n..(i + 1) * n];
        let mut total = 0f32;
        for (j, sj) in s[..=i].iter().enumerate() {
            let p = kernels::exp(sj - max);
            total += p;
            let vj = &v[d.at(b, j, d.kv_heads, kh)..][..n];
            for (o, &x) in oi.iter_mut().zip(vj) {
                *o += p * x;
            }
        }
        for o in oi.iter_mut() {
            *o /= total;
        }
        lse[i] = max + total.ln();
    }
}

kernels::dispatch!(
    /// One (batch row, query head): `o [T, D]` and `lse [T]`.
    fn forward_task(q: &[f32], k: &[f32], v: &[f32], d: &Dims, task: usize, o: &mut [f32], lse: &mut [f32])
        => forward_task_body
);

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
#[inline(always)]
fn backward_task_body(
    x: &Backward<'_>,
    d: &Dims,
    task: usize,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let (b, h, n) = (task / d.heads, task % d.heads, d.dim);
    let (kh, scale) = (d.kv_head(h), d.scale());
    let mut s = vec![0f32; d.seq];
    for i in 0..d.seq {
        scores(x.q, x.k, d, b, h, i, &mut s);
        let row = d.at(b, i, d.heads, h);
        let (qi, oi, doi) = (&x.q[row..][..n], &x.o[row..][..n], &x.d_o[row..][..n]);
        let delta = kernels::dot(doi, oi);
        let lse = x.lse[(b * d.heads + h) * d.seq + i];
        let dqi = &mut dq[i * n..(i + 1) * n];
        for (j, &sj) in s[..=i].iter().enumerate() {
            let kv = d.at(b, j, d.kv_heads, kh);
            let (kj, vj) = (&x.k[kv..][..n], &x.v[kv..][..n]);
            let p = kernels::exp(sj - lse);
            let ds = p * (kernels::dot(doi, vj) - delta) * scale;
            let (dkj, dvj) = (&mut dk[j * n..(j + 1) * n], &mut dv[j * n..(j + 1) * n]);
            for c in 0..n {
                dqi[c] += ds * kj[c];
                dkj[c] += ds * qi[c];
                dvj[c] += p * doi[c];
            }
        }
    }
}

kernels::dispatch!(
    fn backward_task(x: &Backward<'_>, d: &Dims, task: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32])
        => backward_task_body
);

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
            .map(|task| {
                let (mut o, mut lse) = (vec![0f32; d.seq * d.dim], vec![0f32; d.seq]);
                forward_task(q, k, v, &d, task, &mut o, &mut lse);
                (o, lse)
            })
            .collect();
        let mut out = vec![0f32; q.len()];
        let mut lse = Vec::with_capacity(d.batch * d.heads * d.seq);
        for (task, (o, l)) in per_task.into_iter().enumerate() {
            let (b, h) = (task / d.heads, task % d.heads);
            for (t, row) in o.chunks_exact(d.dim).enumerate() {
                let at = d.at(b, t, d.heads, h);
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
            .map(|task| {
                let z = || vec![0f32; d.seq * d.dim];
                let (mut dq, mut dk, mut dv) = (z(), z(), z());
                backward_task(&x, &d, task, &mut dq, &mut dk, &mut dv);
                [dq, dk, dv]
            })
            .collect();
        let mut dq = vec![0f32; qv.len()];
        let (mut dk, mut dv) = (vec![0f32; kv.len()], vec![0f32; vv.len()]);
        for (task, [tq, tk, tv]) in per_task.iter().enumerate() {
            let (b, h) = (task / d.heads, task % d.heads);
            let kh = d.kv_head(h);
            for t in 0..d.seq {
                let row = t * d.dim..(t + 1) * d.dim;
                let at = d.at(b, t, d.heads, h);
                dq[at..at + d.dim].copy_from_slice(&tq[row.clone()]);
                let at = d.at(b, t, d.kv_heads, kh);
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
