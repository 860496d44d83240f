//! Fused element-wise CPU kernels, as candle custom ops.
//!
//! candle runs every element-wise op as its own pass with its own allocation. Between
//! the matrix products of a block that adds up: on the 2-core reference machine one
//! `[512, 768]` add takes about 1 ms, an eighth of a `[512, 768] x [768, 768]` matmul.
//! The steps here (layer norm, token shift, in-place residual add, squared ReLU) each
//! run in one pass, in parallel over rows once a tensor is large enough to pay for it.
//! They implement only `cpu_fwd`; on other devices candle reports the op as missing.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, InplaceOp1, InplaceOp2, Layout, Result, Shape, Tensor,
};
use kernels::{dot, sum};
use rayon::prelude::*;

/// Below this many elements a pass runs on the calling thread: a decode step's
/// vectors are too small to amortise a rayon fork-join.
const PARALLEL_MIN: usize = 1 << 15;

/// The f32 data a contiguous layout describes.
pub(crate) fn f32_data<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expected f32 input, got {:?}", storage.dtype())
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

pub(crate) fn f32_data_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a mut [f32]> {
    let dtype = storage.dtype();
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expected f32 input, got {dtype:?}")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

/// Runs `f(row_index, row)` over the `row`-sized chunks of `out`, in parallel when
/// `out` is large.
pub(crate) fn for_each_row(out: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(row)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    } else {
        out.chunks_mut(row).enumerate().for_each(|(i, r)| f(i, r));
    }
}

/// Layer norm over the last dimension with a two-pass variance, like PyTorch's.
///
/// candle-nn's `layer_norm` takes the variance as `E[x²] - E[x]²`, which loses digits
/// when the residual stream's mean is large against its spread (trained RWKV models
/// reach that in deep layers).
///
/// # Shapes
/// `(x [.., C], weight [C], bias [C]) -> [.., C]`
pub(crate) struct LayerNorm {
    pub eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "rwkv-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(s1, l1, self.name())?;
        let (w, b) = (
            f32_data(s2, l2, self.name())?,
            f32_data(s3, l3, self.name())?,
        );
        let c = w.len();
        if b.len() != c || l1.dims().last() != Some(&c) {
            bail!(
                "{}: x {:?}, weight {c}, bias {}",
                self.name(),
                l1.dims(),
                b.len()
            )
        }
        let mut out = vec![0f32; x.len()];
        for_each_row(&mut out, c, |i, row| {
            let xs = &x[i * c..(i + 1) * c];
            let mean = sum(xs) / c as f32;
            for (o, &v) in row.iter_mut().zip(xs) {
                *o = v - mean;
            }
            let var = dot(row, row) / c as f32;
            let inv_std = 1.0 / (var + self.eps).sqrt();
            for ((o, &w), &b) in row.iter_mut().zip(w).zip(b) {
                *o = *o * inv_std * w + b;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// RWKV's token shift and lerp: for each of M coefficient vectors `mu`,
/// `x_t + (x_{t-1} - x_t) * mu`, with `x_{-1}` taken from `prev` (the previous call's
/// last position).
///
/// # Shapes
/// `(x [B*T, C], prev [B, C]) -> [M, B*T, C]`, `mix` holds M rows of C.
pub(crate) struct ShiftMix<'a> {
    pub mix: &'a [f32],
    pub batch: usize,
}

impl CustomOp2 for ShiftMix<'_> {
    fn name(&self) -> &'static str {
        "rwkv-shift-mix"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, prev) = (
            f32_data(s1, l1, self.name())?,
            f32_data(s2, l2, self.name())?,
        );
        let (rows, c) = l1.shape().dims2()?;
        if c == 0 || !self.mix.len().is_multiple_of(c) || prev.len() != self.batch * c {
            bail!(
                "{}: x {:?}, prev {:?}, {} mix values",
                self.name(),
                l1.dims(),
                l2.dims(),
                self.mix.len()
            )
        }
        if self.batch == 0 || rows % self.batch != 0 {
            bail!(
                "{}: {rows} rows do not split into batch {}",
                self.name(),
                self.batch
            )
        }
        let (m, seq) = (self.mix.len() / c, rows / self.batch);
        let mut out = vec![0f32; m * rows * c];
        for_each_row(&mut out, c, |i, row| {
            let (k, r) = (i / rows, i % rows);
            let cur = &x[r * c..(r + 1) * c];
            let before = if r % seq == 0 {
                let b = r / seq;
                &prev[b * c..(b + 1) * c]
            } else {
                &x[(r - 1) * c..r * c]
            };
            let mu = &self.mix[k * c..(k + 1) * c];
            for (((o, &x), &p), &mu) in row.iter_mut().zip(cur).zip(before).zip(mu) {
                *o = x + (p - x) * mu;
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((m, rows, c))))
    }
}

/// `dst += src`, in place (the residual stream).
pub(crate) struct AddAssign;

impl InplaceOp2 for AddAssign {
    fn name(&self) -> &'static str {
        "rwkv-add-assign"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let src = f32_data(s2, l2, self.name())?;
        let dst = f32_data_mut(s1, l1, self.name())?;
        if dst.len() != src.len() {
            bail!("{}: {:?} += {:?}", self.name(), l1.dims(), l2.dims())
        }
        for_each_row(dst, PARALLEL_MIN / 2, |i, row| {
            let s = &src[i * (PARALLEL_MIN / 2)..];
            for (d, &s) in row.iter_mut().zip(s) {
                *d += s;
            }
        });
        Ok(())
    }
}

/// `x = relu(x)^2`, in place (the channel mix's activation).
pub(crate) struct ReluSquare;

impl InplaceOp1 for ReluSquare {
    fn name(&self) -> &'static str {
        "rwkv-relu-square"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let x = f32_data_mut(storage, layout, self.name())?;
        for_each_row(x, PARALLEL_MIN / 2, |_, row| {
            for v in row {
                let r = v.max(0.0);
                *v = r * r;
            }
        });
        Ok(())
    }
}

/// Layer norm of the last dimension (eps 1e-5, as `F.layer_norm`'s default).
///
/// # Shapes
/// `x [.., C]`, `weight [C]`, `bias [C]` -> `[.., C]`
pub(crate) fn layer_norm(x: &Tensor, (weight, bias): &(Tensor, Tensor)) -> Result<Tensor> {
    x.apply_op3_no_bwd(weight, bias, &LayerNorm { eps: 1e-5 })
}

/// The last position of each sequence, copied so that it does not keep `x` alive.
///
/// # Shapes
/// `x [B*T, C]` -> `[B, C]`
pub(crate) fn last_positions(x: &Tensor, batch: usize) -> Result<Tensor> {
    let (rows, c) = x.dims2()?;
    let seq = rows / batch;
    x.reshape((batch, seq, c))?
        .narrow(1, seq - 1, 1)?
        .reshape((batch, c))?
        .force_contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn layer_norm_matches_the_definition_with_a_large_mean() {
        let dev = Device::Cpu;
        let c = 40;
        let xs: Vec<f32> = (0..3 * c)
            .map(|i| 1000.0 + ((i * 37) % 11) as f32 * 0.01)
            .collect();
        let w: Vec<f32> = (0..c).map(|i| 1.0 + i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..c).map(|i| i as f32 * -0.05).collect();
        let x = Tensor::from_vec(xs.clone(), (3, c), &dev).unwrap();
        let wt = Tensor::new(w.as_slice(), &dev).unwrap();
        let bt = Tensor::new(b.as_slice(), &dev).unwrap();
        let out = x
            .apply_op3_no_bwd(&wt, &bt, &LayerNorm { eps: 1e-5 })
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for r in 0..3 {
            let row: Vec<f64> = xs[r * c..(r + 1) * c].iter().map(|&v| v as f64).collect();
            let mean = row.iter().sum::<f64>() / c as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
            for j in 0..c {
                let want = (row[j] - mean) / (var + 1e-5).sqrt() * w[j] as f64 + b[j] as f64;
                // Inputs near 1000 carry f32 rounding of 6e-5 against a spread of 0.03,
                // times weights up to 4.9: errors up to ~1e-2. The one-pass variance
                // E[x²] - E[x]² loses everything here (errors of order 1).
                let d = (out[r * c + j] as f64 - want).abs();
                assert!(d < 2e-2, "{r},{j}: {d}");
            }
        }
    }

    #[test]
    fn shift_mix_takes_the_previous_token_per_batch_row() {
        let dev = Device::Cpu;
        // B = 2, T = 2, C = 2; prev rows are 100 and 200.
        let x = Tensor::new(&[[1f32, 2.], [3., 4.], [5., 6.], [7., 8.]], &dev).unwrap();
        let prev = Tensor::new(&[[100f32, 100.], [200., 200.]], &dev).unwrap();
        let mix = [0f32, 0., 1., 0.5];
        let out = x
            .apply_op2_no_bwd(
                &prev,
                &ShiftMix {
                    mix: &mix,
                    batch: 2,
                },
            )
            .unwrap();
        assert_eq!(out.dims(), &[2, 4, 2]);
        let out = out.to_vec3::<f32>().unwrap();
        assert_eq!(
            out[0],
            vec![vec![1., 2.], vec![3., 4.], vec![5., 6.], vec![7., 8.]]
        );
        assert_eq!(
            out[1],
            vec![
                vec![100., 51.],
                vec![1., 3.],
                vec![200., 103.],
                vec![5., 7.]
            ]
        );
    }

    #[test]
    fn in_place_ops() {
        let dev = Device::Cpu;
        let n = PARALLEL_MIN * 2 + 3;
        let a: Vec<f32> = (0..n).map(|i| i as f32 - 10.0).collect();
        let x = Tensor::new(a.as_slice(), &dev).unwrap();
        x.inplace_op2(&x.ones_like().unwrap(), &AddAssign).unwrap();
        x.inplace_op1(&ReluSquare).unwrap();
        let got = x.to_vec1::<f32>().unwrap();
        for (i, g) in got.iter().enumerate() {
            let want = (i as f32 - 9.0).max(0.0).powi(2);
            assert_eq!(*g, want, "{i}");
        }
    }
}
