//! Errors of reading and writing rwkv-bench's data files: each names the file, key or
//! spec to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A suite file that does not parse or does not validate.
    #[error("{path}: {message}")]
    Suite { path: PathBuf, message: String },

    /// A model spec string that does not parse or names nothing known.
    #[error("model spec `{spec}`: {message}")]
    Spec { spec: String, message: String },

    /// A results or history file that is truncated, malformed or of another schema.
    #[error("{path}: {message}")]
    Results { path: PathBuf, message: String },

    /// A task that does not exist or cannot be generated as asked.
    #[error("task {task}: {message}")]
    Task { task: String, message: String },
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
