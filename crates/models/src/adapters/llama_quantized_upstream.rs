//! candle-transformers' `quantized_llama`, the GGUF Llama a candle user would run, as
//! the peer of our Llama at q8_0 and q4_k: from a llama.cpp GGUF file, or from a preset
//! written to an in-memory GGUF at the suite's dtype by [`transformer::GgufWriter`], so
//! that it multiplies the very blocks our `llama` builds from the same preset and seed.
//!
//! Every product goes through candle's `QMatMul`, which quantises the activations to 8
//! bits per row (as our decode kernels do, and as ggml does; our prefill multiplies
//! dequantised tiles in f32 instead). f16/bf16 matrices would be widened to f32 at load,
//! so those dtypes are refused rather than mislabelled. The KV cache grows by
//! `Tensor::cat` at every step, prefill materialises `heads x T x T` scores plus a mask
//! (kept per prompt length), and the rope tables stop at 4096 positions.

use std::io::{Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use candle_core::{DType, Tensor, D};
use candle_nn::var_builder::SimpleBackend;
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use kernels::{ggml_name, main_type, WeightDtype};
use results::{Arch, ModelInfo, ModelSpec, Weights};

use crate::checkpoint::{checkpoint_error, from_transformer};
use crate::gguf;
use crate::implementation::{
    checkpoint_weights, random_weights, About, BuildOptions, Implementation, Shape,
};
use crate::model::CausalLm;
use crate::presets::Preset;
use crate::synthetic::{llama_specs, LazyWeights};
use crate::{Error, Result};

/// candle-transformers' `quantized_llama`, `llama-quantized-upstream` in specs.
pub struct QuantizedUpstreamLlamaImpl;

const ABOUT: About = About {
    name: "llama-quantized-upstream",
    arch: Arch::Transformer,
    description: "candle-transformers 0.11 quantized_llama on a GGUF file: every product through \
     candle's QMatMul (activations quantised to 8 bits per row, prefill included), full TxT \
     scores and mask, KV cache grown by Tensor::cat every step, rope tables to 4096 positions",
};

impl Implementation for QuantizedUpstreamLlamaImpl {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn preset_max_seq_len(&self, _: &Preset) -> Option<usize> {
        Some(MAX_SEQ_LEN)
    }

    fn build_from_preset(
        &self,
        spec: &ModelSpec,
        preset: &Preset,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>> {
        if matches!(opts.dtype, WeightDtype::Bf16 | WeightDtype::F16) {
            return Err(Error::spec(
                spec,
                format!(
                    "`{}` widens {} matrices to f32 as it loads them (candle's QMatMul), so it \
                     cannot run them in 16 bits; use f32, q8_0 or q4_k",
                    ABOUT.name, opts.dtype
                ),
            ));
        }
        let cfg = preset.llama_config();
        let mut writer =
            transformer::GgufWriter::new(&cfg, opts.dtype).map_err(from_transformer)?;
        // One f32 tensor at a time, as our `llama` draws them.
        let specs = llama_specs(preset);
        let weights = LazyWeights::new(specs.clone(), opts.seed);
        for s in &specs {
            let t = weights.get_unchecked(&s.name, DType::F32, &opts.device)?;
            writer.add(&s.name, &t).map_err(from_transformer)?;
        }
        let mut file = Cursor::new(Vec::new());
        writer.write(&mut file).map_err(from_transformer)?;
        drop(writer);
        file.set_position(0);
        let origin = random_weights(preset, opts);
        let here = PathBuf::from(origin.to_string());
        Ok(Box::new(load(spec, &here, &mut file, opts, origin)?))
    }

    /// A llama.cpp GGUF file of architecture `llama`.
    fn build_from_path(
        &self,
        spec: &ModelSpec,
        path: &Path,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>> {
        if !gguf::is_gguf(path) {
            return Err(Error::spec(
                spec,
                format!(
                    "{} is not a GGUF file: `{}` loads llama.cpp GGUF files only",
                    path.display(),
                    ABOUT.name
                ),
            ));
        }
        gguf::refuse_dtype(spec, path)?;
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(Box::new(load(
            spec,
            path,
            &mut file,
            opts,
            checkpoint_weights(path),
        )?))
    }
}

/// The model in a GGUF stream; errors name `path`.
fn load<R: Read + Seek>(
    spec: &ModelSpec,
    path: &Path,
    reader: &mut R,
    opts: &BuildOptions,
    weights: Weights,
) -> Result<QuantizedUpstreamLlama> {
    let fail = |e: candle_core::Error| checkpoint_error(path, e.to_string());
    let content = Content::read(reader).map_err(fail)?;
    let arch = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    if arch != "llama" {
        return Err(checkpoint_error(
            path,
            format!(
                "architecture `{arch}`: `{}` runs `llama` files (its rope convention is chosen \
                 by architecture)",
                ABOUT.name
            ),
        ));
    }
    let key = |k: &str| -> Result<usize> {
        let v = content
            .metadata
            .get(&format!("llama.{k}"))
            .ok_or_else(|| checkpoint_error(path, format!("no metadata key llama.{k}")))?;
        Ok(v.to_u32().map_err(fail)? as usize)
    };
    let (layers, width, heads) = (
        key("block_count")?,
        key("embedding_length")?,
        key("attention.head_count")?,
    );
    let kv_heads = key("attention.head_count_kv")?;
    let vocab = content
        .tensor_infos
        .get("token_embd.weight")
        .map(|t| t.shape.dims()[0])
        .ok_or_else(|| checkpoint_error(path, "no tensor token_embd.weight"))?;
    let infos = content.tensor_infos.values();
    let params = infos.clone().map(|t| t.shape.elem_count() as u64).sum();
    let weight_bytes = infos
        .clone()
        .map(|t| t.shape.elem_count() / t.ggml_dtype.block_size() * t.ggml_dtype.type_size())
        .sum();
    let storage = main_type(
        infos
            .filter(|t| t.shape.rank() == 2)
            .map(|t| (ggml_name(t.ggml_dtype), t.shape.elem_count())),
    );
    let tied_embeddings = !content.tensor_infos.contains_key("output.weight");
    let model = ModelWeights::from_gguf(content, reader, &opts.device).map_err(fail)?;
    let shape = Shape {
        params,
        layers,
        width,
        vocab,
        tied_embeddings,
    };
    let info = QuantizedUpstreamLlamaImpl.info(spec, shape, opts, weights, Some(MAX_SEQ_LEN));
    Ok(QuantizedUpstreamLlama {
        model,
        pos: 0,
        kv_row_bytes: 2 * layers * kv_heads * (width / heads) * DType::F32.size_in_bytes(),
        info: gguf::with_storage(info, storage, weight_bytes),
        device: opts.device.clone(),
    })
}

pub struct QuantizedUpstreamLlama {
    model: ModelWeights,
    pos: usize,
    /// Keys and values of one position, all layers (upstream's cache is f32).
    kv_row_bytes: usize,
    info: ModelInfo,
    device: candle_core::Device,
}

impl QuantizedUpstreamLlama {
    fn forward(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let end = self.pos + tokens.len();
        if end > MAX_SEQ_LEN {
            return Err(Error::Unsupported(format!(
                "{}: context of {end} tokens exceeds quantized_llama's {MAX_SEQ_LEN} rope positions",
                self.info.spec
            )));
        }
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let logits = self.model.forward(&input, self.pos)?;
        self.pos = end;
        Ok(logits.flatten_to(D::Minus1)?.to_dtype(DType::F32)?)
    }
}

impl CausalLm for QuantizedUpstreamLlama {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn reset(&mut self) -> Result<()> {
        self.model.clear_kv_cache();
        self.pos = 0;
        Ok(())
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<Tensor> {
        self.forward(tokens)
    }

    fn step(&mut self, token: u32) -> Result<Tensor> {
        self.forward(&[token])
    }

    /// Keys and values held for `pos` tokens (upstream keeps exactly that many).
    fn state_bytes(&self) -> usize {
        self.kv_row_bytes * self.pos
    }
}
