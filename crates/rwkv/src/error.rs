//! The crate's error type: each variant names the file, tensor key or value to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A checkpoint's tensors do not describe an RWKV-7 model: a missing or mis-shaped
    /// key, or keys of another generation. Raised before any file is involved, so it
    /// names only the key; [`Error::Checkpoint`] adds the file.
    #[error("tensor `{key}`: {message}")]
    Shape { key: String, message: String },

    /// A checkpoint file that cannot be used: truncated, of another format or
    /// generation, or with a missing or mis-shaped tensor.
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },

    /// A saved state that does not match the model it is loaded for.
    #[error("{}: {message}", path.display())]
    StateFile { path: PathBuf, message: String },

    /// An input the model cannot process (token out of range, wrong batch size).
    #[error("{0}")]
    Input(String),

    /// A device or dtype the fused kernels do not implement.
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

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn shape(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Shape {
            key: key.into(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
