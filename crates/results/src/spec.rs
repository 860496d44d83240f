//! Model specs, parsed once where they enter (a suite file, a flag) and carried typed
//! through cells, results and reports: `NAME:preset=PRESET` or `NAME:PATH`, then
//! `,tokenizer=TOKENIZER` and further `,key=value` options.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where a model's weights come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Random weights shaped like a named preset.
    Preset(String),
    /// A checkpoint file or directory.
    Path(PathBuf),
    /// A checkpoint shipped with the repository (`pretrained=recall-small`).
    Pretrained(String),
}

/// Which tokenizer to use, as written after `tokenizer=`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum TokenizerSpec {
    /// One token per byte (ids 0..256).
    Bytes,
    /// An RWKV world vocabulary file (`rwkv_vocab_v20230424.txt`).
    World(PathBuf),
    /// A Hugging Face `tokenizer.json`.
    Hf(PathBuf),
}

/// A model spec: which implementation, which weights, which tokenizer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ModelSpec {
    /// The registry name before the colon, e.g. `rwkv7-upstream`.
    pub implementation: String,
    pub source: Source,
    /// The tokenizer accuracy tasks use; `None` picks the model's own.
    pub tokenizer: Option<TokenizerSpec>,
    /// Further `key=value` options in the order written; the implementation rejects the
    /// ones it does not know.
    pub options: Vec<(String, String)>,
}

/// Whether a `,`-separated segment starts an option (`key=value`) rather than
/// continuing a path that contains a comma.
fn is_option(segment: &str) -> bool {
    segment.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    })
}

impl std::str::FromStr for TokenizerSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.split_once(':') {
            None if s == "bytes" => Ok(Self::Bytes),
            Some(("world", p)) if !p.is_empty() => Ok(Self::World(p.into())),
            Some(("hf", p)) if !p.is_empty() => Ok(Self::Hf(p.into())),
            _ => Err(Error::Spec {
                spec: format!("tokenizer={s}"),
                message: "expected `bytes`, `world:PATH` (rwkv_vocab_v20230424.txt) or \
                          `hf:PATH` (tokenizer.json)"
                    .into(),
            }),
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

impl std::str::FromStr for ModelSpec {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self> {
        let fail = |message: String| Error::Spec {
            spec: raw.to_string(),
            message,
        };
        let (name, rest) = raw.split_once(':').ok_or_else(|| {
            fail("expected NAME:preset=PRESET, NAME:pretrained=PAIR or NAME:PATH".into())
        })?;
        if name.is_empty() {
            return Err(fail("the implementation name before ':' is empty".into()));
        }
        let mut segments = rest.split(',');
        let mut source = segments.next().unwrap_or_default().to_string();
        let mut options: Vec<(String, String)> = Vec::new();
        let mut tokenizer = None;
        let preset = source.strip_prefix("preset=").map(String::from);
        let pretrained = source.strip_prefix("pretrained=").map(String::from);
        let named = preset.is_some() || pretrained.is_some();
        for segment in segments {
            if options.is_empty() && tokenizer.is_none() && !named && !is_option(segment) {
                source.push(',');
                source.push_str(segment);
                continue;
            }
            let Some((key, value)) = segment.split_once('=').filter(|_| is_option(segment)) else {
                return Err(fail(format!(
                    "`{segment}` is not an option: expected `,key=value`"
                )));
            };
            if key == "tokenizer" {
                if tokenizer.is_some() {
                    return Err(fail("`tokenizer` is given twice".into()));
                }
                tokenizer = Some(value.parse().map_err(|e: Error| fail(e.to_string()))?);
            } else if options.iter().any(|(k, _)| k == key) {
                return Err(fail(format!("`{key}` is given twice")));
            } else {
                options.push((key.to_string(), value.to_string()));
            }
        }
        let source = match (preset, pretrained) {
            (Some(p), _) if p.is_empty() => {
                return Err(fail("the preset name after 'preset=' is empty".into()))
            }
            (Some(p), _) => Source::Preset(p),
            (_, Some(p)) if p.is_empty() => {
                return Err(fail("the pair name after 'pretrained=' is empty".into()))
            }
            (_, Some(p)) => Source::Pretrained(p),
            _ if source.is_empty() => return Err(fail("the path after ':' is empty".into())),
            _ => Source::Path(PathBuf::from(source)),
        };
        Ok(Self {
            implementation: name.to_string(),
            source,
            tokenizer,
            options,
        })
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:", self.implementation)?;
        match &self.source {
            Source::Preset(p) => write!(f, "preset={p}")?,
            Source::Path(p) => write!(f, "{}", p.display())?,
            Source::Pretrained(p) => write!(f, "pretrained={p}")?,
        }
        if let Some(t) = &self.tokenizer {
            write!(f, ",tokenizer={t}")?;
        }
        for (k, v) in &self.options {
            write!(f, ",{k}={v}")?;
        }
        Ok(())
    }
}

impl ModelSpec {
    /// The spec without its tokenizer: the model the weights make, whichever tokenizer
    /// feeds it.
    pub fn without_tokenizer(&self) -> Self {
        Self {
            tokenizer: None,
            ..self.clone()
        }
    }
}

/// A spec equals a string that parses to it.
impl PartialEq<str> for ModelSpec {
    fn eq(&self, other: &str) -> bool {
        other.parse::<ModelSpec>().is_ok_and(|o| o == *self)
    }
}

impl PartialEq<&str> for ModelSpec {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl From<$t> for String {
            fn from(s: $t) -> Self {
                s.to_string()
            }
        }

        impl TryFrom<String> for $t {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                s.parse()
            }
        }
    };
}
string_serde!(ModelSpec);
string_serde!(TokenizerSpec);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_presets_paths_tokenizers_and_options() {
        let s: ModelSpec = "rwkv7:preset=0.1b".parse().unwrap();
        assert_eq!(s.implementation, "rwkv7");
        assert_eq!(s.source, Source::Preset("0.1b".into()));
        assert_eq!((s.tokenizer.clone(), s.options.len()), (None, 0));
        let s: ModelSpec = "llama:/models/smol".parse().unwrap();
        assert_eq!(s.source, Source::Path("/models/smol".into()));

        // The case that used to validate and then fail every cell.
        let s: ModelSpec = "rwkv7:preset=tiny,tokenizer=bytes".parse().unwrap();
        assert_eq!(s.source, Source::Preset("tiny".into()));
        assert_eq!(s.tokenizer, Some(TokenizerSpec::Bytes));
        let s: ModelSpec = "rwkv7:/m/x.pth,tokenizer=world:/m/v.txt,chunk=256"
            .parse()
            .unwrap();
        assert_eq!(s.source, Source::Path("/m/x.pth".into()));
        assert_eq!(s.tokenizer, Some(TokenizerSpec::World("/m/v.txt".into())));
        assert_eq!(s.options, vec![("chunk".into(), "256".into())]);
        assert_eq!(
            s.to_string(),
            "rwkv7:/m/x.pth,tokenizer=world:/m/v.txt,chunk=256"
        );
        assert_eq!(
            s.without_tokenizer().to_string(),
            "rwkv7:/m/x.pth,chunk=256"
        );
        // A comma inside a path stays in the path.
        let s: ModelSpec = "llama:/data/a,b/model".parse().unwrap();
        assert_eq!(s.source, Source::Path("/data/a,b/model".into()));
        // A shipped pair, by name, with options after it.
        let s: ModelSpec = "rwkv7:pretrained=recall-small,tokenizer=bytes"
            .parse()
            .unwrap();
        assert_eq!(s.source, Source::Pretrained("recall-small".into()));
        assert_eq!(s.tokenizer, Some(TokenizerSpec::Bytes));
        assert_eq!(
            s.to_string(),
            "rwkv7:pretrained=recall-small,tokenizer=bytes"
        );
        let e = "llama:pretrained="
            .parse::<ModelSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("after 'pretrained='"), "{e}");
    }

    #[test]
    fn round_trips_through_json_as_a_string() {
        let s: ModelSpec = "llama:preset=tiny,tokenizer=hf:/t/tokenizer.json"
            .parse()
            .unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"llama:preset=tiny,tokenizer=hf:/t/tokenizer.json\"");
        assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), s);
        assert!(s == "llama:preset=tiny,tokenizer=hf:/t/tokenizer.json");
    }

    #[test]
    fn rejects_malformed_specs_with_the_spec_in_the_message() {
        for bad in [
            "rwkv7",
            ":preset=tiny",
            "rwkv7:",
            "rwkv7:preset=",
            "rwkv7:preset=tiny,tokenizer=sentencepiece:x",
            "rwkv7:preset=tiny,oops",
            "rwkv7:preset=tiny,tokenizer=bytes,tokenizer=bytes",
        ] {
            let e = bad.parse::<ModelSpec>().unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn tokenizer_specs_round_trip_and_bad_ones_say_what_is_expected() {
        for s in ["bytes", "world:/v/rwkv_vocab.txt", "hf:dir/tokenizer.json"] {
            assert_eq!(s.parse::<TokenizerSpec>().unwrap().to_string(), s);
        }
        let e = "sentencepiece:x".parse::<TokenizerSpec>().unwrap_err();
        assert!(e.to_string().contains("world:PATH"), "{e}");
        assert!("world:".parse::<TokenizerSpec>().is_err());
    }
}
