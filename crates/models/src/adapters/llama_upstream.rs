//! candle-transformers' own `llama`, as a peer to beat and an oracle to agree with.
//!
//! Its KV cache grows by `Tensor::cat` at every step (the whole cache is copied per
//! layer per token), prefill materialises `heads x T x T` scores plus a `T x T` mask,
//! and rope tables stop at `max_position_embeddings`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::llama::{Cache, Config, Llama, LlamaConfig};
use results::{Arch, ModelInfo, ModelSpec, Weights};

use crate::checkpoint::{checkpoint_error, read_tensors};
use crate::implementation::{
    checkpoint_weights, random_weights, About, BuildOptions, Implementation, Shape,
};
use crate::model::CausalLm;
use crate::presets::Preset;
use crate::synthetic::{llama_specs, materialise};
use crate::{Error, Result};

/// candle-transformers' `llama`, `llama-upstream` in specs.
pub struct UpstreamLlamaImpl;

const ABOUT: About = About {
    name: "llama-upstream",
    arch: Arch::Transformer,
    description:
        "candle-transformers 0.11 llama: batched prefill with full TxT scores and mask, KV \
     cache grown by Tensor::cat every step",
};

impl Implementation for UpstreamLlamaImpl {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    /// Upstream's rope tables stop at `max_position_embeddings`.
    fn preset_max_seq_len(&self, preset: &Preset) -> Option<usize> {
        Some(preset.llama.max_position_embeddings)
    }

    fn build_from_preset(
        &self,
        spec: &ModelSpec,
        preset: &Preset,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>> {
        let tensors = materialise(
            &llama_specs(preset),
            opts.seed,
            opts.compute_dtype(spec, ABOUT.name)?,
            &opts.device,
        )?;
        let weights = random_weights(preset, opts);
        let cfg = preset_config(preset);
        Ok(Box::new(self.build(spec, cfg, tensors, opts, weights)?))
    }

    /// A Hugging Face directory (config.json + safetensors).
    fn build_from_path(
        &self,
        spec: &ModelSpec,
        dir: &Path,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let raw: LlamaConfig = serde_json::from_str(&text)
            .map_err(|e| checkpoint_error(&config_path, format!("not a Llama config: {e}")))?;
        let tensors = read_tensors(dir, opts.compute_dtype(spec, ABOUT.name)?, &opts.device)?;
        let cfg = raw.into_config(false);
        Ok(Box::new(self.build(
            spec,
            cfg,
            tensors,
            opts,
            checkpoint_weights(dir),
        )?))
    }
}

pub struct UpstreamLlama {
    model: Llama,
    cfg: Config,
    cache: Cache,
    pos: usize,
    opts: BuildOptions,
    info: ModelInfo,
}

fn preset_config(p: &Preset) -> Config {
    Config {
        hidden_size: p.width,
        intermediate_size: p.llama.intermediate,
        vocab_size: p.vocab,
        num_hidden_layers: p.layers,
        num_attention_heads: p.llama.heads,
        num_key_value_heads: p.llama.kv_heads,
        use_flash_attn: false,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling: None,
        max_position_embeddings: p.llama.max_position_embeddings,
        tie_word_embeddings: false,
    }
}

impl UpstreamLlamaImpl {
    fn build(
        &self,
        spec: &ModelSpec,
        cfg: Config,
        tensors: HashMap<String, Tensor>,
        opts: &BuildOptions,
        weights: Weights,
    ) -> Result<UpstreamLlama> {
        let params = tensors.values().map(|t| t.elem_count() as u64).sum();
        let vb =
            VarBuilder::from_tensors(tensors, opts.compute_dtype(spec, ABOUT.name)?, &opts.device);
        // Upstream `Llama::load` unwraps each block's result, so a bad checkpoint panics;
        // turn that into an error naming the checkpoint.
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let loaded =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Llama::load(vb, &cfg)));
        std::panic::set_hook(previous_hook);
        let here = std::path::PathBuf::from(weights.to_string());
        let model = match loaded {
            Ok(Ok(model)) => model,
            Ok(Err(e)) => return Err(checkpoint_error(&here, e.to_string())),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown error".into());
                return Err(checkpoint_error(&here, why));
            }
        };
        let cache = Cache::new(
            true,
            opts.compute_dtype(spec, ABOUT.name)?,
            &cfg,
            &opts.device,
        )?;
        let shape = Shape {
            params,
            layers: cfg.num_hidden_layers,
            width: cfg.hidden_size,
            vocab: cfg.vocab_size,
            tied_embeddings: false,
        };
        let info = self.info(
            spec,
            shape,
            opts,
            weights,
            Some(cfg.max_position_embeddings),
        );
        Ok(UpstreamLlama {
            model,
            cfg,
            cache,
            pos: 0,
            opts: opts.clone(),
            info,
        })
    }
}

impl UpstreamLlama {
    fn forward(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let end = self.pos + tokens.len();
        if end > self.cfg.max_position_embeddings {
            return Err(Error::Unsupported(format!(
                "{}: context of {end} tokens exceeds max_position_embeddings = {}",
                self.info.spec, self.cfg.max_position_embeddings
            )));
        }
        let input = Tensor::new(tokens, &self.opts.device)?.unsqueeze(0)?;
        let logits = self.model.forward(&input, self.pos, &mut self.cache)?;
        self.pos = end;
        Ok(logits.flatten_to(D::Minus1)?.to_dtype(DType::F32)?)
    }
}

impl UpstreamLlama {
    /// The dtype it was built to compute in (checked dense at build).
    fn compute_dtype(&self) -> candle_core::DType {
        self.opts.dtype.dense().unwrap_or(candle_core::DType::F32)
    }
}

impl CausalLm for UpstreamLlama {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn reset(&mut self) -> Result<()> {
        self.cache = Cache::new(true, self.compute_dtype(), &self.cfg, &self.opts.device)?;
        self.pos = 0;
        Ok(())
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<Tensor> {
        self.forward(tokens)
    }

    fn step(&mut self, token: u32) -> Result<Tensor> {
        self.forward(&[token])
    }

    /// Keys and values held for `pos` tokens (upstream keeps exactly that many; its
    /// cache fields are private, so this is computed from the shapes).
    fn state_bytes(&self) -> usize {
        let head_dim = self.cfg.hidden_size / self.cfg.num_attention_heads;
        2 * self.cfg.num_hidden_layers
            * self.cfg.num_key_value_heads
            * head_dim
            * self.pos
            * self.compute_dtype().size_in_bytes()
    }
}
