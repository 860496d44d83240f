//! What a measured model is, recorded in every results file so nobody mistakes a slow
//! baseline for an architectural win.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::ModelSpec;

/// The architecture family, which decides how models are paired in comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// A recurrent model with constant-size state (RWKV).
    Rwkv,
    /// An attention model with a KV cache that grows with the context.
    Transformer,
}

impl Arch {
    /// Whether the model's state stays the same size at every context length: such a
    /// model is the candidate of a comparison, an attention model its baseline.
    pub fn constant_state(self) -> bool {
        matches!(self, Arch::Rwkv)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::Rwkv => "rwkv",
            Arch::Transformer => "transformer",
        })
    }
}

/// Where a model's weights came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WeightsRepr", tag = "kind", rename_all = "snake_case")]
pub enum Weights {
    /// Random weights shaped like a preset: fine for speed and memory, chance level for
    /// accuracy.
    Random { preset: String, seed: u64 },
    /// A checkpoint file or directory.
    Checkpoint { path: PathBuf },
}

impl Weights {
    pub fn is_random(&self) -> bool {
        matches!(self, Weights::Random { .. })
    }
}

impl std::fmt::Display for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Weights::Random { preset, seed } => {
                write!(f, "random (preset {preset}, seed {seed})")
            }
            Weights::Checkpoint { path } => write!(f, "{}", path.display()),
        }
    }
}

/// The tagged form, as written since schema 2.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Tagged {
    Random { preset: String, seed: u64 },
    Checkpoint { path: PathBuf },
}

/// Schema 1 wrote the weights as the sentence [`Weights`] displays.
#[derive(Deserialize)]
#[serde(untagged)]
enum WeightsRepr {
    Tagged(Tagged),
    Legacy(String),
}

impl TryFrom<WeightsRepr> for Weights {
    type Error = String;

    fn try_from(r: WeightsRepr) -> Result<Self, String> {
        Ok(match r {
            WeightsRepr::Tagged(Tagged::Random { preset, seed }) => {
                Weights::Random { preset, seed }
            }
            WeightsRepr::Tagged(Tagged::Checkpoint { path }) => Weights::Checkpoint { path },
            WeightsRepr::Legacy(s) => {
                let random = s
                    .strip_prefix("random (preset ")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|r| r.split_once(", seed "))
                    .and_then(|(p, seed)| Some((p.to_string(), seed.parse().ok()?)));
                match random {
                    Some((preset, seed)) => Weights::Random { preset, seed },
                    None if s.starts_with("random") => {
                        return Err(format!("unreadable random-weights description `{s}`"))
                    }
                    None => Weights::Checkpoint { path: s.into() },
                }
            }
        })
    }
}

/// What a model is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The spec it was built from, e.g. `rwkv7-upstream:preset=0.1b`.
    pub spec: ModelSpec,
    pub arch: Arch,
    /// The registry name, e.g. `llama-upstream`.
    pub implementation: String,
    /// The version of an implementation that is not this build's own code (a peer
    /// running in another runtime): e.g. `rwkv 0.8.32, torch 2.15.0` or llama.cpp's
    /// `build 0c1e570 (7100)`. Absent for the implementations compiled into this
    /// binary, whose version is the tool's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What the implementation does, in a sentence (prefill strategy, cache strategy).
    pub description: String,
    pub params: u64,
    pub layers: usize,
    pub width: usize,
    pub vocab: usize,
    pub dtype: String,
    pub device: String,
    pub weights: Weights,
    /// The longest context the implementation supports, where it has a limit.
    pub max_seq_len: Option<usize>,
    /// The tokenizer accuracy tasks were generated and scored with (evaluations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// Whether the output head is the embedding table (it is then read every step).
    #[serde(default)]
    pub tied_embeddings: bool,
    /// Bytes the weights take as stored (`dtype`), where the implementation knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_bytes: Option<u64>,
}

impl ModelInfo {
    /// The implementation as tables name it: `llama-upstream`, or with the version of a
    /// peer outside this build, `llama-hf (transformers 5.24.0, torch 2.15.0)`.
    pub fn implementation_label(&self) -> String {
        match &self.version {
            Some(v) => format!("{} ({v})", self.implementation),
            None => self.implementation.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_read_both_the_tagged_and_the_schema_1_form() {
        let random = Weights::Random {
            preset: "0.1b".into(),
            seed: 3,
        };
        let json = serde_json::to_string(&random).unwrap();
        assert_eq!(json, r#"{"kind":"random","preset":"0.1b","seed":3}"#);
        assert_eq!(serde_json::from_str::<Weights>(&json).unwrap(), random);
        let legacy: Weights = serde_json::from_str("\"random (preset 0.1b, seed 3)\"").unwrap();
        assert_eq!(legacy, random);
        assert_eq!(legacy.to_string(), "random (preset 0.1b, seed 3)");
        let path: Weights = serde_json::from_str("\"/m/rwkv7.pth\"").unwrap();
        assert_eq!(
            path,
            Weights::Checkpoint {
                path: "/m/rwkv7.pth".into()
            }
        );
        assert!(!path.is_random() && random.is_random());
    }
}
