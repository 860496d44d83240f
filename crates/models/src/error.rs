//! The error of the crates that run models (models, speed, eval): one variant per thing
//! a user can get wrong, each naming the file, key or spec to fix. Data-file errors
//! (suites, specs, results) come from the results crate unchanged.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A suite, spec, results file or task that is wrong, from the results crate.
    #[error(transparent)]
    Data(#[from] results::Error),

    /// A checkpoint that cannot be used (missing, wrong generation, wrong key or shape).
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    /// A request the model cannot serve, such as a sequence longer than it supports.
    #[error("{0}")]
    Unsupported(String),

    /// The measured child process did not produce a result.
    #[error("{0}")]
    Cell(String),

    /// A training run that cannot go on (a non-finite loss), or a run directory that
    /// does not fit the run asked for.
    #[error("{0}")]
    Training(String),

    /// A tokenizer file that cannot be read or parsed, or text it cannot encode.
    #[error("tokenizer {path}: {}", results::error::one_line(.message))]
    Tokenizer { path: PathBuf, message: String },

    /// A text or translation catalog that cannot be read as text in a language.
    #[error("{path}: {message}")]
    Text { path: PathBuf, message: String },

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
        Self::Data(results::Error::io(path, source))
    }

    /// An error about a model spec.
    pub fn spec(spec: impl std::fmt::Display, message: impl Into<String>) -> Self {
        Self::Data(results::Error::Spec {
            spec: spec.to_string(),
            message: message.into(),
        })
    }

    /// An error about a synthetic task.
    pub fn task(task: impl std::fmt::Display, message: impl Into<String>) -> Self {
        Self::Data(results::Error::Task {
            task: task.to_string(),
            message: message.into(),
        })
    }

    /// Whether the error is unusable input (a data file, spec, checkpoint, tokenizer or
    /// task file to fix), rather than a failure while running.
    pub fn is_unusable_input(&self) -> bool {
        matches!(
            self,
            Self::Data(_)
                | Self::Checkpoint { .. }
                | Self::Tokenizer { .. }
                | Self::Text { .. }
                | Self::TaskFile { .. }
        )
    }
}

pub type Result<T> = std::result::Result<T, Error>;
