//! Our RWKV-7 (`crates/rwkv`): official `.pth`/safetensors checkpoints, or random
//! weights of a preset (the same weights `rwkv7-upstream` gets for the same seed).

use std::path::Path;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use rwkv::{CheckpointShapes, Logits, Model, State};

use crate::adapters::{device_name, dtype_name, BuildOptions};
use crate::model::{chunked_log_probs, Arch, CausalLm, ModelInfo, LOGITS_CHUNK};
use crate::presets::Preset;
use crate::spec::ModelSpec;
use crate::synthetic::{materialise, param_count, rwkv7_specs};
use crate::{Error, Result};

pub const NAME: &str = "rwkv7";
pub const DESCRIPTION: &str = "rwkv-bench RWKV-7: prompts in 512-token chunks with every \
    projection one matmul over the chunk and the WKV-7 recurrence (with its activations, \
    GroupNorm and gate) as one fused f32 CPU kernel, rayon over heads; a decode step is the \
    same path with T = 1, its projections through a parallel matrix-vector kernel; logits of \
    the last position only";

pub struct Rwkv7 {
    model: Model,
    state: State,
    info: ModelInfo,
}

/// The harness error for an rwkv-crate error, keeping the file it names.
fn harness_error(e: rwkv::Error) -> Error {
    match e {
        rwkv::Error::Candle(e) => Error::Candle(e),
        rwkv::Error::Io { path, source } => Error::Io { path, source },
        rwkv::Error::Checkpoint { path, message } | rwkv::Error::StateFile { path, message } => {
            Error::Checkpoint { path, message }
        }
        other => Error::Unsupported(other.to_string()),
    }
}

fn require_f32(spec: &ModelSpec, opts: &BuildOptions) -> Result<()> {
    if opts.dtype == DType::F32 {
        return Ok(());
    }
    Err(Error::Unsupported(format!(
        "{spec}: rwkv7 computes in f32 (weights of other dtypes are upcast at load); \
         run it with dtype f32, not {}",
        dtype_name(opts.dtype)
    )))
}

/// Builds the model from a preset with random weights.
pub fn from_preset(spec: &ModelSpec, preset: &Preset, opts: &BuildOptions) -> Result<Rwkv7> {
    require_f32(spec, opts)?;
    let specs = rwkv7_specs(preset);
    let tensors = materialise(&specs, opts.seed, DType::F32, &opts.device)?;
    let shapes: CheckpointShapes = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    let cfg = shapes.into_config().map_err(|e| Error::Spec {
        spec: spec.raw.clone(),
        message: e.to_string(),
    })?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &opts.device);
    let model = Model::new(&cfg, vb).map_err(harness_error)?;
    let weights = format!("random (preset {}, seed {})", preset.name, opts.seed);
    build(spec, model, opts, weights, param_count(&specs))
}

/// Builds the model from an official `.pth` (fp32/bf16/fp16) or a safetensors file
/// with the same keys.
pub fn from_path(spec: &ModelSpec, path: &Path, opts: &BuildOptions) -> Result<Rwkv7> {
    require_f32(spec, opts)?;
    let ckpt = rwkv::Checkpoint::load(path, &opts.device).map_err(harness_error)?;
    let cfg = ckpt.config;
    let model = Model::new(&cfg, ckpt.into_var_builder(&opts.device)).map_err(harness_error)?;
    build(
        spec,
        model,
        opts,
        path.display().to_string(),
        cfg.param_count(),
    )
}

fn build(
    spec: &ModelSpec,
    model: Model,
    opts: &BuildOptions,
    weights: String,
    params: u64,
) -> Result<Rwkv7> {
    let cfg = *model.config();
    let state = State::new(&cfg, 1, &opts.device).map_err(harness_error)?;
    let info = ModelInfo {
        spec: spec.raw.clone(),
        arch: Arch::Rwkv,
        implementation: NAME.into(),
        description: DESCRIPTION.into(),
        params,
        layers: cfg.layers,
        width: cfg.width,
        vocab: cfg.vocab,
        dtype: dtype_name(opts.dtype),
        device: device_name(&opts.device),
        weights,
        max_seq_len: None,
        tokenizer: None,
    };
    Ok(Rwkv7 { model, state, info })
}

/// Parameter count of a preset, without building it.
pub fn preset_params(preset: &Preset) -> u64 {
    param_count(&rwkv7_specs(preset))
}

impl Rwkv7 {
    /// Runs `tokens` from the current state; returns `(T', V)` logits.
    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Tensor> {
        if tokens.is_empty() {
            return Err(Error::Unsupported(format!(
                "{}: a forward needs at least one token",
                self.info.spec
            )));
        }
        let device = self.state.layers[0].wkv.device().clone();
        let input = Tensor::new(tokens, &device)?.unsqueeze(0)?;
        let out = self
            .model
            .forward(&input, &mut self.state, logits)
            .map_err(harness_error)?;
        Ok(out.squeeze(0)?)
    }
}

impl CausalLm for Rwkv7 {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn reset(&mut self) -> Result<()> {
        let device = self.state.layers[0].wkv.device().clone();
        self.state = State::new(self.model.config(), 1, &device).map_err(harness_error)?;
        Ok(())
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<Tensor> {
        Ok(self.forward(tokens, Logits::Last)?.squeeze(0)?)
    }

    fn step(&mut self, token: u32) -> Result<Tensor> {
        Ok(self.forward(&[token], Logits::Last)?.squeeze(0)?)
    }

    fn state_bytes(&self) -> usize {
        self.state.bytes()
    }

    /// One batched forward per `LOGITS_CHUNK` positions.
    fn logits_all(&mut self, tokens: &[u32]) -> Result<Tensor> {
        self.reset()?;
        let rows = tokens
            .chunks(LOGITS_CHUNK)
            .map(|chunk| self.forward(chunk, Logits::All))
            .collect::<Result<Vec<_>>>()?;
        if rows.is_empty() {
            let device = self.state.layers[0].wkv.device().clone();
            return Ok(Tensor::zeros((0, self.info.vocab), DType::F32, &device)?);
        }
        Ok(Tensor::cat(&rows, 0)?)
    }

    /// Batched forwards of `LOGITS_CHUNK` positions; each chunk's logits are reduced to
    /// log-probabilities of the next tokens before the next chunk runs.
    fn log_probs(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.reset()?;
        chunked_log_probs(tokens, |chunk| self.forward(chunk, Logits::All))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::token_log_prob;
    use crate::presets::PRESETS;
    use crate::registry;

    #[test]
    fn rwkv_presets_match_the_harness_presets() {
        for p in PRESETS {
            let cfg = rwkv::Config::preset(p.name).unwrap();
            let shapes: CheckpointShapes = rwkv7_specs(p)
                .into_iter()
                .map(|s| (s.name, s.shape))
                .collect();
            assert_eq!(shapes.into_config().unwrap(), cfg, "{}", p.name);
            assert_eq!(cfg.param_count(), preset_params(p), "{}", p.name);
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
        let mut ours = registry::build("rwkv7:preset=tiny", &opts).unwrap();
        let mut theirs = registry::build("rwkv7-upstream:preset=tiny", &opts).unwrap();
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
        let mut m = registry::build("rwkv7:preset=tiny", &BuildOptions::default()).unwrap();
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
    fn bf16_is_refused_with_the_spec_named() {
        let opts = BuildOptions {
            dtype: DType::BF16,
            ..BuildOptions::default()
        };
        let e = registry::build("rwkv7:preset=tiny", &opts)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("rwkv7:preset=tiny") && e.contains("f32"), "{e}");
    }
}
