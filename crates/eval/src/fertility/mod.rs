//! Tokenizer fertility: how many tokens a tokenizer spends per character and per byte
//! of text in a language. A model's cost grows with tokens, a user's documents with
//! characters, so a speed-up measured in tokens moves, in characters, by each
//! language's fertility.
//!
//! The text is the gettext catalogs Debian packages install
//! (`/usr/share/locale/<lang>/LC_MESSAGES/*.mo`): parallel text, each translation with
//! its English source ([`mo`]), so a language's cost is also measured against the
//! same messages in English.

pub mod mo;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};
use mo::Entry;
use models::tokenizer::Tokenizer;

/// English, measured on the sources of every catalog loaded.
pub const ENGLISH: &str = "en";

/// A language's translated messages, read from its catalogs.
#[derive(Debug, Clone)]
pub struct Catalogs {
    pub language: String,
    /// Each source once (the first translation read wins).
    pub entries: Vec<Entry>,
    pub files: Vec<PathBuf>,
    /// Files that could not be used, with why (a catalog in another encoding, a
    /// damaged file): a directory of system files is read, not rejected, for one.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Reads every `.mo` file in `<locale_dir>/<language>/LC_MESSAGES/`, in name order.
pub fn load(locale_dir: &Path, language: &str) -> Result<Catalogs> {
    let dir = locale_dir.join(language).join("LC_MESSAGES");
    let listing = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut paths: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mo"))
        .collect();
    paths.sort();
    let mut out = Catalogs {
        language: language.into(),
        entries: Vec::new(),
        files: Vec::new(),
        skipped: Vec::new(),
    };
    let mut seen = HashSet::new();
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        match mo::parse(&bytes) {
            Ok(entries) => {
                out.entries.extend(
                    entries
                        .into_iter()
                        .filter(|e| seen.insert(e.source.clone())),
                );
                out.files.push(path);
            }
            Err(why) => out.skipped.push((path, why)),
        }
    }
    if out.entries.is_empty() {
        return Err(Error::Text {
            path: dir,
            message: format!(
                "no translated messages in {} .mo file(s) ({} unreadable)",
                out.files.len(),
                out.skipped.len()
            ),
        });
    }
    Ok(out)
}

/// What one tokenizer spends on one language's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fertility {
    pub language: String,
    pub tokenizer: String,
    pub messages: usize,
    pub chars: usize,
    pub bytes: usize,
    pub tokens: usize,
    /// Tokens of the English sources of the same messages (`None` for English).
    pub english_tokens: Option<usize>,
}

impl Fertility {
    pub fn tokens_per_char(&self) -> f64 {
        self.tokens as f64 / self.chars as f64
    }

    pub fn tokens_per_byte(&self) -> f64 {
        self.tokens as f64 / self.bytes as f64
    }

    /// Tokens for the same content relative to English.
    pub fn vs_english(&self) -> Option<f64> {
        self.english_tokens.map(|e| self.tokens as f64 / e as f64)
    }

    /// The characters of text that make `tokens` tokens.
    pub fn chars_for(&self, tokens: f64) -> f64 {
        tokens / self.tokens_per_char()
    }
}

/// Messages, characters, bytes and tokens of `texts`. Each message is encoded on its
/// own, as a model meets it: no token spans two messages.
fn count<'a>(
    texts: impl Iterator<Item = &'a str>,
    tokens_of: &mut impl FnMut(&'a str) -> Result<usize>,
) -> Result<(usize, usize, usize, usize)> {
    let (mut n, mut chars, mut bytes, mut tokens) = (0, 0, 0, 0);
    for t in texts {
        n += 1;
        chars += t.chars().count();
        bytes += t.len();
        tokens += tokens_of(t)?;
    }
    Ok((n, chars, bytes, tokens))
}

/// The fertility of `tok` on each language's translations, then on English: the
/// sources of every catalog, each once (and encoded once, however many languages
/// translate it).
pub fn measure<'a>(languages: &'a [Catalogs], tok: &dyn Tokenizer) -> Result<Vec<Fertility>> {
    let mut english: HashMap<&'a str, usize> = HashMap::new();
    let mut source_tokens = |s: &'a str| -> Result<usize> {
        if let Some(&n) = english.get(s) {
            return Ok(n);
        }
        let n = tok.encode(s)?.len();
        english.insert(s, n);
        Ok(n)
    };
    let mut out = Vec::new();
    for c in languages {
        let (messages, chars, bytes, tokens) =
            count(c.entries.iter().map(|e| e.translation.as_str()), &mut |t| {
                Ok(tok.encode(t)?.len())
            })?;
        let (.., sources) = count(
            c.entries.iter().map(|e| e.source.as_str()),
            &mut source_tokens,
        )?;
        out.push(Fertility {
            language: c.language.clone(),
            tokenizer: tok.describe(),
            messages,
            chars,
            bytes,
            tokens,
            english_tokens: Some(sources),
        });
    }
    let mut seen = HashSet::new();
    let distinct = languages
        .iter()
        .flat_map(|c| &c.entries)
        .map(|e| e.source.as_str())
        .filter(|s| seen.insert(*s));
    let (messages, chars, bytes, tokens) = count(distinct, &mut source_tokens)?;
    if messages > 0 {
        out.push(Fertility {
            language: ENGLISH.into(),
            tokenizer: tok.describe(),
            messages,
            chars,
            bytes,
            tokens,
            english_tokens: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::tokenizer::bytes::ByteTokenizer;

    fn locale(dir: &Path, lang: &str, file: &str, entries: &[(&str, &str)]) {
        let d = dir.join(lang).join("LC_MESSAGES");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(file), mo::write(entries)).unwrap();
    }

    #[test]
    fn byte_tokens_count_utf8_bytes_and_english_is_the_sources() {
        let dir = tempfile::tempdir().unwrap();
        locale(
            dir.path(),
            "th",
            "a.mo",
            &[("Open", "เปิด"), ("Quit", "ออก")],
        );
        locale(
            dir.path(),
            "th",
            "b.mo",
            &[("Open", "เปิดไฟล์"), ("Save", "บันทึก")],
        );
        std::fs::write(dir.path().join("th/LC_MESSAGES/broken.mo"), b"junk").unwrap();
        let th = load(dir.path(), "th").unwrap();
        assert_eq!(th.entries.len(), 3, "a source read twice counts once");
        assert_eq!(th.skipped.len(), 1);
        let f = measure(&[th], &ByteTokenizer).unwrap();
        let (thai, en) = (&f[0], &f[1]);
        // Thai letters are 3 bytes each in UTF-8: one byte token per byte.
        assert_eq!(thai.chars, "เปิดออกบันทึก".chars().count());
        assert_eq!(thai.tokens, thai.bytes);
        assert_eq!(thai.bytes, 3 * thai.chars);
        assert!((thai.tokens_per_char() - 3.0).abs() < 1e-12);
        assert_eq!(en.language, ENGLISH);
        assert_eq!(en.tokens, "OpenQuitSave".len());
        assert_eq!(thai.english_tokens, Some(en.tokens));
        assert!((thai.chars_for(3.0 * 100.0) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_language_without_catalogs_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path(), "vi").unwrap_err().to_string();
        assert!(e.contains("vi/LC_MESSAGES"), "{e}");
        locale(dir.path(), "id", "a.mo", &[]);
        let e = load(dir.path(), "id").unwrap_err().to_string();
        assert!(e.contains("no translated messages"), "{e}");
    }
}
