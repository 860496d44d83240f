//! Measuring one (model, length) cell: the child side ([`cell`]), the parent side that
//! runs it in an isolated process ([`isolate`]), and process memory readings ([`rss`]).

pub mod cell;
pub mod isolate;
pub mod rss;

use serde::{Deserialize, Serialize};

pub use results::pipeline::Phase;
use results::suite::{Dtype, Measure, Sampling};
use results::{ModelInfo, ModelSpec};

/// The environment variable that sets the compute threads of candle (read on every
/// matmul) and rayon (read once, when its pool starts).
pub const THREADS_ENV: &str = "RAYON_NUM_THREADS";

/// Compute threads for a requested count: 0 means every core.
pub fn resolve_threads(requested: usize) -> usize {
    match requested {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Everything a child process needs to measure one cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellPlan {
    pub model: ModelSpec,
    pub seq_len: usize,
    pub dtype: Dtype,
    pub seed: u64,
    pub measure: Measure,
    pub sampling: Sampling,
}

/// What one cell measured, as raw samples.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellOutcome {
    pub info: ModelInfo,
    /// Compute threads the child actually ran with.
    pub threads: usize,
    pub load_ms: f64,
    /// Wall time of each timed prompt run, ms.
    pub prefill_ms: Vec<f64>,
    /// Wall time of each timed decode step after the prompt, ms.
    pub decode_ms: Vec<f64>,
    /// `state_bytes()` right after the prompt.
    pub state_bytes: u64,
    /// Process RSS once the model is built, bytes.
    pub rss_after_load: u64,
    /// Peak process RSS over the whole cell, bytes.
    pub peak_rss: u64,
}

/// One line of the child's output stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CellEvent {
    Progress {
        phase: Phase,
        done: usize,
        total: usize,
    },
    Done {
        outcome: Box<CellOutcome>,
    },
    Failed {
        error: String,
    },
}
