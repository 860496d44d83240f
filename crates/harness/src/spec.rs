//! Model spec strings: `NAME:preset=PRESET` or `NAME:PATH`.

use std::path::PathBuf;

use crate::{Error, Result};

/// Where a model's weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Random weights shaped like a named preset.
    Preset(String),
    /// A checkpoint file or directory.
    Path(PathBuf),
}

/// A parsed model spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The string as the user wrote it.
    pub raw: String,
    /// The registry name before the colon.
    pub name: String,
    pub source: Source,
}

impl std::str::FromStr for ModelSpec {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self> {
        let fail = |message: &str| Error::Spec {
            spec: raw.to_string(),
            message: message.to_string(),
        };
        let (name, rest) = raw
            .split_once(':')
            .ok_or_else(|| fail("expected NAME:preset=PRESET or NAME:PATH"))?;
        if name.is_empty() {
            return Err(fail("the implementation name before ':' is empty"));
        }
        let source = match rest.strip_prefix("preset=") {
            Some("") => return Err(fail("the preset name after 'preset=' is empty")),
            Some(p) => Source::Preset(p.to_string()),
            None if rest.is_empty() => return Err(fail("the path after ':' is empty")),
            None => Source::Path(PathBuf::from(rest)),
        };
        Ok(Self {
            raw: raw.to_string(),
            name: name.to_string(),
            source,
        })
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_presets_and_paths() {
        let s: ModelSpec = "rwkv7:preset=0.1b".parse().unwrap();
        assert_eq!(s.name, "rwkv7");
        assert_eq!(s.source, Source::Preset("0.1b".into()));
        let s: ModelSpec = "llama:/models/smol".parse().unwrap();
        assert_eq!(s.source, Source::Path("/models/smol".into()));
    }

    #[test]
    fn rejects_malformed_specs_with_the_spec_in_the_message() {
        for bad in ["rwkv7", ":preset=tiny", "rwkv7:", "rwkv7:preset="] {
            let e = bad.parse::<ModelSpec>().unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }
}
