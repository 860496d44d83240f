//! The time mix ("attention") of an RWKV-7 block.
//!
//! Token shift and lerp for six inputs, the receptance/key/value projections and four
//! LoRA projections as matrix products over all positions, the fused WKV-7 kernel
//! ([`crate::wkv`]), then the output projection.

use candle_core::{DType, Tensor};
use kernels::{Matrix, WeightSource};

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

/// A parameter of `shape` (`[1, 1, C]` vectors, `r_k`, norms) as a flat vector of
/// floats.
pub(crate) fn floats(w: &dyn WeightSource, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    Ok(w.tensor(name, shape)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// A `[1, 1, C]` parameter as a vector of C floats.
pub(crate) fn vector(w: &dyn WeightSource, name: &str, c: usize) -> Result<Vec<f32>> {
    floats(w, name, &[1, 1, c])
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
    /// Builds layer `layer`'s time mix from the tensors under `prefix`
    /// (`blocks.{layer}.att`).
    pub fn new(cfg: &Config, layer: usize, w: &dyn WeightSource, prefix: &str) -> Result<Self> {
        let (c, l) = (cfg.width, cfg.lora);
        let name = |n: &str| format!("{prefix}.{n}");
        let matrix = |n: &str| -> Result<Matrix> { Ok(w.matrix(&name(n), (c, c))?) };
        let lora = |n: &str, rank: usize| -> Result<(Matrix, Matrix)> {
            Ok((
                w.matrix_t(&name(&format!("{n}1")), (rank, c))?,
                w.matrix_t(&name(&format!("{n}2")), (c, rank))?,
            ))
        };
        let vector = |n: &str| vector(w, &name(n), c);
        let mix = MIX_KEYS
            .iter()
            .map(|k| vector(k))
            .collect::<Result<Vec<_>>>()?
            .concat();
        let value_residual = (layer > 0).then(|| lora("v", l.value)).transpose()?;
        let params = WkvParams {
            w0: vector("w0")?,
            a0: vector("a0")?,
            v0: (layer > 0).then(|| vector("v0")).transpose()?,
            k_k: vector("k_k")?,
            k_a: vector("k_a")?,
            r_k: floats(w, &name("r_k"), &[cfg.heads, cfg.head_size])?,
            ln_w: floats(w, &name("ln_x.weight"), &[c])?,
            ln_b: floats(w, &name("ln_x.bias"), &[c])?,
        };
        Ok(Self {
            mix,
            receptance: matrix("receptance.weight")?,
            key: matrix("key.weight")?,
            value: matrix("value.weight")?,
            output: matrix("output.weight")?,
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
