//! One measured cell of one metric: what it measures, in which unit, its samples and
//! summary, and the key that says which cell it is.

use serde::{Deserialize, Serialize};

use crate::model_info::{Arch, ModelInfo};
use crate::roofline::Efficiency;
use crate::spec::ModelSpec;
use crate::stats::{clustered_median_ci, clusters, summarize, Interval, Summary, CONFIDENCE};

/// What a record measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Wall time to process the prompt (time to first token).
    PrefillTime,
    /// Prompt tokens per second.
    PrefillThroughput,
    /// Wall time of one decode step at context depth `seq_len`.
    DecodeLatency,
    /// Peak RSS of the isolated cell process.
    PeakRss,
    /// RSS once the model is built (weights plus runtime).
    RssAfterLoad,
    /// Recurrent state or KV cache held after the prompt.
    StateBytes,
    /// Exact match of the greedy continuation with the answer: one 0/1 sample per
    /// question, with a Wilson interval. Task files: `acc` (choice by log-likelihood).
    Accuracy,
    /// Task files: `acc_norm`, the choice by log-likelihood per byte of the choice.
    AccuracyNorm,
    /// Mean log-likelihood of the answer tokens given the prompt, per question.
    AnswerLogLikelihood,
    /// Mean loss of the tokens whose position falls in a bucket ending at `seq_len`.
    LossByPosition,
    /// Bits per byte of a corpus, comparable across tokenizers.
    BitsPerByte,
    /// Wall time of one optimizer step (forward, backward, AdamW) at the suite's
    /// tokens per step, in sequences of `seq_len`.
    TrainStepTime,
    /// Training tokens per second of those steps.
    TrainThroughput,
    /// Peak RSS of the isolated training cell.
    TrainPeakRss,
}

impl Metric {
    pub fn unit(self) -> Unit {
        match self {
            Metric::PrefillTime => Unit::Ms,
            Metric::PrefillThroughput => Unit::TokensPerS,
            Metric::DecodeLatency => Unit::MsPerToken,
            Metric::PeakRss | Metric::RssAfterLoad | Metric::StateBytes | Metric::TrainPeakRss => {
                Unit::Bytes
            }
            Metric::TrainStepTime => Unit::Ms,
            Metric::TrainThroughput => Unit::TokensPerS,
            Metric::Accuracy | Metric::AccuracyNorm => Unit::Fraction,
            Metric::AnswerLogLikelihood | Metric::LossByPosition => Unit::NatsPerToken,
            Metric::BitsPerByte => Unit::BitsPerByte,
        }
    }

    /// Whether a smaller value is better.
    pub fn lower_is_better(self) -> bool {
        !matches!(
            self,
            Metric::PrefillThroughput
                | Metric::TrainThroughput
                | Metric::Accuracy
                | Metric::AccuracyNorm
                | Metric::AnswerLogLikelihood
        )
    }

    /// Whether the metric measures what a model gets right rather than what it costs.
    pub fn is_accuracy(self) -> bool {
        matches!(
            self,
            Metric::Accuracy
                | Metric::AccuracyNorm
                | Metric::AnswerLogLikelihood
                | Metric::LossByPosition
                | Metric::BitsPerByte
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Metric::PrefillTime => "prefill time",
            Metric::PrefillThroughput => "prefill throughput",
            Metric::DecodeLatency => "decode latency",
            Metric::PeakRss => "peak RSS",
            Metric::RssAfterLoad => "RSS after load",
            Metric::StateBytes => "state / KV bytes",
            Metric::Accuracy => "accuracy",
            Metric::AccuracyNorm => "accuracy (length-normalised)",
            Metric::AnswerLogLikelihood => "answer log-likelihood",
            Metric::LossByPosition => "loss by position",
            Metric::BitsPerByte => "bits per byte",
            Metric::TrainStepTime => "training step time",
            Metric::TrainThroughput => "training throughput",
            Metric::TrainPeakRss => "training peak RSS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    #[serde(rename = "ms")]
    Ms,
    #[serde(rename = "tokens/s")]
    TokensPerS,
    #[serde(rename = "ms/token")]
    MsPerToken,
    #[serde(rename = "bytes")]
    Bytes,
    /// A proportion in `[0, 1]`.
    #[serde(rename = "fraction")]
    Fraction,
    #[serde(rename = "nats/token")]
    NatsPerToken,
    #[serde(rename = "bits/byte")]
    BitsPerByte,
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unit::Ms => "ms",
            Unit::TokensPerS => "tokens/s",
            Unit::MsPerToken => "ms/token",
            Unit::Bytes => "bytes",
            Unit::Fraction => "fraction",
            Unit::NatsPerToken => "nats/token",
            Unit::BitsPerByte => "bits/byte",
        })
    }
}

/// One measured cell of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub suite: String,
    pub model: ModelSpec,
    #[serde(rename = "impl")]
    pub implementation: String,
    pub arch: Arch,
    pub metric: Metric,
    pub seq_len: usize,
    pub unit: Unit,
    pub samples: Vec<f64>,
    #[serde(flatten)]
    pub summary: Summary,
    /// Task, depth and interval of accuracy records; empty (and not written) for speed
    /// and memory records, so files written before accuracy records existed still load.
    #[serde(flatten)]
    pub task: TaskFields,
    /// Samples each process contributed, in order (`samples` is their concatenation);
    /// empty when one process took them all. Intervals draw processes first, then
    /// samples within them ([`crate::stats::hierarchical_bootstrap`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<usize>,
    /// What the median achieved against the machine's roofline (prefill and decode
    /// records of runs that calibrated one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<Efficiency>,
}

/// What makes a record one cell: two records with the same key, in two runs, measure
/// the same thing. Accuracy records add task and depth: two tasks at one length are two
/// cells.
#[derive(Debug, Clone, PartialEq)]
pub struct CellKey {
    pub model: ModelSpec,
    pub metric: Metric,
    pub seq_len: usize,
    pub task: Option<String>,
    pub depth: Option<f64>,
    pub pairs: Option<usize>,
}

impl Record {
    /// A record of `samples` of `metric` measured on `model`; `None` without samples.
    pub fn from_samples(
        suite: &str,
        model: &ModelInfo,
        metric: Metric,
        seq_len: usize,
        samples: Vec<f64>,
        task: TaskFields,
    ) -> Option<Self> {
        let summary = summarize(&samples)?;
        Some(Self {
            suite: suite.to_string(),
            model: model.spec.clone(),
            implementation: model.implementation.clone(),
            arch: model.arch,
            metric,
            seq_len,
            unit: metric.unit(),
            samples,
            summary,
            task,
            processes: Vec::new(),
            efficiency: None,
        })
    }

    /// The record with its samples split by process (`sizes`, in order): its interval
    /// is recomputed drawing processes first. Sizes that do not add up are ignored.
    pub fn with_processes(mut self, sizes: Vec<usize>) -> Self {
        let split = clusters(&self.samples, &sizes);
        if split.len() > 1 {
            self.summary.ci = clustered_median_ci(&split, CONFIDENCE, 0x5eed);
            self.processes = sizes;
        }
        self
    }

    /// The samples, split by the process that took them.
    pub fn clusters(&self) -> Vec<&[f64]> {
        clusters(&self.samples, &self.processes)
    }

    /// How many processes took the samples.
    pub fn process_count(&self) -> usize {
        self.processes.len().max(1)
    }

    pub fn key(&self) -> CellKey {
        CellKey {
            model: self.model.clone(),
            metric: self.metric,
            seq_len: self.seq_len,
            task: self.task.task.clone(),
            depth: self.task.depth,
            pairs: self.task.pairs,
        }
    }
}

/// What accuracy records add to a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskFields {
    /// The task: `passkey`, `niah`, `mqar`, `copy`, a task file's name, or a corpus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Where the answer lay in the context, as a fraction of its length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<f64>,
    /// Key-value pairs per example (MQAR records of a suite's `mqar_grid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<usize>,
    /// Wilson interval of a proportion (accuracy records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wilson: Option<Interval>,
    /// What a uniform random guesser scores on this metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chance: Option<f64>,
    /// Seed the examples were generated from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A cell that produced no measurement, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub model: ModelSpec,
    pub seq_len: usize,
    pub error: String,
    /// Files written before kinds existed read as `errored`.
    #[serde(default)]
    pub kind: FailureKind,
}

/// How a cell ended without a measurement. Only [`FailureKind::OverBudget`] is an
/// expected outcome (the suite declared the budget, and the cell does not fit it); the
/// others fail the run (`rwkv-bench run` exits 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Stopped by the memory budget the suite declared (`limits.memory_budget_mb`).
    OverBudget,
    /// Ran past `limits.cell_timeout_s`.
    TimedOut,
    /// Refused before its work: predicted to run past the timeout.
    PredictedTimeout,
    /// The process died (a signal, an abort) or exceeded the machine's memory guard.
    Crashed,
    /// The model or the harness returned an error.
    #[default]
    Errored,
}

impl FailureKind {
    /// Whether the outcome is one the suite asked for, rather than a fault.
    pub fn expected(self) -> bool {
        self == FailureKind::OverBudget
    }

    pub fn label(self) -> &'static str {
        match self {
            FailureKind::OverBudget => "over budget",
            FailureKind::TimedOut => "timed out",
            FailureKind::PredictedTimeout => "refused (predicted to time out)",
            FailureKind::Crashed => "crashed",
            FailureKind::Errored => "error",
        }
    }
}
