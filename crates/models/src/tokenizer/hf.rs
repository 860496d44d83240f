//! Hugging Face `tokenizer.json`, through the `tokenizers` crate.

use std::path::{Path, PathBuf};

use super::Tokenizer;
use crate::{Error, Result};

/// A `tokenizer.json` (BPE, WordPiece, Unigram, … as the file says).
pub struct HfTokenizer {
    path: PathBuf,
    inner: tokenizers::Tokenizer,
}

impl HfTokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Tokenizer {
                path: path.to_path_buf(),
                message: "no such file".into(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: format!("not a usable tokenizer.json: {e}"),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            inner,
        })
    }

    fn error(&self, message: String) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            message,
        }
    }
}

impl Tokenizer for HfTokenizer {
    fn describe(&self) -> String {
        format!("hf:{}", self.path.display())
    }

    fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| self.error(format!("encoding failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        if let Some(bad) = ids.iter().find(|&&id| self.inner.id_to_token(id).is_none()) {
            return Err(self.error(format!("token {bad} is not in the vocabulary")));
        }
        self.inner
            .decode(ids, false)
            .map(String::into_bytes)
            .map_err(|e| self.error(format!("decoding failed: {e}")))
    }
}

/// A word-level `tokenizer.json` (whitespace pre-tokenizer, no normaliser): word `i` of
/// `words` gets id `i`, anything else `unk`. The format needs no training, so tests and
/// hand-built models can write one.
pub fn word_level(words: impl IntoIterator<Item = String>, unk: &str) -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .into_iter()
        .enumerate()
        .map(|(i, w)| (w, serde_json::json!(i)))
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": unk},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_tokenizer_json_and_encodes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let words = ["[UNK]", "the", "pass", "key", "is", "71432", "."];
        let json = word_level(words.iter().map(|w| w.to_string()), "[UNK]");
        std::fs::write(&path, json.to_string()).unwrap();
        let t = HfTokenizer::from_file(&path).unwrap();
        assert_eq!(t.vocab_size(), 7);
        assert_eq!(
            t.encode("the pass key is 71432.").unwrap(),
            vec![1, 2, 3, 4, 5, 6]
        );
        assert_eq!(t.encode("the lock").unwrap(), vec![1, 0]);
        assert!(t.decode(&[1, 2]).unwrap().contains("pass"));
        assert!(t.decode(&[99]).is_err());
    }

    #[test]
    fn a_broken_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, "{\"model\": 3}").unwrap();
        let e = HfTokenizer::from_file(&path).err().unwrap().to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
    }
}
