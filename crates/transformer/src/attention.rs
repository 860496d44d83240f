//! Grouped-query self-attention with rotary embeddings over the KV cache.

use candle_core::Tensor;
use kernels::WeightSource;

use crate::config::Config;
use crate::kv_cache::KvCache;
use crate::linear::Linear;
use crate::rope::RopeTables;
use crate::sdpa::causal_attention;
use crate::Result;

#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// The projections under `prefix` (`model.layers.{i}.self_attn`).
    pub fn load(w: &dyn WeightSource, prefix: &str, cfg: &Config) -> Result<Self> {
        let d = cfg.hidden_size;
        let q = cfg.num_attention_heads * cfg.head_dim;
        let kv = cfg.num_key_value_heads * cfg.head_dim;
        let linear = |n: &str, shape, bias| Linear::load(w, &format!("{prefix}.{n}"), shape, bias);
        Ok(Self {
            q_proj: linear("q_proj", (d, q), cfg.qkv_bias)?,
            k_proj: linear("k_proj", (d, kv), cfg.qkv_bias)?,
            v_proj: linear("v_proj", (d, kv), cfg.qkv_bias)?,
            o_proj: linear("o_proj", (q, d), cfg.o_bias)?,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
        })
    }

    /// The projections, for byte counts.
    pub fn linears(&self) -> [&Linear; 4] {
        [&self.q_proj, &self.k_proj, &self.v_proj, &self.o_proj]
    }

    /// Attends `T` new positions (after the `cache.len()` held ones) and writes their
    /// keys and values into `cache` at `layer`.
    ///
    /// # Shapes
    /// `x`: `(B, T, hidden)` -> `(B, T, hidden)`; `rope` holds `T` positions.
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        cache: &KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let (h, hkv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let x = x.reshape((b * t, d))?;
        // (B, T, heads, hd) is what the projections produce, so no transpose is needed
        // before rope or attention.
        let q = rope.apply(&self.q_proj.forward(&x)?.reshape((b, t, h, hd))?)?;
        let k = rope.apply(&self.k_proj.forward(&x)?.reshape((b, t, hkv, hd))?)?;
        let v = self.v_proj.forward(&x)?.reshape((b, t, hkv, hd))?;
        let (k_buf, v_buf) = cache.write(layer, &k, &v)?;
        let y = causal_attention(&q, &k_buf, &v_buf, cache.len() + t)?;
        Ok(self
            .o_proj
            .forward(&y.reshape((b * t, h * hd))?)?
            .reshape((b, t, d))?)
    }
}
