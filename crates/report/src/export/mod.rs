//! One exporter per output format. Exporters do no I/O; [`crate::write_report`] does.

pub mod html;
pub mod markdown;

use results::Results;

use crate::Result;

/// Serialises a results document into one output format.
pub trait Exporter {
    fn serialize(&self, results: &Results) -> Result<Vec<u8>>;
}
