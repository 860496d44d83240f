//! Peers outside candle: the official `rwkv` package and Hugging Face transformers on
//! PyTorch. They run in a Python child process (`scripts/peers/cell.py`) that speaks
//! the cell protocol of `rwkv-bench cell` (a plan as JSON on stdin, events as JSON
//! lines on stdout), so a suite measures them exactly as it measures ours: same
//! prompts, same sampling, same isolation, same memory readings. This binary never
//! builds them; the child describes what it ran, with its package versions.

use std::path::Path;

use results::{Arch, ModelSpec};

use crate::implementation::{About, BuildOptions, Implementation, Runtime};
use crate::model::CausalLm;
use crate::presets::Preset;
use crate::{Error, Result};

/// The official `rwkv` package, `rwkv7-official` in specs.
pub struct OfficialRwkv7Impl;

/// Hugging Face transformers' `LlamaForCausalLM`, `llama-hf` in specs.
pub struct HfLlamaImpl;

const OFFICIAL_RWKV7: About = About {
    name: "rwkv7-official",
    arch: Arch::Rwkv,
    description: "the official rwkv package (BlinkDL, PyPI) on PyTorch, cpu fp32, in a Python \
     child process (scripts/peers/cell.py)",
};

const HF_LLAMA: About = About {
    name: "llama-hf",
    arch: Arch::Transformer,
    description: "Hugging Face transformers LlamaForCausalLM on PyTorch, f32, SDPA attention, \
     DynamicCache, in a Python child process (scripts/peers/cell.py)",
};

fn in_python(spec: &ModelSpec) -> Error {
    Error::spec(
        spec,
        "runs in a Python child process (scripts/peers/cell.py), not in this binary: \
         measure it with `rwkv-bench run` and --python"
            .to_string(),
    )
}

macro_rules! python_peer {
    ($ty:ty, $about:expr, $max:expr) => {
        impl Implementation for $ty {
            fn about(&self) -> &'static About {
                &$about
            }

            fn runtime(&self) -> Runtime {
                Runtime::Python
            }

            fn preset_max_seq_len(&self, preset: &Preset) -> Option<usize> {
                $max(preset)
            }

            fn build_from_preset(
                &self,
                spec: &ModelSpec,
                _: &Preset,
                _: &BuildOptions,
            ) -> Result<Box<dyn CausalLm>> {
                Err(in_python(spec))
            }

            fn build_from_path(
                &self,
                spec: &ModelSpec,
                _: &Path,
                _: &BuildOptions,
            ) -> Result<Box<dyn CausalLm>> {
                Err(in_python(spec))
            }
        }
    };
}

python_peer!(OfficialRwkv7Impl, OFFICIAL_RWKV7, |_: &Preset| None);
python_peer!(HfLlamaImpl, HF_LLAMA, |p: &Preset| Some(
    p.llama.max_position_embeddings
));
