//! Tokenizers: text to the token ids a model was trained on, so that tasks and
//! perplexity are measured in the model's own tokens.
//!
//! Three kinds, chosen by a [`TokenizerSpec`]:
//! - `world:PATH` — the RWKV "world" vocabulary (`rwkv_vocab_v20230424.txt`), greedy
//!   longest match over UTF-8 bytes ([`world`]);
//! - `hf:PATH` — a Hugging Face `tokenizer.json` ([`hf`]);
//! - `bytes` — one token per byte, for random-weight presets ([`bytes`]).

pub mod bytes;
pub mod hf;
pub mod world;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::{ModelSpec, Source};
use crate::{Error, Result};

/// Text to token ids and back.
pub trait Tokenizer: Send + Sync {
    /// What it is, for records: `bytes`, `world:/path/vocab.txt`, …
    fn describe(&self) -> String;

    /// One more than the largest id `encode` can return.
    fn vocab_size(&self) -> usize;

    /// Token ids of `text` (no special tokens added).
    fn encode(&self, text: &str) -> Result<Vec<u32>>;

    /// The bytes `ids` stand for. Ids the tokenizer does not know are an error.
    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>>;

    /// The text `ids` stand for, with invalid UTF-8 replaced.
    fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }
}

/// Which tokenizer to use, as written after `tokenizer=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum TokenizerSpec {
    /// One token per byte (ids 0..256).
    Bytes,
    /// An RWKV world vocabulary file.
    World(PathBuf),
    /// A Hugging Face `tokenizer.json`.
    Hf(PathBuf),
}

/// The RWKV world vocabulary's file name, looked for beside `.pth` checkpoints.
pub const WORLD_VOCAB_FILE: &str = "rwkv_vocab_v20230424.txt";

impl std::str::FromStr for TokenizerSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let fail = |message: &str| Error::Tokenizer {
            path: PathBuf::from(s),
            message: message.to_string(),
        };
        match s.split_once(':') {
            None if s == "bytes" => Ok(Self::Bytes),
            Some(("world", p)) if !p.is_empty() => Ok(Self::World(p.into())),
            Some(("hf", p)) if !p.is_empty() => Ok(Self::Hf(p.into())),
            _ => Err(fail(
                "expected `bytes`, `world:PATH` (rwkv_vocab_v20230424.txt) or `hf:PATH` (tokenizer.json)",
            )),
        }
    }
}

impl std::fmt::Display for TokenizerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes => f.write_str("bytes"),
            Self::World(p) => write!(f, "world:{}", p.display()),
            Self::Hf(p) => write!(f, "hf:{}", p.display()),
        }
    }
}

impl From<TokenizerSpec> for String {
    fn from(s: TokenizerSpec) -> Self {
        s.to_string()
    }
}

impl TryFrom<String> for TokenizerSpec {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl TokenizerSpec {
    /// Loads the tokenizer.
    pub fn load(&self) -> Result<Box<dyn Tokenizer>> {
        Ok(match self {
            Self::Bytes => Box::new(bytes::ByteTokenizer),
            Self::World(p) => Box::new(world::WorldTokenizer::from_file(p)?),
            Self::Hf(p) => Box::new(hf::HfTokenizer::from_file(p)?),
        })
    }

    /// The tokenizer a model uses when its spec names none: bytes for random-weight
    /// presets, `tokenizer.json` inside a Hugging Face directory, the world vocabulary
    /// beside an RWKV checkpoint.
    pub fn default_for(spec: &ModelSpec) -> Result<Self> {
        let path = match &spec.source {
            Source::Preset(_) => return Ok(Self::Bytes),
            Source::Path(p) => p,
        };
        let beside = |name: &str| -> Option<PathBuf> {
            let dir = if path.is_dir() {
                path.as_path()
            } else {
                path.parent().unwrap_or(Path::new("."))
            };
            let candidate = dir.join(name);
            candidate.is_file().then_some(candidate)
        };
        if let Some(p) = beside("tokenizer.json") {
            return Ok(Self::Hf(p));
        }
        if let Some(p) = beside(WORLD_VOCAB_FILE) {
            return Ok(Self::World(p));
        }
        Err(Error::Spec {
            spec: spec.raw.clone(),
            message: format!(
                "no tokenizer.json or {WORLD_VOCAB_FILE} beside the checkpoint: name one with \
                 `{},tokenizer=hf:PATH` or `,tokenizer=world:PATH`",
                spec.raw
            ),
        })
    }
}

/// Splits `MODEL_SPEC[,tokenizer=TOKENIZER]` into the model spec the registry builds and
/// the tokenizer it names, if any.
pub fn split_model_spec(raw: &str) -> Result<(String, Option<TokenizerSpec>)> {
    match raw.rsplit_once(",tokenizer=") {
        Some((model, tok)) => Ok((model.to_string(), Some(tok.parse()?))),
        None => Ok((raw.to_string(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_and_bad_ones_say_what_is_expected() {
        for s in ["bytes", "world:/v/rwkv_vocab.txt", "hf:dir/tokenizer.json"] {
            assert_eq!(s.parse::<TokenizerSpec>().unwrap().to_string(), s);
        }
        let e = "sentencepiece:x".parse::<TokenizerSpec>().unwrap_err();
        assert!(e.to_string().contains("world:PATH"), "{e}");
        assert!("world:".parse::<TokenizerSpec>().is_err());
    }

    #[test]
    fn model_specs_can_name_their_tokenizer() {
        let (m, t) = split_model_spec("rwkv7:/m/x.pth,tokenizer=world:/m/v.txt").unwrap();
        assert_eq!(m, "rwkv7:/m/x.pth");
        assert_eq!(t, Some(TokenizerSpec::World("/m/v.txt".into())));
        let (m, t) = split_model_spec("llama:preset=tiny").unwrap();
        assert_eq!((m.as_str(), t), ("llama:preset=tiny", None));
    }

    #[test]
    fn presets_default_to_bytes_and_checkpoints_to_the_file_beside_them() {
        let spec: ModelSpec = "llama:preset=tiny".parse().unwrap();
        assert_eq!(
            TokenizerSpec::default_for(&spec).unwrap(),
            TokenizerSpec::Bytes
        );
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("m.pth");
        std::fs::write(&ckpt, b"").unwrap();
        let spec: ModelSpec = format!("rwkv7:{}", ckpt.display()).parse().unwrap();
        let e = TokenizerSpec::default_for(&spec).unwrap_err().to_string();
        assert!(e.contains("tokenizer=world:PATH"), "{e}");
        std::fs::write(dir.path().join(WORLD_VOCAB_FILE), b"").unwrap();
        assert_eq!(
            TokenizerSpec::default_for(&spec).unwrap(),
            TokenizerSpec::World(dir.path().join(WORLD_VOCAB_FILE))
        );
    }
}
