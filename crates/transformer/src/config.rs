//! Model configuration in two layers: [`HfConfig`] mirrors a Hugging Face
//! `config.json` (Llama, Qwen2, Mistral; transformers 4 and 5 layouts), and
//! [`HfConfig::into_config`] resolves it into a plain [`Config`] with every value known.
//!
//! Options this crate does not implement (sliding-window attention, rope types other
//! than default and Llama 3, quantised checkpoints, other activations) are errors that
//! name the key, never silently ignored.

use std::path::Path;

use candle_core::DType;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Llama 3 frequency-dependent rope scaling (`rope_type: "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3RopeScaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

/// Everything the model needs, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Grouped-query attention: query head `j` uses kv head `j / (heads / kv_heads)`.
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3RopeScaling>,
    /// Informational: the model runs past it (rope is computed per position), as
    /// Hugging Face transformers does.
    pub max_position_embeddings: usize,
    /// The output head reuses `model.embed_tokens.weight` (no `lm_head.weight`).
    pub tie_word_embeddings: bool,
    /// Biases on the q, k and v projections (Qwen2, or Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on the output projection (Llama's `attention_bias`; never Qwen2).
    pub o_bias: bool,
    /// Biases on gate, up and down projections (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    /// The dtype the checkpoint says it stores (`torch_dtype` / `dtype`), if it says.
    pub checkpoint_dtype: Option<DType>,
}

impl Config {
    /// A small Llama for tests (L4, D128, 2 heads, vocab 512; untied head, no biases,
    /// rope theta 1e4, eps 1e-5).
    pub fn tiny() -> Self {
        Self {
            vocab_size: 512,
            hidden_size: 128,
            intermediate_size: 392,
            num_hidden_layers: 4,
            num_attention_heads: 2,
            num_key_value_heads: 2,
            head_dim: 64,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            max_position_embeddings: 8192,
            tie_word_embeddings: false,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            checkpoint_dtype: None,
        }
    }

    /// Reads and resolves a Hugging Face `config.json`; errors name the file and key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|e| match e {
            Error::ConfigKey { .. } | Error::Unsupported(_) => Error::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            },
            other => other,
        })
    }

    /// Parses and resolves the text of a `config.json`.
    pub fn from_json(text: &str) -> Result<Self> {
        let raw: HfConfig = serde_json::from_str(text)
            .map_err(|e| Error::Unsupported(format!("not a Llama-family config.json: {e}")))?;
        raw.into_config()
    }

    /// A `config.json` in the transformers-4 layout that [`Config::from_json`] and
    /// Hugging Face transformers both read back as this config: `qwen2` for q/k/v biases
    /// without an output bias, `llama` otherwise.
    pub fn to_hf_json(&self) -> Value {
        let qwen2 = self.qkv_bias && !self.o_bias;
        let (arch, model_type) = if qwen2 {
            ("Qwen2ForCausalLM", "qwen2")
        } else {
            ("LlamaForCausalLM", "llama")
        };
        let mut cfg = serde_json::json!({
            "architectures": [arch],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": self.rope_scaling.as_ref().map(|r| serde_json::json!({
                "rope_type": "llama3",
                "factor": r.factor,
                "low_freq_factor": r.low_freq_factor,
                "high_freq_factor": r.high_freq_factor,
                "original_max_position_embeddings": r.original_max_position_embeddings,
            })),
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float32",
        });
        if !qwen2 {
            cfg["attention_bias"] = Value::Bool(self.qkv_bias);
            cfg["mlp_bias"] = Value::Bool(self.mlp_bias);
        } else {
            cfg["use_sliding_window"] = Value::Bool(false);
        }
        cfg
    }

    /// Query heads per kv head.
    pub fn kv_groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// Number of parameters (the output head counted once when tied).
    pub fn param_count(&self) -> u64 {
        let (d, v, i) = (self.hidden_size, self.vocab_size, self.intermediate_size);
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let mut layer = d * q + 2 * d * kv + q * d + 3 * d * i + 2 * d;
        if self.qkv_bias {
            layer += q + 2 * kv;
        }
        if self.o_bias {
            layer += d;
        }
        if self.mlp_bias {
            layer += 2 * i + d;
        }
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        (v * d + self.num_hidden_layers * layer + d + head) as u64
    }

    /// Checks the invariants the model relies on; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(Error::key(key, "must be positive"));
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(Error::key(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads = {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(Error::key(
                "head_dim",
                format!(
                    "{} is odd; rotary embeddings need an even width",
                    self.head_dim
                ),
            ));
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return Err(Error::key("rms_norm_eps", "must be positive"));
        }
        if self.rope_theta.is_nan() || self.rope_theta <= 0.0 {
            return Err(Error::key("rope_theta", "must be positive"));
        }
        Ok(())
    }
}

/// A Hugging Face `config.json` as written by transformers 4 (`rope_theta`,
/// `torch_dtype`) or 5 (`rope_parameters.rope_theta`, `dtype`). Keys that do not change
/// the math of inference (token ids, `use_cache`, init ranges, ...) are not read.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    pub rope_theta: Option<f64>,
    /// transformers 4: `null`, or `{"rope_type"|"type": ..., "factor": ..., ...}`.
    pub rope_scaling: Option<Map<String, Value>>,
    /// transformers 5: `{"rope_type": ..., "rope_theta": ..., ...}`.
    pub rope_parameters: Option<Map<String, Value>>,
    pub max_position_embeddings: Option<usize>,
    pub tie_word_embeddings: Option<bool>,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    pub hidden_act: Option<String>,
    pub torch_dtype: Option<String>,
    pub dtype: Option<String>,
    pub sliding_window: Option<Value>,
    pub use_sliding_window: Option<bool>,
    pub layer_types: Option<Vec<String>>,
    pub partial_rotary_factor: Option<f64>,
    pub quantization_config: Option<Value>,
}

/// The `model_type`s whose math this crate implements.
const MODEL_TYPES: &[&str] = &["llama", "qwen2", "mistral"];

fn dtype_from_name(key: &str, name: &str) -> Result<DType> {
    match name {
        "float32" => Ok(DType::F32),
        "bfloat16" => Ok(DType::BF16),
        "float16" => Ok(DType::F16),
        other => Err(Error::key(
            key,
            format!("unsupported dtype `{other}` (float32, bfloat16 or float16)"),
        )),
    }
}

fn number(map: &Map<String, Value>, section: &str, key: &str) -> Result<f64> {
    map.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| Error::key(format!("{section}.{key}"), "missing or not a number"))
}

/// Reads a rope section (`rope_scaling` or `rope_parameters`) into an optional Llama 3
/// scaling; any other rope type is an error naming the key.
fn rope_section(section: &str, map: &Map<String, Value>) -> Result<Option<Llama3RopeScaling>> {
    let (type_key, rope_type) = match (map.get("rope_type"), map.get("type")) {
        (Some(t), _) => ("rope_type", t),
        (None, Some(t)) => ("type", t),
        (None, None) if section == "rope_parameters" => return Ok(None),
        (None, None) => {
            return Err(Error::key(
                format!("{section}.rope_type"),
                "missing: cannot tell which rope scaling this is",
            ))
        }
    };
    match rope_type.as_str() {
        Some("default") => Ok(None),
        Some("llama3") => {
            let original = number(map, section, "original_max_position_embeddings")?;
            let scaling = Llama3RopeScaling {
                factor: number(map, section, "factor")?,
                low_freq_factor: number(map, section, "low_freq_factor")?,
                high_freq_factor: number(map, section, "high_freq_factor")?,
                original_max_position_embeddings: original as usize,
            };
            let valid = scaling.factor > 0.0
                && scaling.high_freq_factor > scaling.low_freq_factor
                && scaling.original_max_position_embeddings > 0;
            if !valid {
                return Err(Error::key(
                    section,
                    "llama3 scaling needs factor > 0, high_freq_factor > low_freq_factor \
                     and original_max_position_embeddings > 0",
                ));
            }
            Ok(Some(scaling))
        }
        _ => Err(Error::key(
            format!("{section}.{type_key}"),
            format!("unsupported rope type {rope_type} (supported: default, llama3)"),
        )),
    }
}

impl HfConfig {
    /// Resolves every value, rejecting options this crate does not implement.
    pub fn into_config(self) -> Result<Config> {
        let model_type = self.model_type.as_deref().unwrap_or("llama");
        if !MODEL_TYPES.contains(&model_type) {
            return Err(Error::key(
                "model_type",
                format!(
                    "`{model_type}` is not supported (supported: {})",
                    MODEL_TYPES.join(", ")
                ),
            ));
        }
        if self.quantization_config.is_some() {
            return Err(Error::key(
                "quantization_config",
                "quantised checkpoints are not supported",
            ));
        }
        if let Some(act) = self.hidden_act.as_deref() {
            if act != "silu" && act != "swish" {
                return Err(Error::key(
                    "hidden_act",
                    format!("`{act}` is not supported (silu only)"),
                ));
            }
        }
        if let Some(f) = self.partial_rotary_factor {
            if f != 1.0 {
                return Err(Error::key(
                    "partial_rotary_factor",
                    format!("{f} is not supported (rotary embeddings over the full head only)"),
                ));
            }
        }
        // Qwen2 uses a sliding window only when `use_sliding_window` is set; Mistral
        // whenever `sliding_window` is not null.
        if self.use_sliding_window == Some(true) {
            return Err(Error::key(
                "use_sliding_window",
                "sliding-window attention is not supported",
            ));
        }
        let window = self.sliding_window.as_ref().filter(|v| !v.is_null());
        if model_type == "mistral" {
            if let Some(w) = window {
                return Err(Error::key(
                    "sliding_window",
                    format!("sliding-window attention ({w}) is not supported; only Mistral checkpoints with `sliding_window: null`"),
                ));
            }
        }
        if let Some(kinds) = &self.layer_types {
            if let Some(other) = kinds.iter().find(|k| k.as_str() != "full_attention") {
                return Err(Error::key(
                    "layer_types",
                    format!("`{other}` layers are not supported (full_attention only)"),
                ));
            }
        }

        let params_theta = match &self.rope_parameters {
            Some(p) => match p.get("rope_theta") {
                Some(v) => Some(
                    v.as_f64()
                        .ok_or_else(|| Error::key("rope_parameters.rope_theta", "not a number"))?,
                ),
                None => None,
            },
            None => None,
        };
        let rope_theta = match (self.rope_theta, params_theta) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::key(
                    "rope_theta",
                    format!("{a} disagrees with rope_parameters.rope_theta = {b}"),
                ))
            }
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => 10_000.0,
        };
        let mut rope_scaling = None;
        if let Some(p) = &self.rope_parameters {
            rope_scaling = rope_section("rope_parameters", p)?;
        }
        if let Some(s) = &self.rope_scaling {
            if let Some(scaling) = rope_section("rope_scaling", s)? {
                if rope_scaling.is_some_and(|r| r != scaling) {
                    return Err(Error::key("rope_scaling", "disagrees with rope_parameters"));
                }
                rope_scaling = Some(scaling);
            }
        }

        let checkpoint_dtype = match (&self.dtype, &self.torch_dtype) {
            (Some(d), _) => Some(dtype_from_name("dtype", d)?),
            (None, Some(d)) => Some(dtype_from_name("torch_dtype", d)?),
            (None, None) => None,
        };

        if self.num_attention_heads == 0 {
            return Err(Error::key("num_attention_heads", "must be positive"));
        }
        let head_dim = match self.head_dim {
            Some(hd) => hd,
            None if self.hidden_size.is_multiple_of(self.num_attention_heads) => {
                self.hidden_size / self.num_attention_heads
            }
            None => {
                return Err(Error::key(
                    "num_attention_heads",
                    format!(
                        "{} does not divide hidden_size = {} and there is no head_dim",
                        self.num_attention_heads, self.hidden_size
                    ),
                ))
            }
        };
        let attention_bias = self.attention_bias.unwrap_or(false);
        let (qkv_bias, o_bias) = if model_type == "qwen2" {
            (true, false)
        } else {
            (attention_bias, attention_bias)
        };
        let cfg = Config {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings: self.max_position_embeddings.unwrap_or(2048),
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
            qkv_bias,
            o_bias,
            mlp_bias: self.mlp_bias.unwrap_or(false),
            checkpoint_dtype,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#""vocab_size": 128, "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5"#;

    fn parse(extra: &str) -> Result<Config> {
        let sep = if extra.is_empty() { "" } else { "," };
        Config::from_json(&format!("{{{BASE}{sep}{extra}}}"))
    }

    #[test]
    fn defaults_follow_transformers() {
        let c = parse("").unwrap();
        assert_eq!(c.rope_theta, 10_000.0);
        assert_eq!(c.head_dim, 16);
        assert!(!c.tie_word_embeddings && !c.qkv_bias && !c.o_bias && !c.mlp_bias);
        assert_eq!(c.kv_groups(), 2);
    }

    #[test]
    fn llama3_scaling_is_read_from_either_layout() {
        let fields = r#""factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192"#;
        let v4 = parse(&format!(
            r#""rope_theta": 500000.0, "rope_scaling": {{"rope_type": "llama3", {fields}}}"#
        ))
        .unwrap();
        let v5 = parse(&format!(
            r#""rope_parameters": {{"rope_type": "llama3", "rope_theta": 500000.0, {fields}}}"#
        ))
        .unwrap();
        assert_eq!(v4, v5);
        assert_eq!(v4.rope_scaling.unwrap().factor, 8.0);
        assert_eq!(v4.rope_theta, 500000.0);
    }

    #[test]
    fn head_dim_must_divide_when_absent() {
        let e = Config::from_json(
            r#"{"vocab_size": 8, "hidden_size": 10, "intermediate_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 3, "rms_norm_eps": 1e-5}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("num_attention_heads"), "{e}");
    }

    #[test]
    fn tiny_is_valid() {
        Config::tiny().validate().unwrap();
    }
}
