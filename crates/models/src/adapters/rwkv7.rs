//! Our RWKV-7 (`crates/rwkv`): official `.pth`/safetensors checkpoints, or random
//! weights of a preset (the same weights `rwkv7-upstream` gets for the same seed).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use results::{Arch, ModelInfo, ModelSpec, Weights};
use rwkv::{CheckpointShapes, Logits, Model, State};

use crate::batched::Batched;
use crate::gguf;
use crate::implementation::{
    checkpoint_weights, random_weights, About, BuildOptions, Implementation, Shape, TrainSource,
};
use crate::model::CausalLm;
use crate::presets::Preset;
use crate::synthetic::{materialise, param_count, rwkv7_specs, LazyWeights};
use crate::trainable::Differentiable;
use crate::{Error, Result};

/// Our RWKV-7, `rwkv7` in specs.
pub struct Rwkv7Impl;

const ABOUT: About = About {
    name: "rwkv7",
    arch: Arch::Rwkv,
    description: "rwkv-bench RWKV-7: prompts in 512-token chunks with every projection one matmul \
     over the chunk and the WKV-7 recurrence (with its activations, GroupNorm and gate) \
     as one fused f32 CPU kernel, rayon over heads; a decode step is the same path with \
     T = 1, its projections through a parallel matrix-vector kernel; logits of the last \
     position only",
};

impl Implementation for Rwkv7Impl {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn build_from_preset(
        &self,
        spec: &ModelSpec,
        preset: &Preset,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>> {
        let specs = rwkv7_specs(preset);
        let shapes: CheckpointShapes = specs
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone()))
            .collect();
        let cfg = shapes
            .into_config()
            .map_err(|e| Error::spec(spec, e.to_string()))?;
        // Drawn tensor by tensor as the model stores each: never all of them in f32.
        let vb =
            LazyWeights::new(specs.clone(), opts.seed).into_var_builder(DType::F32, &opts.device);
        let model = Model::with_dtype(&cfg, vb, opts.dtype).map_err(model_error)?;
        let weights = random_weights(preset, opts);
        Ok(Box::new(self.build(
            spec,
            model,
            opts,
            weights,
            param_count(&specs),
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
        let ckpt = match source {
            TrainSource::Path(path) => {
                rwkv::Checkpoint::load(path, &opts.device).map_err(model_error)?
            }
            TrainSource::Preset(preset) => {
                let tensors =
                    materialise(&rwkv7_specs(preset), opts.seed, DType::F32, &opts.device)?;
                let shapes: CheckpointShapes = tensors
                    .iter()
                    .map(|(k, t)| (k.clone(), t.dims().to_vec()))
                    .collect();
                let config = shapes
                    .into_config()
                    .map_err(|e| Error::spec(spec, e.to_string()))?;
                rwkv::Checkpoint {
                    path: format!("preset {}", preset.name).into(),
                    config,
                    tensors,
                }
            }
        };
        let weights = match source {
            TrainSource::Path(path) => checkpoint_weights(path),
            TrainSource::Preset(preset) => random_weights(preset, opts),
        };
        let cfg = ckpt.config;
        let shape = Shape {
            params: cfg.param_count(),
            layers: cfg.layers,
            width: cfg.width,
            vocab: cfg.vocab,
            tied_embeddings: false,
        };
        Ok(Box::new(Rwkv7Trainable {
            model: rwkv::Trainable::from_checkpoint(ckpt).map_err(model_error)?,
            info: self.info(spec, shape, opts, weights, None),
        }))
    }

    /// An official `.pth` (fp32/bf16/fp16), a safetensors file with the same keys, or a
    /// llama.cpp GGUF file (architecture `rwkv7`, matrices as the file stores them).
    fn build_from_path(
        &self,
        spec: &ModelSpec,
        path: &Path,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>> {
        if gguf::is_gguf(path) {
            gguf::refuse_dtype(spec, path)?;
            let file = rwkv::GgufWeights::open(path, &opts.device).map_err(model_error)?;
            let model = file.model().map_err(model_error)?;
            let params = file.config().param_count();
            let mut built = self.build(spec, model, opts, checkpoint_weights(path), params)?;
            built.info = gguf::with_storage(
                built.info,
                built.model.storage(),
                built.model.weight_bytes(),
            );
            return Ok(Box::new(built));
        }
        let ckpt = rwkv::Checkpoint::load(path, &opts.device).map_err(model_error)?;
        let cfg = ckpt.config;
        let model = Model::with_dtype(&cfg, ckpt.into_var_builder(&opts.device), opts.dtype)
            .map_err(model_error)?;
        let weights = checkpoint_weights(path);
        Ok(Box::new(self.build(
            spec,
            model,
            opts,
            weights,
            cfg.param_count(),
        )?))
    }
}

impl Rwkv7Impl {
    fn build(
        &self,
        spec: &ModelSpec,
        model: Model,
        opts: &BuildOptions,
        weights: Weights,
        params: u64,
    ) -> Result<Rwkv7> {
        let cfg = *model.config();
        let state = State::new(&cfg, 1, &opts.device).map_err(model_error)?;
        let shape = Shape {
            params,
            layers: cfg.layers,
            width: cfg.width,
            vocab: cfg.vocab,
            tied_embeddings: false,
        };
        let mut info = self.info(spec, shape, opts, weights, None);
        info.weight_bytes = Some(model.weight_bytes() as u64);
        Ok(Rwkv7 { model, state, info })
    }
}

pub struct Rwkv7 {
    model: Model,
    state: State,
    info: ModelInfo,
}

/// Our error for an rwkv-crate error, keeping the file it names.
fn model_error(e: rwkv::Error) -> Error {
    match e {
        rwkv::Error::Candle(e) => Error::Candle(e),
        rwkv::Error::Io { path, source } => Error::io(path, source),
        rwkv::Error::Checkpoint { path, message } | rwkv::Error::StateFile { path, message } => {
            Error::Checkpoint { path, message }
        }
        other => Error::Unsupported(other.to_string()),
    }
}

impl Batched for Rwkv7 {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn reset(&mut self) -> Result<()> {
        let device = self.device();
        self.state = State::new(self.model.config(), 1, &device).map_err(model_error)?;
        Ok(())
    }

    fn state_bytes(&self) -> usize {
        self.state.bytes()
    }

    fn device(&self) -> Device {
        self.state.layers[0].wkv.device().clone()
    }

    fn forward_batch(&mut self, input: &Tensor, logits: Logits) -> Result<Tensor> {
        self.model
            .forward(input, &mut self.state, logits)
            .map_err(model_error)
    }
}

/// Our RWKV-7 for training, with the description of the inference build.
pub struct Rwkv7Trainable {
    model: rwkv::Trainable,
    info: ModelInfo,
}

impl Differentiable for Rwkv7Trainable {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn hidden(&self, tokens: &Tensor) -> Result<Tensor> {
        self.model.hidden(tokens).map_err(model_error)
    }

    fn head(&self) -> Result<Tensor> {
        self.model.head().cloned().map_err(model_error)
    }

    fn vocab(&self) -> usize {
        self.model.config().vocab
    }

    fn params(&self) -> Vec<(String, candle_core::Var)> {
        self.model.vars().to_vec()
    }

    fn checkpoint_keys(&self) -> Vec<(String, Vec<usize>)> {
        self.model.config().tensor_shapes()
    }

    /// `model.safetensors` under the official keys (the `.pth` loader's twin).
    fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join("model.safetensors");
        self.model.save_safetensors(&path).map_err(model_error)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::token_log_prob;
    use crate::presets::PRESETS;
    use crate::registry;

    fn build(raw: &str, opts: &BuildOptions) -> Result<Box<dyn CausalLm>> {
        registry::build(&raw.parse::<ModelSpec>()?, opts)
    }

    #[test]
    fn synthetic_weights_match_the_preset_config() {
        for p in PRESETS {
            let shapes: CheckpointShapes = rwkv7_specs(p)
                .into_iter()
                .map(|s| (s.name, s.shape))
                .collect();
            let cfg = shapes.into_config().unwrap();
            assert_eq!(cfg, p.rwkv_config(), "{}", p.name);
            assert_eq!(cfg.param_count(), Rwkv7Impl.preset_params(p), "{}", p.name);
        }
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn agrees_with_rwkv7_upstream_on_the_same_random_weights() {
        let opts = BuildOptions::default();
        let tokens: Vec<u32> = (0..20).map(|i| (i * 37 + 5) % 512).collect();
        let mut ours = build("rwkv7:preset=tiny", &opts).unwrap();
        let mut theirs = build("rwkv7-upstream:preset=tiny", &opts).unwrap();
        let a = ours.prefill(&tokens).unwrap();
        let b = theirs.prefill(&tokens).unwrap();
        assert_eq!(a.dims(), &[512]);
        // Same weights, same math in f32: differences are rounding (~1e-6).
        let d = max_abs_diff(&a, &b);
        assert!(d <= 1e-4, "prefill max |Δ| {d:e}");
        let d = max_abs_diff(&ours.step(7).unwrap(), &theirs.step(7).unwrap());
        assert!(d <= 1e-4, "step max |Δ| {d:e}");
    }

    #[test]
    fn batched_logits_and_log_probs_match_single_steps() {
        let mut m = build("rwkv7:preset=tiny", &BuildOptions::default()).unwrap();
        // Longer than LOGITS_CHUNK so the chunk boundary is crossed.
        let tokens: Vec<u32> = (0..300).map(|i| (i * 131 + 7) % 512).collect();
        let all = m.logits_all(&tokens).unwrap();
        let steps = m.logits_stepwise(&tokens).unwrap();
        assert_eq!(all.dims(), &[300, 512]);
        let d = max_abs_diff(&all, &steps);
        assert!(d <= 1e-4, "logits_all vs stepwise max |Δ| {d:e}");
        let lp = m.log_probs(&tokens).unwrap();
        assert_eq!(lp.len(), 299);
        for i in [0, 254, 255, 256, 298] {
            let want = token_log_prob(&steps.get(i).unwrap(), tokens[i + 1]).unwrap();
            assert!((lp[i] - want).abs() <= 1e-4, "{i}: {} vs {want}", lp[i]);
        }
        assert!(m.state_bytes() > 0);
    }

    #[test]
    fn training_in_bf16_is_refused_with_the_spec_named() {
        let opts = BuildOptions {
            dtype: kernels::WeightDtype::Bf16,
            ..BuildOptions::default()
        };
        let spec: ModelSpec = "rwkv7:preset=tiny".parse().unwrap();
        let e = crate::registry::build_trainable(&spec, &opts)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("rwkv7:preset=tiny") && e.contains("f32"), "{e}");
    }
}
