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

use results::{ModelSpec, Source, TokenizerSpec};

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

/// The RWKV world vocabulary's file name, looked for beside `.pth` checkpoints.
pub const WORLD_VOCAB_FILE: &str = "rwkv_vocab_v20230424.txt";

/// Loads the tokenizer a spec names.
pub fn load(spec: &TokenizerSpec) -> Result<Box<dyn Tokenizer>> {
    Ok(match spec {
        TokenizerSpec::Bytes => Box::new(bytes::ByteTokenizer),
        TokenizerSpec::World(p) => Box::new(world::WorldTokenizer::from_file(p)?),
        TokenizerSpec::Hf(p) => Box::new(hf::HfTokenizer::from_file(p)?),
    })
}

/// The tokenizer a model uses when its spec names none: bytes for random-weight
/// presets, `tokenizer.json` inside a Hugging Face directory, the world vocabulary
/// beside an RWKV checkpoint.
pub fn default_for(spec: &ModelSpec) -> Result<TokenizerSpec> {
    let shipped;
    let path = match &spec.source {
        Source::Preset(_) => return Ok(TokenizerSpec::Bytes),
        Source::Path(p) => p,
        Source::Pretrained(name) => {
            let arch = crate::registry::resolve(spec)?.arch();
            shipped = crate::pretrained::path(spec, arch, name)?;
            &shipped
        }
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
        return Ok(TokenizerSpec::Hf(p));
    }
    if let Some(p) = beside(WORLD_VOCAB_FILE) {
        return Ok(TokenizerSpec::World(p));
    }
    Err(Error::spec(
        spec,
        format!(
            "no tokenizer.json or {WORLD_VOCAB_FILE} beside the checkpoint: name one with \
                 `{spec},tokenizer=hf:PATH` or `,tokenizer=world:PATH`"
        ),
    ))
}

/// The tokenizer a spec names, or the model's own.
pub fn for_model(spec: &ModelSpec) -> Result<TokenizerSpec> {
    match &spec.tokenizer {
        Some(t) => Ok(t.clone()),
        None => default_for(spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_default_to_bytes_and_checkpoints_to_the_file_beside_them() {
        let spec: ModelSpec = "llama:preset=tiny".parse().unwrap();
        assert_eq!(default_for(&spec).unwrap(), TokenizerSpec::Bytes);
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("m.pth");
        std::fs::write(&ckpt, b"").unwrap();
        let spec: ModelSpec = format!("rwkv7:{}", ckpt.display()).parse().unwrap();
        let e = default_for(&spec).unwrap_err().to_string();
        assert!(e.contains("tokenizer=world:PATH"), "{e}");
        std::fs::write(dir.path().join(WORLD_VOCAB_FILE), b"").unwrap();
        assert_eq!(
            default_for(&spec).unwrap(),
            TokenizerSpec::World(dir.path().join(WORLD_VOCAB_FILE))
        );
    }
}
