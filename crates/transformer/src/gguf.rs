//! A Llama from a llama.cpp GGUF file (architecture `llama`), as llama.cpp's converter
//! writes it (`convert_hf_to_gguf.py`, class `LlamaModel`). The config comes from the
//! metadata (`llama.embedding_length`, `llama.attention.head_count_kv`,
//! `llama.rope.freq_base`, …); quantised matrices stay quantised, float ones are dense;
//! the model computes in f32.
//!
//! [`GgufWeights`] serves the Hugging Face names the model asks for and undoes the one
//! transform the converter makes: `LlamaModel.permute` reorders the rows of `q_proj`
//! (per head) and `k_proj` (per kv head) from Hugging Face's rotate-half rope layout,
//! where row `half * hd/2 + i` of a head is the `half` part of pair `i`, to ggml's
//! interleaved pairs, where that row is `2 * i + half`. A row of a ggml tensor is whole
//! blocks, so the inverse permutation is exact for quantised tensors too
//! ([`kernels::gguf::permute_rows`]).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use kernels::gguf::{permute_rows, GgufFile};
use kernels::{Matrix, WeightSource};

use crate::config::Config;
use crate::{Error, Model, Result};

/// An open Llama GGUF file and the config its metadata describes.
pub struct GgufWeights {
    file: GgufFile,
    config: Config,
}

/// For each Hugging Face row of a q or k projection of `heads` heads of `head_dim`, the
/// GGUF row that holds it.
pub(crate) fn unpermuted_rows(heads: usize, head_dim: usize) -> Vec<usize> {
    let half = head_dim / 2;
    (0..heads * head_dim)
        .map(|r| {
            let (h, j) = (r / head_dim, r % head_dim);
            h * head_dim + 2 * (j % half) + j / half
        })
        .collect()
}

impl GgufWeights {
    pub fn open(path: &Path, device: &Device) -> Result<Self> {
        let file = GgufFile::open(path, device)?;
        file.architecture(&["llama"])?;
        let key = |k: &str| file.usize(&format!("llama.{k}"));
        let hidden_size = key("embedding_length")?;
        let heads = key("attention.head_count")?;
        let kv_heads = if file.has("llama.attention.head_count_kv") {
            key("attention.head_count_kv")?
        } else {
            heads
        };
        let head_dim = if file.has("llama.attention.key_length") {
            key("attention.key_length")?
        } else {
            hidden_size / heads.max(1)
        };
        let refuse = |m: String| Err(Error::checkpoint(path, m));
        if file.has("llama.rope.dimension_count") && key("rope.dimension_count")? != head_dim {
            return refuse(format!(
                "llama.rope.dimension_count {} is not the head size {head_dim} (partial rotary \
                 embeddings are not supported)",
                key("rope.dimension_count")?
            ));
        }
        if file.contains("rope_freqs.weight") || file.has("llama.rope.scaling.type") {
            return refuse(
                "rope scaling (rope_freqs.weight / llama.rope.scaling.*) is not supported for \
                 GGUF files"
                    .into(),
            );
        }
        let vocab_size = match file.shape("token_embd.weight")? {
            [v, d] if *d == hidden_size => *v,
            s => {
                return refuse(format!(
                    "tensor token_embd.weight has shape {s:?}, expected [vocab, {hidden_size}]"
                ))
            }
        };
        let rope_theta = if file.has("llama.rope.freq_base") {
            file.f64("llama.rope.freq_base")?
        } else {
            10_000.0
        };
        let config = Config {
            vocab_size,
            hidden_size,
            intermediate_size: key("feed_forward_length")?,
            num_hidden_layers: key("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            rms_norm_eps: file.f64("llama.attention.layer_norm_rms_epsilon")?,
            rope_theta,
            rope_scaling: None,
            max_position_embeddings: key("context_length")?,
            tie_word_embeddings: !file.contains("output.weight"),
            qkv_bias: file.contains("blk.0.attn_q.bias"),
            o_bias: file.contains("blk.0.attn_output.bias"),
            mlp_bias: file.contains("blk.0.ffn_gate.bias"),
            checkpoint_dtype: None,
        };
        config.validate()?;
        Ok(Self { file, config })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The model, every matrix stored as the file stores it, computing in f32.
    pub fn model(&self) -> Result<Model> {
        Model::from_weights(&self.config, self)
    }

    /// The GGUF name of a Hugging Face tensor name.
    fn gguf_name(&self, name: &str) -> candle_core::Result<String> {
        gguf_name(name).ok_or_else(|| self.file.error(format!("no GGUF tensor for `{name}`")))
    }

    /// The heads whose rows the converter permuted in tensor `name`, if it did.
    fn permuted_heads(&self, name: &str) -> Option<usize> {
        permuted_heads(&self.config, name)
    }
}

/// The GGUF name of a Hugging Face Llama tensor name, as llama.cpp's converter maps it.
pub(crate) fn gguf_name(name: &str) -> Option<String> {
    let global = match name {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "lm_head.weight" => Some("output.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        _ => None,
    };
    if let Some(g) = global {
        return Some(g.into());
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, suffix) = rest.rsplit_once('.')?;
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{g}.{suffix}"))
}

/// The heads whose rows the converter permutes in the Hugging Face tensor `name`: q
/// and k projections (weights and biases).
pub(crate) fn permuted_heads(config: &Config, name: &str) -> Option<usize> {
    if name.contains(".self_attn.q_proj.") {
        Some(config.num_attention_heads)
    } else if name.contains(".self_attn.k_proj.") {
        Some(config.num_key_value_heads)
    } else {
        None
    }
}

impl WeightSource for GgufWeights {
    fn device(&self) -> &Device {
        self.file.device()
    }

    fn dtype(&self) -> DType {
        DType::F32
    }

    fn matrix(&self, name: &str, shape: (usize, usize)) -> candle_core::Result<Matrix> {
        let mut q = self
            .file
            .qtensor(&self.gguf_name(name)?, &[shape.0, shape.1])?;
        if let Some(heads) = self.permuted_heads(name) {
            q = permute_rows(&q, &unpermuted_rows(heads, self.config.head_dim))?;
        }
        Matrix::from_qtensor(Arc::new(q))
    }

    fn matrix_t(&self, name: &str, _: (usize, usize)) -> candle_core::Result<Matrix> {
        Err(self
            .file
            .error(format!("`{name}`: a Llama has no transposed matrices")))
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
        let t = self.file.tensor_f32(&self.gguf_name(name)?, shape)?;
        match self.permuted_heads(name) {
            // A q or k bias: permuted like the rows of its weight.
            Some(heads) => {
                let rows: Vec<u32> = unpermuted_rows(heads, self.config.head_dim)
                    .into_iter()
                    .map(|r| r as u32)
                    .collect();
                t.index_select(&Tensor::new(rows, t.device())?, 0)
            }
            None => Ok(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The converter's `permute` (reshape(h, 2, hd/2) -> swap -> flatten) as a map from
    /// GGUF row to Hugging Face row; ours must invert it.
    #[test]
    fn unpermuted_rows_invert_the_converters_permutation() {
        let (heads, hd) = (3, 8);
        let rows = unpermuted_rows(heads, hd);
        for h in 0..heads {
            for i in 0..hd / 2 {
                for half in 0..2 {
                    let gguf_row = h * hd + i * 2 + half;
                    let hf_row = h * hd + half * hd / 2 + i;
                    assert_eq!(rows[hf_row], gguf_row);
                }
            }
        }
    }
}
