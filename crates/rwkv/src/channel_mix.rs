//! The channel mix (FFN) of an RWKV-7 block: token shift, then
//! `value(relu(key(x + (x_prev - x) * x_k))^2)`.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

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
    key: Tensor,
    value: Tensor,
}

impl ChannelMix {
    /// Builds a channel mix from `vb` (prefix `blocks.{layer}.ffn`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (c, f) = (cfg.width, cfg.ffn);
        Ok(Self {
            x_k: vector(&vb, "x_k", c)?,
            key: vb.get((f, c), "key.weight")?.to_dtype(DType::F32)?,
            value: vb.get((c, f), "value.weight")?.to_dtype(DType::F32)?,
        })
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
