//! Report errors.

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Data(#[from] results::Error),
    #[error("chart: {0}")]
    Chart(String),
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
}

pub type Result<T> = std::result::Result<T, ReportError>;
