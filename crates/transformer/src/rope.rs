//! Rotary position embeddings ([RoFormer](https://arxiv.org/abs/2104.09864)) in
//! Hugging Face's rotate-half (non-interleaved) convention, with optional Llama 3
//! frequency scaling.
//!
//! Tables are computed per call for the positions at hand, so there is no maximum
//! position and nothing grows with the context.

use candle_core::{DType, Device, Tensor};

use crate::config::{Config, Llama3RopeScaling};
use crate::Result;

/// Inverse frequencies of one head, `head_dim / 2` of them.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

/// `cos` and `sin` for a run of positions.
#[derive(Debug, Clone)]
pub struct RopeTables {
    /// Shape `(T, head_dim / 2)`, the model dtype.
    pub cos: Tensor,
    /// Shape `(T, head_dim / 2)`, the model dtype.
    pub sin: Tensor,
}

fn llama3(inv_freq: f32, s: &Llama3RopeScaling) -> f32 {
    // transformers' `_compute_llama3_parameters`, element by element.
    let original = s.original_max_position_embeddings as f64;
    let low_wavelen = original / s.low_freq_factor;
    let high_wavelen = original / s.high_freq_factor;
    let freq = inv_freq as f64;
    let wavelen = 2.0 * std::f64::consts::PI / freq;
    let scaled = if wavelen < high_wavelen {
        freq
    } else if wavelen > low_wavelen {
        freq / s.factor
    } else {
        let smooth =
            (original / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        (1.0 - smooth) * freq / s.factor + smooth * freq
    };
    scaled as f32
}

impl Rope {
    pub fn new(cfg: &Config) -> Self {
        let hd = cfg.head_dim;
        // Computed in f32 as transformers does (`base ** (arange(0, d, 2).float() / d)`),
        // so that angles at large positions round the same way.
        let inv_freq = (0..hd / 2)
            .map(|j| {
                let f = 1.0 / (cfg.rope_theta as f32).powf((2 * j) as f32 / hd as f32);
                match &cfg.rope_scaling {
                    Some(s) => llama3(f, s),
                    None => f,
                }
            })
            .collect();
        Self { inv_freq }
    }

    /// Tables for positions `start .. start + len`.
    pub fn tables(
        &self,
        start: usize,
        len: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<RopeTables> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for pos in start..start + len {
            for &f in &self.inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(RopeTables {
            cos: Tensor::from_vec(cos, (len, half), device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, (len, half), device)?.to_dtype(dtype)?,
        })
    }
}

impl RopeTables {
    /// Rotates queries or keys.
    ///
    /// # Shapes
    /// `x`: `(B, T, heads, head_dim)` contiguous -> same shape.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::rotary_emb::rope_thd(x, &self.cos, &self.sin)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_half_convention_matches_the_formula() {
        let mut cfg = Config::tiny();
        cfg.head_dim = 4;
        cfg.rope_theta = 100.0;
        let rope = Rope::new(&cfg);
        let t = rope.tables(3, 1, DType::F32, &Device::Cpu).unwrap();
        let x = Tensor::new(&[[[[1f32, 2., 3., 4.]]]], &Device::Cpu).unwrap();
        let y = t
            .apply(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // inv_freq = [1, 0.1]; q' = q cos + [-x2, x1] sin with halves (1,2) and (3,4).
        let (a0, a1) = (3.0f32, 0.3f32);
        let want = [
            1.0 * a0.cos() - 3.0 * a0.sin(),
            2.0 * a1.cos() - 4.0 * a1.sin(),
            3.0 * a0.cos() + 1.0 * a0.sin(),
            4.0 * a1.cos() + 2.0 * a1.sin(),
        ];
        for (g, w) in y.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{y:?} vs {want:?}");
        }
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let s = Llama3RopeScaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        assert_eq!(llama3(1.0, &s), 1.0);
        let low = 2.0 * std::f32::consts::PI / 10_000.0;
        assert!((llama3(low, &s) - low / 8.0).abs() < 1e-9);
    }
}
