//! The channel mix (FFN) of an RWKV-7 block: token shift, then
//! `value(relu(key(x + (x_prev - x) * x_k))^2)`.

use candle_core::Tensor;
use kernels::{Matrix, WeightSource};

use crate::config::Config;
use crate::gemv::linear;
use crate::ops::{last_positions, ReluSquare, ShiftMix};
use crate::state::LayerState;
use crate::time_mix::vector;
use crate::Result;

pub struct ChannelMix {
    /// Token-shift lerp coefficient, C values.
    x_k: Vec<f32>,
    /// `nn.Linear` weights: key `[F, C]`, value `[C, F]`.
    key: Matrix,
    value: Matrix,
}

impl ChannelMix {
    /// Builds a channel mix from the tensors under `prefix` (`blocks.{layer}.ffn`).
    pub fn new(cfg: &Config, w: &dyn WeightSource, prefix: &str) -> Result<Self> {
        let (c, f) = (cfg.width, cfg.ffn);
        Ok(Self {
            x_k: vector(w, &format!("{prefix}.x_k"), c)?,
            key: w.matrix(&format!("{prefix}.key.weight"), (f, c))?,
            value: w.matrix(&format!("{prefix}.value.weight"), (c, f))?,
        })
    }

    /// Every matrix, for byte counts.
    pub(crate) fn matrices(&self) -> impl Iterator<Item = &Matrix> {
        [&self.key, &self.value].into_iter()
    }

    /// Runs the channel mix on the ln2 output of a chunk, updating its token shift.
    ///
    /// # Shapes
    /// `x [B*T, C]` (rows ordered batch-major) -> `[B*T, C]`, the residual update.
    pub fn forward(&self, x: &Tensor, batch: usize, state: &mut LayerState) -> Result<Tensor> {
        let mixed = x
            .apply_op2_no_bwd(
                &state.ffn_shift,
                &ShiftMix {
                    mix: &self.x_k,
                    batch,
                },
            )?
            .squeeze(0)?;
        state.ffn_shift = last_positions(x, batch)?;
        let hidden = linear(&mixed, &self.key)?;
        hidden.inplace_op1(&ReluSquare)?;
        Ok(linear(&hidden, &self.value)?)
    }
}
