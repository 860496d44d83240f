//! What a model implementation is: one file under `adapters/` implements this trait,
//! and one line in [`crate::registry::REGISTRY`] makes it runnable by name.

use std::path::Path;

use candle_core::{DType, Device};
use kernels::WeightDtype;
use results::{Arch, ModelInfo, ModelSpec, Weights};

use crate::model::CausalLm;
use crate::presets::Preset;
use crate::synthetic::{param_count, specs};
use crate::trainable::Differentiable;
use crate::{Error, Result};

/// What every implementation needs to build a model.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// How weight matrices are stored (a spec's `dtype=` overrides it).
    pub dtype: WeightDtype,
    pub device: Device,
    /// Seed for random preset weights.
    pub seed: u64,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            dtype: WeightDtype::F32,
            device: Device::Cpu,
            seed: 0,
        }
    }
}

/// The weight dtype of a suite's dtype.
pub fn weight_dtype(d: results::suite::Dtype) -> WeightDtype {
    use results::suite::Dtype;
    match d {
        Dtype::F32 => WeightDtype::F32,
        Dtype::Bf16 => WeightDtype::Bf16,
        Dtype::F16 => WeightDtype::F16,
        Dtype::Q8_0 => WeightDtype::Q8_0,
        Dtype::Q4K => WeightDtype::Q4K,
    }
}

impl BuildOptions {
    /// Training keeps f32 master weights: other storage types are for inference.
    pub fn require_f32(&self, spec: &ModelSpec) -> Result<()> {
        if self.dtype == WeightDtype::F32 {
            return Ok(());
        }
        Err(Error::Unsupported(format!(
            "{spec}: training keeps f32 weights; train with dtype f32, not {}",
            self.dtype
        )))
    }

    /// The dtype an implementation that computes in its weights' dtype (candle's
    /// models) runs in: an error for the quantised dtypes.
    pub fn compute_dtype(&self, spec: &ModelSpec, name: &str) -> Result<DType> {
        self.dtype.dense().ok_or_else(|| {
            Error::spec(
                spec,
                format!(
                    "`{name}` has no {} weights (it computes in its weights' dtype: f32, bf16 \
                     or f16); quantised weights take rwkv7 and llama",
                    self.dtype
                ),
            )
        })
    }
}

/// `"cpu"`, `"cuda:0"`, … for records.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// The size of a built model, for its [`ModelInfo`].
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub params: u64,
    pub layers: usize,
    pub width: usize,
    pub vocab: usize,
    /// Whether the output head is the embedding table.
    pub tied_embeddings: bool,
}

/// What an implementation is, stated once.
#[derive(Debug)]
pub struct About {
    /// The name specs use before the colon, e.g. `llama-upstream`.
    pub name: &'static str,
    pub arch: Arch,
    /// What the implementation does, in a sentence (prefill strategy, cache strategy),
    /// so nobody mistakes a slow baseline for an architectural win.
    pub description: &'static str,
}

/// Where an implementation's cells run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Built by this binary, measured in a child process of this binary.
    Native,
    /// Measured by `scripts/peers/cell.py` under a Python interpreter (PyTorch peers).
    Python,
}

/// A model implementation the harness can run.
pub trait Implementation: Sync {
    fn about(&self) -> &'static About;

    /// Where its cells run.
    fn runtime(&self) -> Runtime {
        Runtime::Native
    }

    fn name(&self) -> &'static str {
        self.about().name
    }

    fn arch(&self) -> Arch {
        self.about().arch
    }

    fn description(&self) -> &'static str {
        self.about().description
    }

    /// Parameter count of a preset, without building it: its synthetic weights are the
    /// family's checkpoint layout at the preset's shape.
    fn preset_params(&self, preset: &Preset) -> u64 {
        param_count(&specs(self.arch(), preset))
    }

    /// The longest context the implementation supports at a preset's shape, where it
    /// has a limit.
    fn preset_max_seq_len(&self, _preset: &Preset) -> Option<usize> {
        None
    }

    /// Random weights shaped like `preset`, seeded by `opts.seed`.
    fn build_from_preset(
        &self,
        spec: &ModelSpec,
        preset: &Preset,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>>;

    /// Weights from a checkpoint file or directory.
    fn build_from_path(
        &self,
        spec: &ModelSpec,
        path: &Path,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>>;

    /// Whether [`Implementation::build_trainable`] builds models (a backward pass).
    fn trains(&self) -> bool {
        false
    }

    /// Whether specs may choose the KV cache's dtype (`kv_dtype=f16`).
    fn kv_dtypes(&self) -> bool {
        false
    }

    /// A trainable model from a preset's random weights or a checkpoint; an error for
    /// implementations without a backward pass.
    fn build_trainable(
        &self,
        spec: &ModelSpec,
        source: &TrainSource<'_>,
        opts: &BuildOptions,
    ) -> Result<Box<dyn Differentiable>> {
        let _ = (source, opts);
        Err(Error::spec(
            spec,
            format!(
                "`{}` has no backward pass (training and `grad` take rwkv7 and llama)",
                self.name()
            ),
        ))
    }

    /// The description of a model this implementation built.
    fn info(
        &self,
        spec: &ModelSpec,
        shape: Shape,
        opts: &BuildOptions,
        weights: Weights,
        max_seq_len: Option<usize>,
    ) -> ModelInfo {
        ModelInfo {
            spec: spec.clone(),
            version: None,
            arch: self.arch(),
            implementation: self.name().into(),
            description: self.description().into(),
            params: shape.params,
            layers: shape.layers,
            width: shape.width,
            vocab: shape.vocab,
            dtype: opts.dtype.name().into(),
            device: device_name(&opts.device),
            weights,
            max_seq_len,
            tokenizer: None,
            tied_embeddings: shape.tied_embeddings,
            // Dense weights all in one dtype; builds that know better say so.
            weight_bytes: opts
                .dtype
                .dense()
                .map(|d| shape.params * d.size_in_bytes() as u64),
        }
    }
}

/// Where a trainable model's initial weights come from.
pub enum TrainSource<'a> {
    Preset(&'a Preset),
    Path(&'a Path),
}

/// The weights description of a preset built with `opts`.
pub fn random_weights(preset: &Preset, opts: &BuildOptions) -> Weights {
    Weights::Random {
        preset: preset.name.into(),
        seed: opts.seed,
    }
}

/// The weights description of a checkpoint.
pub fn checkpoint_weights(path: &Path) -> Weights {
    Weights::Checkpoint {
        path: path.to_path_buf(),
    }
}
