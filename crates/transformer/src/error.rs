//! The error type of the transformer crate: every message names the file, tensor or
//! config key to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A `config.json` that does not parse, or names an option this crate does not
    /// implement (never silently ignored).
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A config value that is inconsistent or unsupported, named by its key.
    #[error("config key `{key}`: {message}")]
    ConfigKey { key: String, message: String },

    /// A checkpoint file that is missing, malformed, or lacks a tensor of the right
    /// shape.
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    /// A request the model cannot serve (bad input shape, unsupported dtype/device).
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::ConfigKey {
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
