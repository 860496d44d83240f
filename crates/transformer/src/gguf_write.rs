//! A Llama written as llama.cpp's converter writes a GGUF file (architecture `llama`):
//! the inverse of [`crate::gguf`]'s reading — GGUF tensor names, q/k rows permuted to
//! ggml's interleaved rope, the config as `llama.*` metadata. For peers that load only
//! GGUF files (candle-transformers' `quantized_llama`), so that they run the very
//! weights, in the very blocks, that our model runs at the same dtype.

use std::io::{Seek, Write};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::QTensor;
use candle_core::Tensor;
use kernels::WeightDtype;

use crate::config::Config;
use crate::gguf::{gguf_name, permuted_heads, unpermuted_rows};
use crate::{Error, Result};

/// The tensors of one model, stored as they will be written.
pub struct GgufWriter {
    config: Config,
    dtype: WeightDtype,
    tensors: Vec<(String, QTensor)>,
}

impl GgufWriter {
    /// A writer for a model of `config` whose matrices are stored as `dtype`. Rope
    /// scaling has no GGUF form that [`crate::GgufWeights`] reads, so it is refused.
    pub fn new(config: &Config, dtype: WeightDtype) -> Result<Self> {
        if config.rope_scaling.is_some() {
            return Err(Error::Unsupported(
                "a GGUF file of a Llama with rope scaling is not written (its reader refuses it)"
                    .into(),
            ));
        }
        Ok(Self {
            config: config.clone(),
            dtype,
            tensors: Vec::new(),
        })
    }

    /// Adds the Hugging Face tensor `name`: a matrix (rank 2) stored as our model stores
    /// it at the writer's dtype ([`WeightDtype::storage_for_row`]), anything else in f32.
    pub fn add(&mut self, name: &str, t: &Tensor) -> Result<()> {
        let gguf = gguf_name(name).ok_or_else(|| {
            Error::Unsupported(format!("`{name}` is not a tensor of a Llama checkpoint"))
        })?;
        let t = match permuted_heads(&self.config, name) {
            Some(heads) => {
                let rows = gguf_rows(heads, self.config.head_dim);
                t.index_select(&Tensor::new(rows, t.device())?, 0)?
            }
            None => t.clone(),
        };
        let storage = match t.dims() {
            [_, in_dim] => self.dtype.storage_for_row(*in_dim),
            _ => candle_core::quantized::GgmlDType::F32,
        };
        let t = t.to_dtype(candle_core::DType::F32)?;
        self.tensors.push((gguf, QTensor::quantize(&t, storage)?));
        Ok(())
    }

    /// Bytes the tensors take as stored.
    pub fn weight_bytes(&self) -> usize {
        self.tensors
            .iter()
            .map(|(_, q)| q.storage_size_in_bytes())
            .sum()
    }

    /// The file: metadata, then the tensors in the order they were added.
    pub fn write<W: Write + Seek>(&self, out: &mut W) -> Result<()> {
        let metadata = metadata(&self.config);
        let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
        let tensors: Vec<(&str, &QTensor)> =
            self.tensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
        gguf_file::write(out, &metadata, &tensors)?;
        Ok(())
    }
}

/// For each GGUF row of a q or k projection of `heads` heads, the Hugging Face row it
/// holds: the inverse of [`unpermuted_rows`].
fn gguf_rows(heads: usize, head_dim: usize) -> Vec<u32> {
    let hf_to_gguf = unpermuted_rows(heads, head_dim);
    let mut rows = vec![0u32; hf_to_gguf.len()];
    for (hf, &g) in hf_to_gguf.iter().enumerate() {
        rows[g] = hf as u32;
    }
    rows
}

/// The `llama.*` keys llama.cpp's converter writes for `config`.
fn metadata(c: &Config) -> Vec<(&'static str, Value)> {
    let u = |v: usize| Value::U32(v as u32);
    vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.context_length", u(c.max_position_embeddings)),
        ("llama.embedding_length", u(c.hidden_size)),
        ("llama.block_count", u(c.num_hidden_layers)),
        ("llama.feed_forward_length", u(c.intermediate_size)),
        ("llama.attention.head_count", u(c.num_attention_heads)),
        ("llama.attention.head_count_kv", u(c.num_key_value_heads)),
        ("llama.attention.key_length", u(c.head_dim)),
        ("llama.attention.value_length", u(c.head_dim)),
        ("llama.rope.dimension_count", u(c.head_dim)),
        ("llama.rope.freq_base", Value::F32(c.rope_theta as f32)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(c.rms_norm_eps as f32),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, D};
    use candle_nn::VarBuilder;

    use crate::GgufWeights;

    fn config() -> Config {
        Config {
            vocab_size: 64,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 16,
            max_position_embeddings: 256,
            ..Config::tiny()
        }
    }

    /// Random tensors under the Hugging Face names of `config`'s model.
    fn tensors(c: &Config) -> Vec<(String, Tensor)> {
        let (d, kv, f) = (
            c.hidden_size,
            c.num_key_value_heads * c.head_dim,
            c.intermediate_size,
        );
        let mut shapes = vec![
            (
                "model.embed_tokens.weight".to_string(),
                vec![c.vocab_size, d],
            ),
            ("model.norm.weight".into(), vec![d]),
            ("lm_head.weight".into(), vec![c.vocab_size, d]),
        ];
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            for (n, s) in [
                ("self_attn.q_proj.weight", vec![d, d]),
                ("self_attn.k_proj.weight", vec![kv, d]),
                ("self_attn.v_proj.weight", vec![kv, d]),
                ("self_attn.o_proj.weight", vec![d, d]),
                ("mlp.gate_proj.weight", vec![f, d]),
                ("mlp.up_proj.weight", vec![f, d]),
                ("mlp.down_proj.weight", vec![d, f]),
                ("input_layernorm.weight", vec![d]),
                ("post_attention_layernorm.weight", vec![d]),
            ] {
                shapes.push((format!("{p}.{n}"), s));
            }
        }
        shapes
            .into_iter()
            .map(|(n, s)| {
                let t = Tensor::randn(0f32, 0.2, s, &Device::Cpu).unwrap();
                (n, t)
            })
            .collect()
    }

    /// Written at a dtype and read back, a model runs exactly the model built from the
    /// same tensors at that dtype: names, permutation and metadata invert the reader.
    #[test]
    fn a_written_file_reads_back_as_the_same_model() {
        let c = config();
        let named = tensors(&c);
        let dir = tempfile::tempdir().unwrap();
        for dtype in [WeightDtype::F32, WeightDtype::Q8_0] {
            let mut w = GgufWriter::new(&c, dtype).unwrap();
            for (n, t) in &named {
                w.add(n, t).unwrap();
            }
            let path = dir.path().join(format!("{dtype}.gguf"));
            let mut file = std::fs::File::create(&path).unwrap();
            w.write(&mut file).unwrap();
            drop(file);
            let read = GgufWeights::open(&path, &Device::Cpu).unwrap();
            assert_eq!(read.config().num_key_value_heads, 2);
            let from_file = read.model().unwrap();
            assert_eq!(from_file.weight_bytes(), w.weight_bytes());
            let vb =
                VarBuilder::from_tensors(named.iter().cloned().collect(), DType::F32, &Device::Cpu);
            let direct = crate::Model::with_dtype(&c, vb, dtype).unwrap();
            let ids = Tensor::new(&[[1u32, 7, 3, 9, 2]], &Device::Cpu).unwrap();
            let run = |m: &crate::Model| {
                let mut cache = m.new_cache(1).unwrap();
                m.forward(&ids, &mut cache, crate::Logits::Last).unwrap()
            };
            let d = (run(&from_file) - run(&direct))
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(D::Minus1)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-5, "{dtype}: max |Δ logits| {d}");
        }
    }
}
