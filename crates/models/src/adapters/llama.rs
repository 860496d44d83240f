//! Our reference Llama-family decoder (`crates/transformer`): Llama, Qwen2 and Mistral
//! checkpoints from Hugging Face directories, or random weights of a preset (the same
//! weights `llama-upstream` gets for the same seed).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use results::{Arch, ModelInfo, ModelSpec, Weights};
use transformer::{KvCache, Logits, Model};

use crate::batched::Batched;
use crate::checkpoint::from_transformer;
use crate::gguf;
use crate::implementation::{
    checkpoint_weights, random_weights, About, BuildOptions, Implementation, Shape, TrainSource,
};
use crate::model::CausalLm;
use crate::presets::Preset;
use crate::synthetic::{llama_specs, materialise, LazyWeights};
use crate::trainable::Differentiable;
use crate::{registry, Result};

/// Our Llama-family decoder, `llama` in specs.
pub struct LlamaImpl;

const ABOUT: About = About {
    name: "llama",
    arch: Arch::Transformer,
    description: "rwkv-bench transformer: KV cache preallocated and written in place (grown by \
     doubling), prompts in 512-position chunks with query-blocked causal attention read \
     from the cache (no TxT scores or mask, fused f32 CPU kernel), logits of the last \
     position only",
};

impl Implementation for LlamaImpl {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn kv_dtypes(&self) -> bool {
        true
    }

    fn build_from_preset(
        &self,
        spec: &ModelSpec,
        preset: &Preset,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>> {
        let cfg = preset.llama_config();
        // Drawn tensor by tensor as the model stores each: never all of them in f32.
        let vb = LazyWeights::new(llama_specs(preset), opts.seed)
            .into_var_builder(DType::F32, &opts.device);
        let model = Model::with_dtype(&cfg, vb, opts.dtype).map_err(from_transformer)?;
        Ok(Box::new(self.build(
            spec,
            model,
            opts,
            random_weights(preset, opts),
        )?))
    }

    fn trains(&self) -> bool {
        true
    }

    fn build_trainable(
        &self,
        spec: &ModelSpec,
        source: &TrainSource<'_>,
        opts: &BuildOptions,
    ) -> Result<Box<dyn Differentiable>> {
        opts.require_f32(spec)?;
        if let TrainSource::Path(path) = source {
            gguf::refuse_training(spec, path)?;
        }
        let model = match source {
            TrainSource::Path(dir) => transformer::train::Trainable::load_dir(dir, &opts.device),
            TrainSource::Preset(preset) => {
                let tensors =
                    materialise(&llama_specs(preset), opts.seed, DType::F32, &opts.device)?;
                let vb = VarBuilder::from_tensors(tensors, DType::F32, &opts.device);
                transformer::train::Trainable::new(&preset.llama_config(), &vb)
            }
        }
        .map_err(from_transformer)?;
        let weights = match source {
            TrainSource::Path(dir) => checkpoint_weights(dir),
            TrainSource::Preset(preset) => random_weights(preset, opts),
        };
        let info = self.info(spec, shape_of(model.config()), opts, weights, None);
        Ok(Box::new(LlamaTrainable { model, info }))
    }

    /// A Hugging Face directory (`config.json` + safetensors, single file or sharded),
    /// or a llama.cpp GGUF file (architecture `llama`, matrices as the file stores
    /// them, computing in f32).
    fn build_from_path(
        &self,
        spec: &ModelSpec,
        dir: &Path,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>> {
        if gguf::is_gguf(dir) {
            gguf::refuse_dtype(spec, dir)?;
            let file =
                transformer::GgufWeights::open(dir, &opts.device).map_err(from_transformer)?;
            let model = file.model().map_err(from_transformer)?;
            let mut built = self.build(spec, model, opts, checkpoint_weights(dir))?;
            built.info = gguf::with_storage(
                built.info,
                built.model.storage(),
                built.model.weight_bytes(),
            );
            return Ok(Box::new(built));
        }
        let (_, model) =
            transformer::load_dir_as(dir, opts.dtype, &opts.device).map_err(from_transformer)?;
        Ok(Box::new(self.build(
            spec,
            model,
            opts,
            checkpoint_weights(dir),
        )?))
    }
}

impl LlamaImpl {
    fn build(
        &self,
        spec: &ModelSpec,
        model: Model,
        opts: &BuildOptions,
        weights: Weights,
    ) -> Result<Llama> {
        let cfg = model.config();
        let kv = registry::spec_kv_dtype(spec)?.unwrap_or(model.dtype());
        let cache = model.new_cache_as(1, kv).map_err(from_transformer)?;
        // Rope is computed per position: no limit but memory.
        let mut info = self.info(spec, shape_of(cfg), opts, weights, None);
        info.weight_bytes = Some(model.weight_bytes() as u64);
        if kv != model.dtype() {
            info.description = format!(
                "{}; KV cache stored in {} (widened to f32 as attention reads it)",
                info.description,
                format!("{kv:?}").to_lowercase()
            );
        }
        Ok(Llama { model, cache, info })
    }
}

pub struct Llama {
    model: Model,
    cache: KvCache,
    info: ModelInfo,
}

impl Batched for Llama {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn reset(&mut self) -> Result<()> {
        self.cache.reset();
        Ok(())
    }

    fn state_bytes(&self) -> usize {
        self.cache.bytes()
    }

    fn device(&self) -> Device {
        self.model.device().clone()
    }

    fn forward_batch(&mut self, input: &Tensor, logits: Logits) -> Result<Tensor> {
        self.model
            .forward(input, &mut self.cache, logits)
            .map_err(from_transformer)
    }
}

fn shape_of(cfg: &transformer::Config) -> Shape {
    Shape {
        params: cfg.param_count(),
        layers: cfg.num_hidden_layers,
        width: cfg.hidden_size,
        vocab: cfg.vocab_size,
        tied_embeddings: cfg.tie_word_embeddings,
    }
}

/// Our Llama-family decoder for training, with the description of the inference build.
pub struct LlamaTrainable {
    model: transformer::train::Trainable,
    info: ModelInfo,
}

impl Differentiable for LlamaTrainable {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn hidden(&self, tokens: &Tensor) -> Result<Tensor> {
        self.model.hidden(tokens).map_err(from_transformer)
    }

    fn head(&self) -> Result<Tensor> {
        self.model.head().cloned().map_err(from_transformer)
    }

    fn vocab(&self) -> usize {
        self.model.config().vocab_size
    }

    fn params(&self) -> Vec<(String, candle_core::Var)> {
        self.model.vars().to_vec()
    }

    fn checkpoint_keys(&self) -> Vec<(String, Vec<usize>)> {
        transformer::train::Trainable::tensor_shapes(self.model.config())
    }

    /// A Hugging Face directory: `config.json` + `model.safetensors`.
    fn save(&self, dir: &Path) -> Result<PathBuf> {
        self.model.save_dir(dir).map_err(from_transformer)?;
        Ok(dir.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{token_log_prob, LOGITS_CHUNK};
    use crate::presets::PRESETS;
    use crate::registry;

    fn spec(raw: &str) -> ModelSpec {
        raw.parse().unwrap()
    }

    #[test]
    fn synthetic_weights_match_the_preset_config() {
        for p in PRESETS {
            let c = p.llama_config();
            c.validate().unwrap();
            assert_eq!(c.param_count(), LlamaImpl.preset_params(p), "{}", p.name);
        }
    }

    fn tiny() -> Box<dyn CausalLm> {
        registry::build(&spec("llama:preset=tiny"), &BuildOptions::default()).unwrap()
    }

    #[test]
    fn same_seed_gives_the_same_model_as_upstream() {
        let opts = BuildOptions::default();
        let mut theirs = registry::build(&spec("llama-upstream:preset=tiny"), &opts).unwrap();
        let mut ours = tiny();
        let tokens = [5u32, 9, 300, 2, 77, 1];
        let a = ours.prefill(&tokens).unwrap();
        let b = theirs.prefill(&tokens).unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max(0).unwrap();
        // Same weights and math; f32 summation order differs.
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
        assert_eq!(ours.state_bytes(), theirs.state_bytes());
    }

    #[test]
    fn chunked_log_probs_and_logits_agree_with_steps() {
        let mut m = tiny();
        let tokens: Vec<u32> = (0..(LOGITS_CHUNK as u32 + 40))
            .map(|i| (i * 37) % 512)
            .collect();
        let lp = m.log_probs(&tokens).unwrap();
        assert_eq!(lp.len(), tokens.len() - 1);
        let stepwise = m.logits_stepwise(&tokens).unwrap();
        let all = m.logits_all(&tokens).unwrap();
        assert_eq!(all.dims(), stepwise.dims());
        let diff = (&all - &stepwise)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap();
        // Batched vs one token at a time: f32 summation order only.
        assert!(diff.max(0).unwrap().to_scalar::<f32>().unwrap() < 1e-4);
        for i in [0, LOGITS_CHUNK - 1, LOGITS_CHUNK, tokens.len() - 2] {
            let want = token_log_prob(&stepwise.get(i).unwrap(), tokens[i + 1]).unwrap();
            assert!((lp[i] - want).abs() < 1e-4, "{i}: {} vs {want}", lp[i]);
        }
        assert!(m.log_probs(&[3]).unwrap().is_empty());
    }

    #[test]
    fn has_no_context_limit_unlike_upstream() {
        use crate::registry::max_seq_len;
        assert_eq!(max_seq_len(&spec("llama:preset=0.1b")).unwrap(), None);
        assert_eq!(
            max_seq_len(&spec("llama-upstream:preset=0.1b")).unwrap(),
            Some(32768)
        );
        assert_eq!(tiny().info().max_seq_len, None);
    }

    #[test]
    fn checkpoint_errors_name_the_file() {
        let e = LlamaImpl
            .build_from_path(
                &spec("llama:/nonexistent"),
                Path::new("/nonexistent"),
                &BuildOptions::default(),
            )
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/nonexistent"), "{e}");
    }
}
