//! Next-token cross-entropy fused with the output head, as Liger's fused linear
//! cross-entropy does: the logits are made a chunk of rows at a time and never held
//! whole. At 8192 tokens and a 65536-word vocabulary the logits alone are 2 GB, and
//! autograd's softmax keeps several tensors of that size; here one chunk's worth
//! lives at a time. The forward computes the gradients too (the loss is the last op,
//! so its upstream gradient is a scalar) and the backward only scales them.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::{Error, Result};

/// Rows of logits made at once: 1024 x 65536 x 4 bytes = 256 MB.
const CHUNK: usize = 1024;

struct LinearCrossEntropy {
    /// `d loss / d hidden` and `d loss / d head`, made by the forward.
    grads: Mutex<Option<(Tensor, Tensor)>>,
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => Err(candle_core::Error::Msg(
            "linear cross-entropy takes contiguous f32 inputs".into(),
        )),
    }
}

impl CustomOp3 for LinearCrossEntropy {
    fn name(&self) -> &'static str {
        "linear-cross-entropy"
    }

    /// `hidden [N, C]`, `head [V, C]`, `targets [N, 2]` (target id, weight).
    fn cpu_fwd(
        &self,
        hs: &CpuStorage,
        hl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c) = hl.shape().dims2()?;
        let (v, c2) = wl.shape().dims2()?;
        if c != c2 || tl.shape().dims2()? != (n, 2) {
            return Err(candle_core::Error::Msg(format!(
                "linear cross-entropy: hidden {:?}, head {:?}, targets {:?}",
                hl.shape(),
                wl.shape(),
                tl.shape()
            )));
        }
        let dev = Device::Cpu;
        let hidden = Tensor::from_slice(slice(hs, hl)?, (n, c), &dev)?;
        let head = Tensor::from_slice(slice(ws, wl)?, (v, c), &dev)?;
        let tw = slice(ts, tl)?;
        let total: f64 = tw.chunks_exact(2).map(|p| p[1] as f64).sum();
        let mut loss = 0f64;
        let mut d_hidden = Vec::with_capacity(n);
        let mut d_head = Tensor::zeros((v, c), DType::F32, &dev)?;
        let head_t = head.t()?;
        for start in (0..n).step_by(CHUNK) {
            let len = CHUNK.min(n - start);
            let h = hidden.narrow(0, start, len)?;
            let mut z = h.matmul(&head_t)?.flatten_all()?.to_vec1::<f32>()?;
            let rows = &tw[2 * start..2 * (start + len)];
            // Each row becomes its gradient: (softmax - onehot) * weight / total.
            let nll: f64 = z
                .par_chunks_mut(v)
                .zip(rows.par_chunks(2))
                .map(|(row, tw)| {
                    let (target, weight) = (tw[0] as usize, tw[1] as f64);
                    let picked = row[target] as f64;
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    // One f32 exponential per logit (the SIMD one of the inference
                    // kernels), summed in f64.
                    let mut sum = 0f64;
                    for x in row.iter_mut() {
                        *x = kernels::exp(*x - max);
                        sum += *x as f64;
                    }
                    let lse = max as f64 + sum.ln();
                    let scale = (weight / total / sum) as f32;
                    row.iter_mut().for_each(|x| *x *= scale);
                    row[target] -= (weight / total) as f32;
                    weight * (lse - picked)
                })
                .sum();
            loss += nll;
            let dz = Tensor::from_vec(z, (len, v), &dev)?;
            d_hidden.push(dz.matmul(&head)?);
            d_head = (d_head + dz.t()?.matmul(&h)?)?;
        }
        let d_hidden = Tensor::cat(&d_hidden, 0)?;
        *self.grads.lock().expect("not poisoned") = Some((d_hidden, d_head));
        Ok((
            CpuStorage::F32(vec![(loss / total) as f32]),
            Shape::from(()),
        ))
    }

    fn bwd(
        &self,
        _hidden: &Tensor,
        _head: &Tensor,
        _targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let guard = self.grads.lock().expect("not poisoned");
        let (dh, dw) = guard.as_ref().ok_or_else(|| {
            candle_core::Error::Msg("linear cross-entropy: backward before forward".into())
        })?;
        Ok((
            Some(dh.broadcast_mul(grad)?),
            Some(dw.broadcast_mul(grad)?),
            None,
        ))
    }
}

/// Mean cross-entropy of `hidden (B, T, C) @ head (V, C)^T` at positions `0..T-1`
/// against `tokens (B, T)` at `1..T`; with `weights (B, T-1)` (1 where a target
/// counts, 0 where it does not), the mean over the counted targets. A scalar,
/// differentiable in `hidden` and `head`.
pub fn linear_next_token(
    hidden: &Tensor,
    head: &Tensor,
    tokens: &Tensor,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    let (batch, seq, width) = hidden.dims3()?;
    let (vocab, _) = head.dims2()?;
    if seq < 2 {
        return Err(Error::Unsupported(format!(
            "a loss needs at least 2 tokens per sequence, got {seq}"
        )));
    }
    let rows = batch * (seq - 1);
    let h = hidden
        .narrow(1, 0, seq - 1)?
        .reshape((rows, width))?
        .contiguous()?;
    let targets = tokens
        .narrow(1, 1, seq - 1)?
        .flatten_all()?
        .to_dtype(DType::U32)?;
    let largest = targets.max(0)?.to_scalar::<u32>()? as usize;
    if largest >= vocab {
        return Err(Error::Unsupported(format!(
            "target token {largest} for a vocabulary of {vocab}"
        )));
    }
    let weights = match weights {
        Some(w) => w.flatten_all()?.to_dtype(DType::F32)?,
        None => Tensor::ones(rows, DType::F32, hidden.device())?,
    };
    if weights.sum_all()?.to_scalar::<f32>()? <= 0.0 {
        return Err(Error::Unsupported(
            "the loss weights count no target".into(),
        ));
    }
    let mut tw = Tensor::stack(&[targets.to_dtype(DType::F32)?, weights], 1)?;
    let mut h = h;
    // A task's loss counts only its answers (a few rows in a hundred): the rows of
    // weight zero contribute nothing, so they are not multiplied by the head at all.
    let kept: Vec<u32> = tw
        .narrow(1, 1, 1)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .enumerate()
        .filter(|(_, &w)| w != 0.0)
        .map(|(i, _)| i as u32)
        .collect();
    if kept.len() < rows {
        let index = Tensor::new(kept.as_slice(), hidden.device())?;
        h = h.index_select(&index, 0)?;
        tw = tw.index_select(&index, 0)?;
    }
    let op = LinearCrossEntropy {
        grads: Mutex::new(None),
    };
    Ok(h.apply_op3(&head.contiguous()?, &tw, op)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn lcg(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
            })
            .collect()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Loss and both gradients equal autograd through the plain logits, with and
    /// without weights, over more rows than one chunk.
    #[test]
    fn matches_autograd_through_the_logits() {
        let dev = Device::Cpu;
        let (b, t, c, v) = (3, 400, 16, 37);
        let hidden = Var::from_vec(lcg(b * t * c, 1, 2.0), (b, t, c), &dev).unwrap();
        let head = Var::from_vec(lcg(v * c, 2, 2.0), (v, c), &dev).unwrap();
        let ids: Vec<u32> = lcg(b * t, 3, 1.0)
            .iter()
            .map(|x| ((x + 0.5) * v as f32) as u32 % v as u32)
            .collect();
        let tokens = Tensor::from_vec(ids, (b, t), &dev).unwrap();
        let mask: Vec<f32> = (0..b * (t - 1))
            .map(|i| (i % 3 == 0) as u8 as f32)
            .collect();
        let mask = Tensor::from_vec(mask, (b, t - 1), &dev).unwrap();
        for weights in [None, Some(&mask)] {
            let fused =
                linear_next_token(hidden.as_tensor(), head.as_tensor(), &tokens, weights).unwrap();
            let logits = hidden
                .as_tensor()
                .broadcast_matmul(&head.as_tensor().t().unwrap())
                .unwrap();
            let plain = super::super::loss::next_token(&logits, &tokens, weights).unwrap();
            let (lf, lp) = (
                fused.to_scalar::<f32>().unwrap(),
                plain.to_scalar::<f32>().unwrap(),
            );
            assert!((lf - lp).abs() < 1e-5 * lp.abs().max(1.0), "{lf} vs {lp}");
            let (gf, gp) = (fused.backward().unwrap(), plain.backward().unwrap());
            for var in [&hidden, &head] {
                let (a, b) = (
                    gf.get(var.as_tensor()).unwrap(),
                    gp.get(var.as_tensor()).unwrap(),
                );
                let d = max_abs_diff(a, b);
                assert!(d < 1e-5, "gradient differs by {d}");
            }
        }
    }
}
