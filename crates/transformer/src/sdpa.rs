//! Causal scaled dot-product attention of new queries over the KV cache.
//!
//! Two implementations of the same function:
//! - a fused CPU kernel for f32 queries that reads f32 cache buffers in place (an f16 or
//!   bf16 cache is widened row block by row block into scratch): work items are
//!   (sequence, kv head, block of queries) run in parallel with rayon; each computes the
//!   block's scores against the keys it may see with one matrix product, a vectorised
//!   masked softmax, and one product with the values. Scratch is `block x kv_len` per
//!   thread, so memory grows with the chunk times the context, never `T^2`, and the
//!   query heads of a GQA group share one pass over their keys;
//! - a portable path from candle tensor ops (other dtypes, other devices), which chunks
//!   queries the same way and multiplies by views of the cache (no copy of it).

use std::borrow::Cow;

use candle_core::{CpuStorage, DType, Layout, Shape, Tensor};
use half::{bf16, f16};
use kernels::Half;
use rayon::prelude::*;

use crate::simd::softmax_prefix;
use crate::Result;

/// Rows (query positions x heads of one group) per work item of the fused kernel.
const KERNEL_ROWS: usize = 64;

/// Scores (rows x keys) per chunk of the tensor-op path.
const TENSOR_PATH_SCORES: usize = 1 << 24;

/// Attention of the `Tq` newest positions over the first `kv_len` cached positions.
///
/// Query `i` sits at position `kv_len - Tq + i` and sees keys `0 ..= kv_len - Tq + i`.
/// Query head `j` reads kv head `j / (Hq / Hkv)`. Scores are scaled by
/// `1 / sqrt(head_dim)`.
///
/// # Shapes
/// `q`: `(B, Tq, Hq, hd)` contiguous; `k`, `v`: `(B, Hkv, capacity, hd)` with unit
/// stride on the last dim (rows `..kv_len` are read); returns `(B, Tq, Hq, hd)`.
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, kv_len: usize) -> Result<Tensor> {
    check_shapes(q, k, v, kv_len)?;
    let cache_ok = matches!(k.dtype(), DType::F32 | DType::F16 | DType::BF16);
    if q.device().is_cpu() && q.dtype() == DType::F32 && cache_ok {
        let op = FusedAttention {
            kv_len,
            scale: 1.0 / (q.dim(3)? as f32).sqrt(),
        };
        Ok(q.apply_op3_no_bwd(k, v, &op)?)
    } else {
        causal_attention_tensor_ops(q, k, v, kv_len)
    }
}

fn check_shapes(q: &Tensor, k: &Tensor, v: &Tensor, kv_len: usize) -> Result<()> {
    let (b, tq, hq, hd) = q.dims4()?;
    let (kb, hkv, capacity, khd) = k.dims4()?;
    let consistent = tq <= kv_len
        && kv_len <= capacity
        && hkv > 0
        && hq.is_multiple_of(hkv)
        && hd > 0
        && (kb, khd) == (b, hd)
        && v.dims() == k.dims();
    if consistent {
        return Ok(());
    }
    Err(crate::Error::Unsupported(format!(
        "attention of queries {:?} over {kv_len} positions of caches {:?} / {:?}: \
         inconsistent shapes",
        q.dims(),
        k.dims(),
        v.dims()
    )))
}

/// The portable path of [`causal_attention`] (same contract).
pub fn causal_attention_tensor_ops(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    kv_len: usize,
) -> Result<Tensor> {
    check_shapes(q, k, v, kv_len)?;
    let (b, tq, hq, hd) = q.dims4()?;
    let hkv = k.dim(1)?;
    let rep = hq / hkv;
    let past = kv_len - tq;
    let scale = 1.0 / (hd as f64).sqrt();
    // (B, Hkv, rep, Tq, hd): the heads of a group become rows of one product.
    let q = q.reshape((b, tq, hkv, rep, hd))?.permute((0, 2, 3, 1, 4))?;
    let block = (TENSOR_PATH_SCORES / (hq * kv_len).max(1)).clamp(1, tq.max(1));
    let mut outs = Vec::with_capacity(tq.div_ceil(block));
    for start in (0..tq).step_by(block) {
        let n = block.min(tq - start);
        let kv_end = past + start + n;
        let qc = q
            .narrow(3, start, n)?
            .contiguous()?
            .reshape((b, hkv, rep * n, hd))?;
        let kc = k.narrow(2, 0, kv_end)?.to_dtype(q.dtype())?;
        let vc = v.narrow(2, 0, kv_end)?.to_dtype(q.dtype())?;
        let scores = (qc.matmul(&kc.t()?)? * scale)?.reshape((b, hkv, rep, n, kv_end))?;
        let mask: Vec<f32> = (0..n)
            .flat_map(|i| {
                let visible = past + start + i + 1;
                (0..kv_end).map(move |j| if j < visible { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (n, kv_end), q.device())?.to_dtype(q.dtype())?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)?;
        let out = probs
            .reshape((b, hkv, rep * n, kv_end))?
            .matmul(&vc)?
            .reshape((b, hkv, rep, n, hd))?;
        outs.push(out);
    }
    let out = Tensor::cat(&outs, 3)?;
    Ok(out
        .permute((0, 3, 1, 2, 4))?
        .contiguous()?
        .reshape((b, tq, hq, hd))?)
}

/// The fused CPU f32 kernel as a candle custom op over `(q, k cache, v cache)`.
struct FusedAttention {
    kv_len: usize,
    scale: f32,
}

/// Strides of a `(B, H, rows, hd)` buffer with unit stride on `hd`.
#[derive(Clone, Copy)]
struct Strides {
    offset: usize,
    batch: usize,
    head: usize,
    row: usize,
}

impl Strides {
    fn of(layout: &Layout) -> candle_core::Result<Self> {
        let s = layout.stride();
        if s.len() != 4 || s[3] != 1 {
            candle_core::bail!("attention: cache buffers need unit stride on head_dim, got {s:?}")
        }
        Ok(Self {
            offset: layout.start_offset(),
            batch: s[0],
            head: s[1],
            row: s[2],
        })
    }
}

impl candle_core::CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
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
        let CpuStorage::F32(q) = qs else {
            candle_core::bail!("attention: the fused kernel takes f32 queries only")
        };
        let (k, v) = (KvBuf::of(ks)?, KvBuf::of(vs)?);
        let Some((q0, q1)) = ql.contiguous_offsets() else {
            candle_core::bail!("attention: queries must be contiguous")
        };
        let (b, tq, hq, hd) = ql.shape().dims4()?;
        let hkv = kl.shape().dims()[1];
        let rep = hq / hkv;
        let ctx = Context {
            q: &q[q0..q1],
            k,
            v,
            k_strides: Strides::of(kl)?,
            v_strides: Strides::of(vl)?,
            tq,
            hq,
            hd,
            rep,
            past: self.kv_len - tq,
            scale: self.scale,
        };
        let block = (KERNEL_ROWS / rep).max(1);
        let items: Vec<Item> = (0..b)
            .flat_map(|b| {
                (0..hkv).flat_map(move |g| {
                    (0..tq).step_by(block).map(move |t0| Item {
                        b,
                        g,
                        t0,
                        nq: block.min(tq - t0),
                    })
                })
            })
            .collect();
        let results: Vec<Vec<f32>> = items.par_iter().map(|&it| ctx.attend(it)).collect();
        // Scatter each item's rows (position-major, then head) into (B, Tq, Hq, hd).
        let mut out = vec![0f32; b * tq * hq * hd];
        for (it, rows) in items.iter().zip(&results) {
            for (i, row) in rows.chunks_exact(hd).enumerate() {
                let (t, r) = (it.t0 + i / rep, i % rep);
                let at = ((it.b * tq + t) * hq + it.g * rep + r) * hd;
                out[at..at + hd].copy_from_slice(row);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((b, tq, hq, hd))))
    }
}

/// A whole cache buffer as it is stored.
#[derive(Clone, Copy)]
enum KvBuf<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    Bf16(&'a [bf16]),
}

impl<'a> KvBuf<'a> {
    fn of(s: &'a CpuStorage) -> candle_core::Result<Self> {
        Ok(match s {
            CpuStorage::F32(b) => Self::F32(b),
            CpuStorage::F16(b) => Self::F16(b),
            CpuStorage::BF16(b) => Self::Bf16(b),
            _ => candle_core::bail!("attention: a KV cache is f32, f16 or bf16"),
        })
    }

    /// `rows` rows of `hd` values, `row` apart from `start`, as f32 with their row
    /// stride: f32 in place, 16 bits widened into a packed copy.
    fn rows_f32(self, start: usize, row: usize, rows: usize, hd: usize) -> (Cow<'a, [f32]>, usize) {
        let end = start + (rows - 1) * row + hd;
        match self {
            Self::F32(b) => (Cow::Borrowed(&b[start..end]), row),
            Self::F16(b) => (Cow::Owned(widen_rows(&b[start..end], row, rows, hd)), hd),
            Self::Bf16(b) => (Cow::Owned(widen_rows(&b[start..end], row, rows, hd)), hd),
        }
    }
}

fn widen_rows<H: Half>(src: &[H], row: usize, rows: usize, hd: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * hd];
    for (r, dst) in out.chunks_exact_mut(hd).enumerate() {
        for (d, s) in dst.iter_mut().zip(&src[r * row..r * row + hd]) {
            *d = s.widen();
        }
    }
    out
}

/// Everything a work item reads.
struct Context<'a> {
    /// `(B, Tq, Hq, hd)` contiguous.
    q: &'a [f32],
    /// Whole cache buffers, addressed through the strides.
    k: KvBuf<'a>,
    v: KvBuf<'a>,
    k_strides: Strides,
    v_strides: Strides,
    tq: usize,
    hq: usize,
    hd: usize,
    /// Query heads per kv head.
    rep: usize,
    /// Position of the first query.
    past: usize,
    scale: f32,
}

/// Queries `t0 .. t0 + nq` of every head in kv group `g` of sequence `b`.
#[derive(Clone, Copy)]
struct Item {
    b: usize,
    g: usize,
    t0: usize,
    nq: usize,
}

impl<'a> Context<'a> {
    /// The rows of `K` (or `V`) of one sequence and kv head that positions `..kv_end`
    /// use, as f32, with their row stride. Slicing (rather than raw offsets) makes a
    /// layout bug a panic, never an out-of-bounds read by gemm.
    fn rows(
        &self,
        buf: KvBuf<'a>,
        st: Strides,
        it: Item,
        kv_end: usize,
    ) -> (Cow<'a, [f32]>, usize) {
        let start = st.offset + it.b * st.batch + it.g * st.head;
        buf.rows_f32(start, st.row, kv_end, self.hd)
    }

    /// Returns `(nq * rep, hd)` outputs: row `i` is position `t0 + i / rep`, head
    /// `g * rep + i % rep`.
    fn attend(&self, it: Item) -> Vec<f32> {
        let (hd, rep) = (self.hd, self.rep);
        let m = it.nq * rep;
        let kv_end = self.past + it.t0 + it.nq;
        // The heads of a group are adjacent in q, so each position contributes one run.
        let mut qb = Vec::with_capacity(m * hd);
        for t in it.t0..it.t0 + it.nq {
            let at = ((it.b * self.tq + t) * self.hq + it.g * rep) * hd;
            qb.extend_from_slice(&self.q[at..at + rep * hd]);
        }
        let (k, k_row) = self.rows(self.k, self.k_strides, it, kv_end);
        let (v, v_row) = self.rows(self.v, self.v_strides, it, kv_end);
        let mut scores = vec![0f32; m * kv_end];
        // SAFETY: `scores` is (m, kv_end) row-major; `qb` is (m, hd) row-major; `k` holds
        // kv_end rows of hd values `k_row` apart, read as the (hd, kv_end) matrix K^T.
        unsafe {
            gemm::gemm(
                m,
                kv_end,
                hd,
                scores.as_mut_ptr(),
                1,
                kv_end as isize,
                false,
                qb.as_ptr(),
                1,
                hd as isize,
                k.as_ptr(),
                k_row as isize,
                1,
                0.0,
                self.scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (i, row) in scores.chunks_exact_mut(kv_end).enumerate() {
            softmax_prefix(row, self.past + it.t0 + i / rep + 1);
        }
        let mut out = vec![0f32; m * hd];
        // SAFETY: `out` is (m, hd) row-major; `scores` is (m, kv_end) row-major; `v`
        // holds kv_end rows of hd values `v_row` apart.
        unsafe {
            gemm::gemm(
                m,
                hd,
                kv_end,
                out.as_mut_ptr(),
                1,
                hd as isize,
                false,
                scores.as_ptr(),
                1,
                kv_end as isize,
                v.as_ptr(),
                1,
                v_row as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn rand(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
        let data: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    fn max_abs_diff(got: &Tensor, want: &[f64]) -> f64 {
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        got.iter()
            .zip(want)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .fold(0.0, f64::max)
    }

    /// Attention written out with loops in f64, from the definition.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, kv_len: usize) -> Vec<f64> {
        let (b, tq, hq, hd) = q.dims4().unwrap();
        let (_, hkv, cap, _) = k.dims4().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (q, k, v) = (flat(q), flat(k), flat(v));
        let past = kv_len - tq;
        let mut out = vec![0f64; b * tq * hq * hd];
        for bi in 0..b {
            for t in 0..tq {
                for h in 0..hq {
                    let g = h / (hq / hkv);
                    let qr = &q[((bi * tq + t) * hq + h) * hd..][..hd];
                    let krow = |j: usize| ((bi * hkv + g) * cap + j) * hd;
                    let s: Vec<f64> = (0..=past + t)
                        .map(|j| {
                            let kr = &k[krow(j)..][..hd];
                            let dot: f64 =
                                qr.iter().zip(kr).map(|(&a, &b)| a as f64 * b as f64).sum();
                            dot / (hd as f64).sqrt()
                        })
                        .collect();
                    let max = s.iter().copied().fold(f64::MIN, f64::max);
                    let z: f64 = s.iter().map(|x| (x - max).exp()).sum();
                    let o = &mut out[((bi * tq + t) * hq + h) * hd..][..hd];
                    for (j, sj) in s.iter().enumerate() {
                        let p = (sj - max).exp() / z;
                        for (od, &vd) in o.iter_mut().zip(&v[krow(j)..][..hd]) {
                            *od += p * vd as f64;
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn both_paths_match_the_definition_with_gqa_and_history() {
        // (Hq, Hkv, Tq, kv_len, capacity): GQA with a prompt, MQA decode over a long
        // cache, MHA prefill across several kernel blocks, odd group size with history.
        for (hq, hkv, tq, kv_len, cap) in [
            (4, 2, 5, 9, 16),
            (4, 1, 1, 300, 300),
            (2, 2, 130, 130, 200),
            (6, 3, 70, 71, 80),
        ] {
            let hd = 16;
            let q = rand((2, tq, hq, hd), 1);
            let k = rand((2, hkv, cap, hd), 2);
            let v = rand((2, hkv, cap, hd), 3);
            let want = reference(&q, &k, &v, kv_len);
            for (name, got) in [
                ("fused", causal_attention(&q, &k, &v, kv_len).unwrap()),
                (
                    "tensor ops",
                    causal_attention_tensor_ops(&q, &k, &v, kv_len).unwrap(),
                ),
            ] {
                assert_eq!(got.dims4().unwrap(), (2, tq, hq, hd));
                let diff = max_abs_diff(&got, &want);
                // f32 accumulation over at most 300 keys of values in [-2, 2].
                assert!(
                    diff < 1e-5,
                    "{name}: hq {hq} hkv {hkv} tq {tq} kv {kv_len}: {diff}"
                );
            }
        }
    }

    #[test]
    fn a_16_bit_cache_is_read_as_its_widened_values() {
        // Against the definition over the cache's own rounded values: widening is exact,
        // so only f32 accumulation differs.
        for dtype in [DType::F16, DType::BF16] {
            let (hq, hkv, tq, kv_len, cap, hd) = (4, 2, 70, 75, 80, 16);
            let q = rand((1, tq, hq, hd), 4);
            let k = rand((1, hkv, cap, hd), 5).to_dtype(dtype).unwrap();
            let v = rand((1, hkv, cap, hd), 6).to_dtype(dtype).unwrap();
            let want = reference(
                &q,
                &k.to_dtype(DType::F32).unwrap(),
                &v.to_dtype(DType::F32).unwrap(),
                kv_len,
            );
            for (name, got) in [
                ("fused", causal_attention(&q, &k, &v, kv_len).unwrap()),
                (
                    "tensor ops",
                    causal_attention_tensor_ops(&q, &k, &v, kv_len).unwrap(),
                ),
            ] {
                let diff = max_abs_diff(&got, &want);
                assert!(diff < 1e-5, "{name} {dtype:?}: {diff}");
            }
        }
    }

    #[test]
    fn inconsistent_shapes_are_errors() {
        let q = rand((1, 4, 2, 8), 1);
        let k = rand((1, 2, 8, 8), 2);
        // More queries than positions, more positions than capacity, 2 heads over 3.
        for (q, k, kv_len) in [
            (&q, &k, 3),
            (&q, &k, 9),
            (&rand((1, 4, 2, 8), 1), &rand((1, 3, 8, 8), 2), 4),
        ] {
            assert!(causal_attention(q, k, k, kv_len).is_err());
            assert!(causal_attention_tensor_ops(q, k, k, kv_len).is_err());
        }
        assert!(causal_attention(&q, &k, &k, 4).is_ok());
    }
}
