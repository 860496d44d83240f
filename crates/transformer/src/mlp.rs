//! The gated feed-forward block: `down(silu(gate(x)) * up(x))`.

use candle_core::{CpuStorage, DType, Layout, Shape, Tensor};
use kernels::WeightSource;

use crate::config::Config;
use crate::linear::Linear;
use crate::Result;

#[derive(Debug, Clone)]
pub struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    /// The projections under `prefix` (`model.layers.{i}.mlp`).
    pub fn load(w: &dyn WeightSource, prefix: &str, cfg: &Config) -> Result<Self> {
        let (d, i, bias) = (cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias);
        let linear = |n: &str, shape| Linear::load(w, &format!("{prefix}.{n}"), shape, bias);
        Ok(Self {
            gate: linear("gate_proj", (d, i))?,
            up: linear("up_proj", (d, i))?,
            down: linear("down_proj", (i, d))?,
        })
    }

    /// The projections, for byte counts.
    pub fn linears(&self) -> [&Linear; 3] {
        [&self.gate, &self.up, &self.down]
    }

    /// # Shapes
    /// `x`: `(N, hidden)` -> `(N, hidden)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate.forward(x)?;
        let up = self.up.forward(x)?;
        self.down.forward(&swiglu(&gate, &up)?)
    }
}

/// `silu(gate) * up`, fused into one pass on the CPU for f32.
fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.device().is_cpu() && gate.dtype() == DType::F32 {
        Ok(gate.apply_op2_no_bwd(up, &SwiGlu)?)
    } else {
        Ok((candle_nn::ops::silu(gate)? * up)?)
    }
}

struct SwiGlu;

impl candle_core::CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(g), CpuStorage::F32(u)) = (gs, us) else {
            candle_core::bail!("swiglu: f32 only")
        };
        let (Some((g0, g1)), Some((u0, u1))) = (gl.contiguous_offsets(), ul.contiguous_offsets())
        else {
            candle_core::bail!("swiglu: inputs must be contiguous")
        };
        if gl.shape() != ul.shape() {
            candle_core::bail!(
                "swiglu: shapes {:?} and {:?} differ",
                gl.shape(),
                ul.shape()
            )
        }
        let mut out = vec![0f32; g1 - g0];
        crate::simd::swiglu(&g[g0..g1], &u[u0..u1], &mut out);
        Ok((CpuStorage::F32(out), gl.shape().clone()))
    }
}
