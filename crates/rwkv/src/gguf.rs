//! RWKV-7 from a llama.cpp GGUF file (architecture `rwkv7`), as llama.cpp's converter
//! writes it (`convert_hf_to_gguf.py`, class `Rwkv7Model`; names from gguf-py's
//! `tensor_mapping.py`). The config comes from the file's metadata; quantised matrices
//! stay quantised, float ones are dense.
//!
//! [`GgufWeights`] serves the official keys the model asks for and undoes what the
//! converter did to them:
//!
//! - the six token-shift lerps are one tensor, `blk.N.time_mix_lerp_fused`
//!   (`[6, 1, 1, C]`, ggml `ne = {C, 1, 1, 6}`), stacked in the order r, w, k, v, a, g;
//! - the eight LoRA factors (`w1 … g2`, used as `x @ w1` in the official code) are
//!   stored transposed, in the `nn.Linear` layout our model keeps them in anyway;
//! - `[1, 1, C]` vectors are squeezed to `[C]` and `r_k` (`[H, N]`) flattened;
//! - `blocks.0.ln0` is `token_embd_norm`, `ln1`/`ln2` are `attn_norm`/`attn_norm_2`;
//! - layer 0's unused `v0/v1/v2` are dropped and copies of `a0/a1/a2` written in their
//!   place (to satisfy llama.cpp's loader); the model never asks for them.
//!
//! Nothing is rescaled or negated: llama.cpp's graph computes the decay as the official
//! code does, from the same `w0`.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use kernels::gguf::GgufFile;
use kernels::{Matrix, WeightSource};

use crate::config::{Config, LoraDims};
use crate::{Error, Model, Result};

/// The order of the lerps in `time_mix_lerp_fused`.
const LERP_ORDER: [&str; 6] = ["r", "w", "k", "v", "a", "g"];

/// An open RWKV-7 GGUF file and the config its metadata describes.
pub struct GgufWeights {
    file: GgufFile,
    config: Config,
}

impl GgufWeights {
    /// Opens `path` and reads the config from its metadata (`rwkv7.embedding_length`,
    /// `rwkv7.block_count`, `rwkv7.wkv.head_size`, `rwkv7.feed_forward_length`, the four
    /// `rwkv7.attention.*_lora_rank`) and the vocabulary from `token_embd`'s rows.
    pub fn open(path: &Path, device: &Device) -> Result<Self> {
        let file = GgufFile::open(path, device)?;
        file.architecture(&["rwkv7"])?;
        let key = |k: &str| file.usize(&format!("rwkv7.{k}"));
        let width = key("embedding_length")?;
        let head_size = key("wkv.head_size")?;
        if head_size == 0 || !width.is_multiple_of(head_size) {
            return Err(Error::checkpoint(
                path,
                format!("rwkv7.wkv.head_size {head_size} does not divide the width {width}"),
            ));
        }
        let vocab = match file.shape("token_embd.weight")? {
            [v, c] if *c == width => *v,
            s => {
                return Err(Error::checkpoint(
                    path,
                    format!("tensor token_embd.weight has shape {s:?}, expected [vocab, {width}]"),
                ))
            }
        };
        let config = Config {
            vocab,
            width,
            layers: key("block_count")?,
            heads: width / head_size,
            head_size,
            ffn: key("feed_forward_length")?,
            lora: LoraDims {
                decay: key("attention.decay_lora_rank")?,
                iclr: key("attention.iclr_lora_rank")?,
                value: key("attention.value_residual_mix_lora_rank")?,
                gate: key("attention.gate_lora_rank")?,
            },
        };
        Ok(Self { file, config })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The model, every matrix stored as the file stores it.
    pub fn model(&self) -> Result<Model> {
        Model::from_weights(&self.config, self)
    }

    /// The GGUF name of an official key.
    fn gguf_name(&self, key: &str) -> candle_core::Result<String> {
        let unknown = || self.file.error(format!("no GGUF tensor for `{key}`"));
        let (base, suffix) = match key.rsplit_once('.') {
            Some((b, s @ ("weight" | "bias"))) => (b, s),
            _ => (key, "weight"),
        };
        let global = match base {
            "emb" => Some("token_embd"),
            "head" => Some("output"),
            "ln_out" => Some("output_norm"),
            "blocks.0.ln0" => Some("token_embd_norm"),
            _ => None,
        };
        if let Some(g) = global {
            return Ok(format!("{g}.{suffix}"));
        }
        let rest = base.strip_prefix("blocks.").ok_or_else(unknown)?;
        let (layer, part) = rest.split_once('.').ok_or_else(unknown)?;
        let name = match part {
            "ln1" => "attn_norm".to_string(),
            "ln2" => "attn_norm_2".to_string(),
            "att.ln_x" => "time_mix_ln".to_string(),
            "ffn.x_k" => "channel_mix_lerp_k".to_string(),
            "ffn.key" => "channel_mix_key".to_string(),
            "ffn.value" => "channel_mix_value".to_string(),
            p => match p.strip_prefix("att.") {
                // receptance, key, value, output, w0..g2, k_k, k_a, r_k
                Some(n) => format!("time_mix_{n}"),
                None => return Err(unknown()),
            },
        };
        Ok(format!("blk.{layer}.{name}.{suffix}"))
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
        self.file.matrix(&self.gguf_name(name)?, shape)
    }

    /// The LoRA factors: the converter already transposed them to `[out, in]`.
    fn matrix_t(&self, name: &str, shape: (usize, usize)) -> candle_core::Result<Matrix> {
        self.file.matrix(&self.gguf_name(name)?, shape)
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
        let elems: usize = shape.iter().product();
        // `blocks.N.att.x_r` … : one row of the fused lerps.
        if let Some((block, lerp)) = name
            .strip_prefix("blocks.")
            .and_then(|r| r.split_once(".att.x_"))
        {
            if let Some(row) = LERP_ORDER.iter().position(|l| *l == lerp) {
                let fused = format!("blk.{block}.time_mix_lerp_fused.weight");
                return self
                    .file
                    .tensor_f32(&fused, &[6, 1, 1, elems])?
                    .narrow(0, row, 1)?
                    .reshape(shape);
            }
        }
        // Every other non-matrix tensor is stored squeezed / flattened to one dimension.
        self.file
            .tensor_f32(&self.gguf_name(name)?, &[elems])?
            .reshape(shape)
    }
}
