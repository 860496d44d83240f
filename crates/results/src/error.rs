//! Errors of reading and writing rwkv-bench's data files: each names the file, key or
//! spec to fix.

use std::borrow::Cow;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a `#[source]`: the message already holds the I/O error, and a chain printed
    /// with `{:#}` would repeat it.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    /// A suite file that does not parse or does not validate.
    #[error("{path}: {}", one_line(.message))]
    Suite { path: PathBuf, message: String },

    /// A model spec string that does not parse or names nothing known.
    #[error("model spec `{}`: {}", one_line(.spec), one_line(.message))]
    Spec { spec: String, message: String },

    /// A results or history file that is truncated, malformed or of another schema.
    #[error("{path}: {}", one_line(.message))]
    Results { path: PathBuf, message: String },

    /// A `--shard` that does not parse.
    #[error("{}", one_line(.0))]
    Shard(String),

    /// A task that does not exist or cannot be generated as asked.
    #[error("task {}: {}", one_line(.task), one_line(.message))]
    Task { task: String, message: String },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error: source,
        }
    }
}

/// `text` with line breaks and other control characters escaped (`\n`, `\u{1b}`).
/// Messages quote what the user wrote (a spec, a key, a line of a file), and each must
/// stay one line.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.contains(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_input_stays_on_one_line() {
        let e = Error::Spec {
            spec: "a\nb".into(),
            message: "tab\there, bell\u{7}".into(),
        };
        assert_eq!(e.to_string(), "model spec `a\\nb`: tab\\there, bell\\u{7}");
        assert!(matches!(one_line("plain – text"), Cow::Borrowed(_)));
    }
}
