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
//! Both run a block of `BLOCK` query rows at a time, for every (batch row, head) at
//! once, against the keys up to the block's end, as batched matrix products (candle's
//! gemm): the scores of one block, `BLOCK x T` per head, are the largest buffer. The
//! key/value gradients of the query heads that share a key/value head are summed.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, Device, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use crate::Result;

/// Query rows per block: 256 x 2048 scores x 12 heads x 4 bytes = 25 MB at the 0.1B
/// shape and 2048 tokens.
const BLOCK: usize = 256;

/// `softmax(q kᵀ / sqrt(D) + causal mask) v`.
///
/// # Shapes
/// `q (B, T, H, D)`, `k`, `v` `(B, T, Hkv, D)` with `H` a multiple of `Hkv` ->
/// `(B, T, H, D)`.
pub fn causal_attention_train(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let op = AttentionTrain {
        lse: Mutex::new(None),
    };
    Ok(q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)?)
}

struct AttentionTrain {
    /// `(B, H, T, 1)` log-sum-exp of every query row, from the forward.
    lse: Mutex<Option<Tensor>>,
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

    fn scale(&self) -> f64 {
        1.0 / (self.dim as f64).sqrt()
    }
}

fn tensor(s: &CpuStorage, l: &Layout) -> candle_core::Result<Tensor> {
    let CpuStorage::F32(d) = s else {
        bail!("attention-train: f32 only, got {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Tensor::from_slice(&d[a..b], l.shape(), &Device::Cpu),
        None => bail!("attention-train: inputs must be contiguous"),
    }
}

/// `(B, T, Hx, D)` -> `(B, H, T, D)`, key/value heads repeated for their query heads.
fn heads_first(x: &Tensor, d: &Dims) -> candle_core::Result<Tensor> {
    let x = x.transpose(1, 2)?.contiguous()?;
    let hx = x.dim(1)?;
    if hx == d.heads {
        return Ok(x);
    }
    x.unsqueeze(2)?
        .broadcast_as((d.batch, hx, d.heads / hx, d.seq, d.dim))?
        .reshape((d.batch, d.heads, d.seq, d.dim))
}

/// One block's inputs: its queries, the keys and values up to its end, and the raw
/// scores `q kᵀ` `(B, H, rows, start + rows)` (unscaled, unmasked).
struct Block {
    start: usize,
    rows: usize,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    s: Tensor,
}

fn blocks<'a>(
    q: &'a Tensor,
    k: &'a Tensor,
    v: &'a Tensor,
    d: &'a Dims,
) -> impl Iterator<Item = candle_core::Result<Block>> + 'a {
    (0..d.seq).step_by(BLOCK).map(move |start| {
        let rows = BLOCK.min(d.seq - start);
        let end = start + rows;
        let qb = q.narrow(2, start, rows)?.contiguous()?;
        let (kb, vb) = (k.narrow(2, 0, end)?, v.narrow(2, 0, end)?);
        let s = qb.matmul(&kb.t()?)?;
        Ok(Block {
            start,
            rows,
            q: qb,
            k: kb,
            v: vb,
            s,
        })
    })
}

impl Block {
    fn keys(&self) -> usize {
        self.start + self.rows
    }

    /// Row `i` of the block's `(B·H·rows)` rows sees keys `0..=start + i % rows`.
    fn visible(&self, i: usize) -> usize {
        self.start + i % self.rows + 1
    }

    /// The softmax probabilities `(B, H, rows, keys)` of the forward, and each row's
    /// log-sum-exp `(B, H, rows, 1)`: scale, mask, max, exp and sum in one pass per row,
    /// in parallel over rows.
    fn softmax(&self, scale: f32) -> candle_core::Result<(Tensor, Tensor)> {
        let keys = self.keys();
        let mut p = self.s.flatten_all()?.to_vec1::<f32>()?;
        let lse: Vec<f32> = p
            .par_chunks_mut(keys)
            .enumerate()
            .map(|(i, row)| {
                let (live, dead) = row.split_at_mut(self.visible(i));
                let max = live
                    .iter()
                    .fold(f32::NEG_INFINITY, |m, &x| m.max(x * scale));
                let mut sum = 0f32;
                for x in live.iter_mut() {
                    *x = kernels::exp(*x * scale - max);
                    sum += *x;
                }
                let inv = 1.0 / sum;
                live.iter_mut().for_each(|x| *x *= inv);
                dead.fill(0.0);
                max + sum.ln()
            })
            .collect();
        let shape = self.s.shape().clone();
        let mut lse_shape = shape.dims().to_vec();
        *lse_shape.last_mut().expect("rank 4") = 1;
        Ok((
            Tensor::from_vec(p, shape, &Device::Cpu)?,
            Tensor::from_vec(lse, lse_shape, &Device::Cpu)?,
        ))
    }

    /// The backward's probabilities `P = exp(scale S - lse)` and score gradients
    /// `dS = scale P ∘ (dP - D)`, one pass per row, in parallel over rows.
    fn score_grads(
        &self,
        scale: f32,
        lse: &[f32],
        delta: &[f32],
        dp: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let keys = self.keys();
        let mut p = self.s.flatten_all()?.to_vec1::<f32>()?;
        let mut ds = dp.flatten_all()?.to_vec1::<f32>()?;
        p.par_chunks_mut(keys)
            .zip(ds.par_chunks_mut(keys))
            .enumerate()
            .for_each(|(i, (p, ds))| {
                let n = self.visible(i);
                let (lse, delta) = (lse[i], delta[i]);
                for (x, g) in p[..n].iter_mut().zip(ds[..n].iter_mut()) {
                    *x = kernels::exp(*x * scale - lse);
                    *g = scale * *x * (*g - delta);
                }
                p[n..].fill(0.0);
                ds[n..].fill(0.0);
            });
        let shape = self.s.shape().clone();
        Ok((
            Tensor::from_vec(p, shape.clone(), &Device::Cpu)?,
            Tensor::from_vec(ds, shape, &Device::Cpu)?,
        ))
    }
}

/// The rows `start..start + rows` of a `(B, H, T, 1)` tensor, flattened.
fn row_values(x: &Tensor, b: &Block) -> candle_core::Result<Vec<f32>> {
    x.narrow(2, b.start, b.rows)?.flatten_all()?.to_vec1()
}

/// `(B, H, T, D)` -> `(B, T, Hx, D)`, summing the query heads of each key/value head.
fn heads_back(x: Tensor, d: &Dims, hx: usize) -> candle_core::Result<Tensor> {
    let x = if hx == d.heads {
        x
    } else {
        x.reshape((d.batch, hx, d.heads / hx, d.seq, d.dim))?
            .sum(2)?
    };
    x.transpose(1, 2)?.contiguous()
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
        let q = heads_first(&tensor(qs, ql)?, &d)?;
        let k = heads_first(&tensor(ks, kl)?, &d)?;
        let v = heads_first(&tensor(vs, vl)?, &d)?;
        let (mut out, mut lse) = (Vec::new(), Vec::new());
        for block in blocks(&q, &k, &v, &d) {
            let b = block?;
            let (p, block_lse) = b.softmax(d.scale() as f32)?;
            out.push(p.matmul(&b.v)?);
            lse.push(block_lse);
        }
        *self.lse.lock().map_err(|_| poisoned())? = Some(Tensor::cat(&lse, 2)?);
        let out = Tensor::cat(&out, 2)?.transpose(1, 2)?.contiguous()?;
        Ok((
            CpuStorage::F32(out.flatten_all()?.to_vec1()?),
            ql.shape().clone(),
        ))
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
        let lse = self.lse.lock().map_err(|_| poisoned())?;
        let Some(lse) = lse.as_ref() else {
            bail!("{}: backward without a forward", self.name())
        };
        let (q, k, v) = (
            heads_first(q, &d)?,
            heads_first(k, &d)?,
            heads_first(v, &d)?,
        );
        let d_o = heads_first(grad_res, &d)?;
        let delta = (&d_o * heads_first(res, &d)?)?.sum_keepdim(D::Minus1)?;
        let full = (d.batch, d.heads, d.seq, d.dim);
        let mut dk = Tensor::zeros(full, candle_core::DType::F32, &Device::Cpu)?;
        let mut dv = dk.clone();
        let mut dq = Vec::new();
        for block in blocks(&q, &k, &v, &d) {
            let b = block?;
            let dob = d_o.narrow(2, b.start, b.rows)?.contiguous()?;
            let dp = dob.matmul(&b.v.t()?)?;
            let (p, ds) = b.score_grads(
                d.scale() as f32,
                &row_values(lse, &b)?,
                &row_values(&delta, &b)?,
                &dp,
            )?;
            dq.push(ds.matmul(&b.k)?);
            let tail = d.seq - b.keys();
            dk = (dk + ds.t()?.matmul(&b.q)?.pad_with_zeros(2, 0, tail)?)?;
            dv = (dv + p.t()?.matmul(&dob)?.pad_with_zeros(2, 0, tail)?)?;
        }
        let dq = Tensor::cat(&dq, 2)?.transpose(1, 2)?.contiguous()?;
        Ok((
            Some(dq),
            Some(heads_back(dk, &d, d.kv_heads)?),
            Some(heads_back(dv, &d, d.kv_heads)?),
        ))
    }
}

fn poisoned() -> candle_core::Error {
    candle_core::Error::Msg("attention-train: a previous run panicked".into())
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
