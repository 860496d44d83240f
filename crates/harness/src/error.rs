//! The harness error type: one variant per thing a user can get wrong, each naming the
//! file, key or spec to fix.

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

    /// A suite file that does not parse or does not validate.
    #[error("{path}: {message}")]
    Suite { path: PathBuf, message: String },

    /// A model spec string the registry cannot resolve.
    #[error("model spec `{spec}`: {message}")]
    Spec { spec: String, message: String },

    /// A checkpoint that cannot be used (missing, wrong generation, wrong key or shape).
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    /// A request the model cannot serve, such as a sequence longer than it supports.
    #[error("{0}")]
    Unsupported(String),

    /// A results file that is truncated, malformed or of another schema version.
    #[error("{path}: {message}")]
    Results { path: PathBuf, message: String },

    /// The measured child process did not produce a result.
    #[error("{0}")]
    Cell(String),

    /// A tokenizer file that cannot be read or parsed, or text it cannot encode.
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    /// A task that cannot be generated as asked (a length too short for it, say).
    #[error("task {task}: {message}")]
    Task { task: String, message: String },

    /// A user task file line that does not parse; nothing is skipped silently.
    #[error("{path}:{line}: {message}")]
    TaskFile {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
