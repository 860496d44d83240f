//! One llama-bench test as read from a line of its JSONL output, and what it says
//! about the model, the build and the settings it ran with.

use std::path::PathBuf;

use crate::model_info::Arch;
use crate::spec::{ModelSpec, Source};
use crate::{Error, Result};

use super::*;

/// The line a test was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}", self.file.display(), self.line)
    }
}

impl Origin {
    /// An error about this line.
    pub(super) fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::Results {
            path: self.file.clone(),
            message: format!("line {}: {message}", self.line),
        }
    }
}

/// One llama-bench test, as its line wrote it. Fields that some builds do not write are
/// `Option`s.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub origin: Origin,
    /// The short git commit of the llama.cpp build, e.g. `0c1e5709`.
    pub build_commit: String,
    pub build_number: Option<u64>,
    /// The CPU as the CPU backend names it (`/proc/cpuinfo`'s model name on Linux),
    /// followed by any accelerator devices, comma-separated.
    pub cpu_info: String,
    pub gpu_info: String,
    pub backends: Option<String>,
    /// The model path as given to llama-bench's `-m`.
    pub model_filename: String,
    /// llama.cpp's description: architecture, size class, file type, e.g.
    /// `llama ?B Q4_K - Medium`.
    pub model_type: String,
    /// Bytes of the weights.
    pub model_size: Option<u64>,
    pub model_n_params: Option<u64>,
    pub n_batch: Option<u64>,
    pub n_ubatch: Option<u64>,
    pub n_threads: Option<usize>,
    pub n_gpu_layers: Option<i64>,
    /// KV cache storage types; `f16` where a build does not say.
    pub type_k: String,
    pub type_v: String,
    /// `on`, `off` or `auto` (older builds write a bool, newer -1/0/1).
    pub flash_attn: Option<String>,
    pub n_prompt: usize,
    pub n_gen: usize,
    pub n_depth: usize,
    pub test_time: Option<String>,
    /// Wall time of each repetition, ns.
    pub samples_ns: Vec<f64>,
}

impl Test {
    /// llama-bench's name of the test: `pp512`, `tg128`, `pp512+tg128`, `… @ d4096`.
    pub fn name(&self) -> String {
        let mut s = match (self.n_prompt, self.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, g) => format!("tg{g}"),
            (p, g) => format!("pp{p}+tg{g}"),
        };
        if self.n_depth > 0 {
            s.push_str(&format!(" @ d{}", self.n_depth));
        }
        s
    }

    /// The GGUF architecture name: `model_type`'s first word (`llama`, `rwkv7`).
    pub fn arch_name(&self) -> &str {
        self.model_type.split_whitespace().next().unwrap_or("")
    }

    /// Every RWKV generation (`rwkv6`, `rwkv7`, and the hybrids `rwkv6qwen2`,
    /// `arwkv7`) keeps a constant-size state; anything else is an attention model.
    pub fn arch(&self) -> Arch {
        if self.arch_name().to_ascii_lowercase().contains("rwkv") {
            Arch::Rwkv
        } else {
            Arch::Transformer
        }
    }

    /// The weights' main storage type, from `model_type`'s file type.
    pub fn dtype(&self) -> String {
        let ftype: Vec<&str> = self.model_type.split_whitespace().skip(2).collect();
        quant_name(&ftype.join(" "))
    }

    /// The model spec of the test's model: `llama.cpp:PATH`, with `type_k=` /
    /// `type_v=` when its KV cache is not f16 (such a cache is another cell).
    pub fn spec(&self) -> Result<ModelSpec> {
        let mut options = Vec::new();
        for (key, value) in [("type_k", &self.type_k), ("type_v", &self.type_v)] {
            if value != "f16" {
                options.push((key.to_string(), value.clone()));
            }
        }
        let spec = ModelSpec {
            implementation: IMPLEMENTATION.into(),
            source: Source::Path(PathBuf::from(&self.model_filename)),
            tokenizer: None,
            options,
        };
        // Results store a spec as its string: one that would read back as another
        // model must not be written.
        if spec.to_string().parse::<ModelSpec>().ok().as_ref() != Some(&spec) {
            return Err(self.origin.error(format!(
                "model_filename `{}` cannot be written as a model spec (`,key=value` in the \
                 path?)",
                self.model_filename
            )));
        }
        Ok(spec)
    }

    /// The device the test ran on: the CPU unless layers were offloaded to a GPU.
    pub fn device(&self) -> String {
        let offloaded = self.n_gpu_layers.is_none_or(|n| n != 0);
        match &self.backends {
            Some(b) if offloaded && !self.gpu_info.trim().is_empty() => b.to_lowercase(),
            _ => "cpu".into(),
        }
    }

    /// `build 0c1e5709 (7100)`: reports show it after the implementation's name.
    pub fn version(&self) -> String {
        match self.build_number {
            Some(n) => format!("build {} ({n})", self.build_commit),
            None => format!("build {}", self.build_commit),
        }
    }

    /// The settings that describe the model's runs, as (name, value): two tests of one
    /// model spec must agree on them to share its description.
    pub(super) fn settings(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        vec![
            ("build", self.version()),
            ("model_type", self.model_type.clone()),
            ("model_size", opt(self.model_size.map(|v| v.to_string()))),
            (
                "model_n_params",
                opt(self.model_n_params.map(|v| v.to_string())),
            ),
            ("n_threads", opt(self.n_threads.map(|v| v.to_string()))),
            ("n_batch", opt(self.n_batch.map(|v| v.to_string()))),
            ("n_ubatch", opt(self.n_ubatch.map(|v| v.to_string()))),
            ("flash_attn", opt(self.flash_attn.clone())),
            ("backends", opt(self.backends.clone())),
            ("device", self.device()),
        ]
    }

    /// One sentence of how llama-bench ran the model (the build is the model's
    /// `version`).
    pub(super) fn description(&self) -> String {
        let mut parts = vec!["llama.cpp's llama-bench".to_string()];
        if let Some(t) = self.n_threads {
            parts.push(format!("{t} threads"));
        }
        match (self.n_batch, self.n_ubatch) {
            (Some(b), Some(u)) => parts.push(format!("batch {b} / ubatch {u}")),
            (Some(b), None) => parts.push(format!("batch {b}")),
            _ => {}
        }
        parts.push(format!("KV cache {}/{}", self.type_k, self.type_v));
        if let Some(fa) = &self.flash_attn {
            parts.push(format!("flash attention {fa}"));
        }
        if let Some(b) = &self.backends {
            parts.push(format!("backends {b}"));
        }
        parts.push(format!("`{}`", self.model_type));
        format!(
            "{}; a decode sample is the mean step of a tg test's tokens from its depth on",
            parts.join(", ")
        )
    }
}

/// A short lowercase name of llama.cpp's file type, the storage of most weights:
/// `Q4_K - Medium` → `q4_k`, `Q8_0` → `q8_0`, `all F32` → `f32`, `IQ4_NL - 4.5 bpw` →
/// `iq4_nl` (the names `kernels::ggml_name` gives GGUF storage).
pub fn quant_name(ftype: &str) -> String {
    let s = ftype.trim();
    let s = s.strip_suffix("(guessed)").unwrap_or(s).trim();
    let head = s.split(" - ").next().unwrap_or(s).trim();
    let head = head.strip_prefix("all ").unwrap_or(head);
    match head.split_whitespace().next() {
        Some(name) => name.to_lowercase(),
        None => "unknown".into(),
    }
}
