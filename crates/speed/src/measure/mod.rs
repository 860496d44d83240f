//! Measuring one (model, length) cell: the child side ([`cell`]), the parent side that
//! runs it in an isolated process ([`isolate`]), and process memory readings ([`rss`]).

pub mod calibrate;
pub mod cell;
pub mod estimate;
pub mod isolate;
pub mod rss;
pub mod train;

use serde::{Deserialize, Serialize};

pub use results::pipeline::Phase;
use results::roofline::Roofline;
use results::suite::{Dtype, Measure, Sampling, TrainCell};
use results::{FailureKind, ModelInfo, ModelSpec};

use calibrate::CalibrationPlan;

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
    /// How a training cell (`measure.train`) steps.
    #[serde(default)]
    pub train: TrainCell,
    /// The preset's shapes, for a child outside this binary (a Python peer) that builds
    /// the preset's random weights itself; absent for our own children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<serde_json::Value>,
}

impl CellPlan {
    /// How the cell's model is built: the plan's dtype and seed, on the CPU.
    pub fn build_options(&self) -> models::BuildOptions {
        models::BuildOptions {
            dtype: models::weight_dtype(self.dtype),
            device: candle_core::Device::Cpu,
            seed: self.seed,
        }
    }
}

/// What a child process is asked to do, as JSON on its stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChildJob {
    Calibrate { calibrate: CalibrationPlan },
    Cell(Box<CellPlan>),
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
    /// Wall time of each timed optimizer step of a training cell, ms.
    #[serde(default)]
    pub train_step_ms: Vec<f64>,
    /// Tokens per optimizer step of a training cell.
    #[serde(default)]
    pub train_tokens: usize,
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
    /// The cell's predicted wall time, made after the warm-up, so that the parent can
    /// refuse a cell that cannot finish within its timeout.
    Estimate {
        seconds: f64,
        basis: String,
    },
    Done {
        outcome: Box<CellOutcome>,
    },
    Calibrated {
        roofline: Box<Roofline>,
    },
    Failed {
        error: String,
    },
}

/// Why a child produced no result.
#[derive(Debug, Clone, PartialEq)]
pub struct CellError {
    pub kind: FailureKind,
    pub message: String,
    /// For a process stopped over its memory budget: the RSS it had reached.
    pub rss: Option<u64>,
}

impl CellError {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            rss: None,
        }
    }
}

impl std::fmt::Display for CellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
