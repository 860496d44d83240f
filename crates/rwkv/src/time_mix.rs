//! The time mix ("attention") of an RWKV-7 block.
//!
//! Token shift and lerp for six inputs, the receptance/key/value projections and four
//! LoRA projections as matrix products over all positions, the fused WKV-7 kernel
//! ([`crate::wkv`]), then the output projection.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use kernels::{Matrix, WeightDtype};

use crate::config::Config;
use crate::gemv::linear;
use crate::ops::{last_positions, ShiftMix};
use crate::state::LayerState;
use crate::wkv::{wkv7, Wkv7, WkvParams};
use crate::{Error, Result};

/// Rows of the shift-mix output, in the order of `MIX_KEYS`.
const MIX_R: usize = 0;
const MIX_K: usize = 1;
const MIX_V: usize = 2;
const MIX_W: usize = 3;
const MIX_A: usize = 4;
const MIX_G: usize = 5;
const MIX_KEYS: [&str; 6] = ["x_r", "x_k", "x_v", "x_w", "x_a", "x_g"];

/// A `[1, 1, C]` parameter as a vector of C floats.
pub(crate) fn vector(vb: &VarBuilder, name: &str, c: usize) -> Result<Vec<f32>> {
    Ok(vb
        .get((1, 1, c), name)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// An `nn.Linear` weight `[out, in]` under `vb`, stored as `dtype`; f32 weights of an
/// f32 checkpoint are used as they are, not copied.
pub(crate) fn matrix(
    vb: &VarBuilder,
    shape: (usize, usize),
    name: &str,
    dtype: WeightDtype,
) -> Result<Matrix> {
    Ok(Matrix::new(&vb.get(shape, name)?, dtype)?)
}

pub struct TimeMix {
    /// Token-shift lerp coefficients, 6 rows of C in `MIX_KEYS` order.
    mix: Vec<f32>,
    /// `nn.Linear` weights `[out, in]`, each `[C, C]`.
    receptance: Matrix,
    key: Matrix,
    value: Matrix,
    output: Matrix,
    /// LoRA pairs, transposed at load to the `nn.Linear` layout (`w1ᵀ [D, C]`,
    /// `w2ᵀ [C, D]`) so that a decode step runs them through the same bandwidth-bound
    /// kernel as every other projection (and no candle matmul at all, whose thread
    /// count lookup re-reads `/proc/cpuinfo` on each call when `RAYON_NUM_THREADS` is
    /// unset).
    decay: (Matrix, Matrix),
    iclr: (Matrix, Matrix),
    gate: (Matrix, Matrix),
    /// The value-residual LoRA; `None` in layer 0, whose value is `v_first`.
    value_residual: Option<(Matrix, Matrix)>,
    params: WkvParams,
    heads: usize,
    head_size: usize,
}

impl TimeMix {
    /// Builds layer `layer`'s time mix from `vb` (prefix `blocks.{layer}.att`), its
    /// matrices stored as `dtype`.
    pub fn new(cfg: &Config, layer: usize, vb: VarBuilder, dtype: WeightDtype) -> Result<Self> {
        let (c, l) = (cfg.width, cfg.lora);
        let get = |shape: (usize, usize), name: &str| -> Result<Tensor> {
            Ok(vb.get(shape, name)?.to_dtype(DType::F32)?)
        };
        let matrix = |shape: (usize, usize), name: &str| matrix(&vb, shape, name, dtype);
        let lora = |name: &str, rank: usize| -> Result<(Matrix, Matrix)> {
            let t = |shape, n: String| -> Result<Matrix> {
                Ok(Matrix::new(&get(shape, &n)?.t()?, dtype)?)
            };
            Ok((
                t((c, rank), format!("{name}1"))?,
                t((rank, c), format!("{name}2"))?,
            ))
        };
        let mix = MIX_KEYS
            .iter()
            .map(|k| vector(&vb, k, c))
            .collect::<Result<Vec<_>>>()?
            .concat();
        let value_residual = (layer > 0).then(|| lora("v", l.value)).transpose()?;
        let params = WkvParams {
            w0: vector(&vb, "w0", c)?,
            a0: vector(&vb, "a0", c)?,
            v0: (layer > 0).then(|| vector(&vb, "v0", c)).transpose()?,
            k_k: vector(&vb, "k_k", c)?,
            k_a: vector(&vb, "k_a", c)?,
            r_k: get((cfg.heads, cfg.head_size), "r_k")?
                .flatten_all()?
                .to_vec1::<f32>()?,
            ln_w: vb.get(c, "ln_x.weight")?.to_dtype(DType::F32)?.to_vec1()?,
            ln_b: vb.get(c, "ln_x.bias")?.to_dtype(DType::F32)?.to_vec1()?,
        };
        Ok(Self {
            mix,
            receptance: matrix((c, c), "receptance.weight")?,
            key: matrix((c, c), "key.weight")?,
            value: matrix((c, c), "value.weight")?,
            output: matrix((c, c), "output.weight")?,
            decay: lora("w", l.decay)?,
            iclr: lora("a", l.iclr)?,
            gate: lora("g", l.gate)?,
            value_residual,
            params,
            heads: cfg.heads,
            head_size: cfg.head_size,
        })
    }

    /// Every matrix, for byte counts.
    pub(crate) fn matrices(&self) -> impl Iterator<Item = &Matrix> {
        let pairs = [Some(&self.decay), Some(&self.iclr), Some(&self.gate)]
            .into_iter()
            .chain([self.value_residual.as_ref()])
            .flatten()
            .flat_map(|(a, b)| [a, b]);
        [&self.receptance, &self.key, &self.value, &self.output]
            .into_iter()
            .chain(pairs)
    }

    /// Runs the time mix on the ln1 output of a chunk, updating the token shift and
    /// WKV state. Layer 0 sets `v_first`; later layers read it.
    ///
    /// # Shapes
    /// `x [B*T, C]` (rows ordered batch-major) -> `[B*T, C]`, the residual update.
    pub fn forward(
        &self,
        x: &Tensor,
        batch: usize,
        state: &mut LayerState,
        v_first: &mut Option<Tensor>,
    ) -> Result<Tensor> {
        let (rows, c) = x.dims2()?;
        let mixed = x.apply_op2_no_bwd(
            &state.att_shift,
            &ShiftMix {
                mix: &self.mix,
                batch,
            },
        )?;
        state.att_shift = last_positions(x, batch)?;
        let input = |row: usize| mixed.get(row);
        let project = |row: usize, w: &Matrix| linear(&input(row)?, w);
        let v = project(MIX_V, &self.value)?;
        let mut slots = vec![
            project(MIX_R, &self.receptance)?,
            project(MIX_K, &self.key)?,
            v.clone(),
            linear(&project(MIX_W, &self.decay.0)?.tanh()?, &self.decay.1)?,
            linear(&project(MIX_A, &self.iclr.0)?, &self.iclr.1)?,
            linear(
                &candle_nn::ops::sigmoid(&project(MIX_G, &self.gate.0)?)?,
                &self.gate.1,
            )?,
        ];
        match &self.value_residual {
            None => *v_first = Some(v),
            Some((v1, v2)) => {
                let first = v_first.as_ref().ok_or_else(|| {
                    Error::Input("time mix of layer >= 1 run before layer 0 (no v_first)".into())
                })?;
                slots.push(linear(&project(MIX_V, v1)?, v2)?);
                slots.push(first.clone());
            }
        }
        // The kernel takes at most three tensors (a candle op's limit), so the per-token
        // inputs travel stacked, in `wkv::slot` order.
        let inputs = Tensor::stack(&slots, 0)?.reshape((slots.len(), batch, rows / batch, c))?;
        // The stacked copy is all the kernel needs; free the originals before it runs.
        drop(slots);
        let y = wkv7(
            &state.wkv,
            &inputs,
            &Wkv7::new(self.heads, self.head_size, &self.params),
        )?;
        Ok(linear(&y.reshape((rows, c))?, &self.output)?)
    }
}
