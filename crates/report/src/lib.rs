//! Reports from a results document. Exporters turn [`harness::results::Results`] into
//! bytes and do no I/O; the caller decides where they go.

pub mod export;
pub mod format;

pub use export::{markdown::Markdown, Exporter};
