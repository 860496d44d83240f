//! One exporter per output format.

pub mod markdown;

use harness::results::Results;

/// Serialises a results document into one output format. Exporters do no I/O.
pub trait Exporter {
    fn serialize(&self, results: &Results) -> Vec<u8>;
}
