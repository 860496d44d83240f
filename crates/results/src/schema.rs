//! The results document: one versioned JSON file per run. Reports and comparisons read
//! only this, so a run made on one machine can be reported or compared on another.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::gate::GateOutcome;
use crate::machine::Machine;
use crate::model_info::{Arch, ModelInfo};
use crate::spec::ModelSpec;
use crate::stats::{summarize, Interval, Summary};
use crate::suite::SuiteConfig;
use crate::{Error, Result};

/// Bumped on every incompatible change of this document. 2: `models[].weights` is
/// tagged (`{"kind": "random", "preset", "seed"}` or `{"kind": "checkpoint", "path"}`),
/// speed-ups, crossovers and ratio gates name their pair `candidate` / `baseline`.
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest schema this build still reads (older fields are read under their old
/// names and forms).
pub const OLDEST_READABLE_SCHEMA: u32 = 1;

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
}

impl Metric {
    pub fn unit(self) -> Unit {
        match self {
            Metric::PrefillTime => Unit::Ms,
            Metric::PrefillThroughput => Unit::TokensPerS,
            Metric::DecodeLatency => Unit::MsPerToken,
            Metric::PeakRss | Metric::RssAfterLoad | Metric::StateBytes => Unit::Bytes,
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
        })
    }

    pub fn key(&self) -> CellKey {
        CellKey {
            model: self.model.clone(),
            metric: self.metric,
            seq_len: self.seq_len,
            task: self.task.task.clone(),
            depth: self.task.depth,
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
}

/// The tool that made the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
    pub git_commit: String,
    pub crate_versions: BTreeMap<String, String>,
}

/// Settings the run was made with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Threads asked for (0 = every core).
    pub threads_requested: usize,
    /// Threads the cells actually ran with.
    pub threads_used: Option<usize>,
    pub dtype: String,
    pub device: String,
}

/// The suite as run: its path, verbatim text and parsed settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteRecord {
    pub path: String,
    pub source: String,
    pub config: SuiteConfig,
}

/// The whole results document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema_version: u32,
    pub tool: Tool,
    pub started_at: String,
    pub finished_at: String,
    pub duration_s: f64,
    pub machine: Machine,
    pub settings: RunSettings,
    pub suite: SuiteRecord,
    pub models: Vec<ModelInfo>,
    pub records: Vec<Record>,
    pub failures: Vec<Failure>,
    pub analysis: Analysis,
    /// The accuracy gates of an evaluation and how each came out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateOutcome>,
}

impl Results {
    /// Records of one metric, for one model spec, ordered by length.
    pub fn series(&self, model: &ModelSpec, metric: Metric) -> Vec<&Record> {
        let mut v: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| r.model == *model && r.metric == metric)
            .collect();
        v.sort_by_key(|r| r.seq_len);
        v
    }

    /// The record of `key`'s cell, if it was measured.
    pub fn find(&self, key: &CellKey) -> Option<&Record> {
        self.records.iter().find(|r| r.key() == *key)
    }

    /// Reads and checks a results file: a truncated file, another schema version or a
    /// document that is not a results file each get a message naming the file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let fail = |message: String| Error::Results {
            path: path.to_path_buf(),
            message,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            if e.is_eof() {
                fail(format!("truncated JSON ({e})"))
            } else {
                fail(format!("not valid JSON ({e})"))
            }
        })?;
        match value.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v) if (OLDEST_READABLE_SCHEMA as u64..=SCHEMA_VERSION as u64).contains(&v) => {}
            Some(v) => {
                return Err(fail(format!(
                    "schema_version {v}, but this build reads schema_version \
                     {OLDEST_READABLE_SCHEMA} to {SCHEMA_VERSION}"
                )))
            }
            None => {
                return Err(fail(
                    "no `schema_version`: not an rwkv-bench results file".into(),
                ))
            }
        }
        serde_json::from_value(value)
            .map_err(|e| fail(format!("does not match the results schema: {e}")))
    }

    /// Writes the document atomically (temp file in the same directory, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Results {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        crate::atomic::write(path, &bytes)
    }

    /// The models of one architecture, in the order the run measured them.
    pub fn models_of(&self, arch: Arch) -> impl Iterator<Item = &ModelInfo> {
        self.models.iter().filter(move |m| m.arch == arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files written before accuracy records existed still load, and speed records are
    /// written back without the accuracy fields.
    #[test]
    fn results_without_accuracy_fields_still_load_and_round_trip() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/results/ci.json");
        let r = Results::load(&path).unwrap();
        assert_eq!(r.schema_version, 1, "the fixture is a schema-1 file");
        assert!(!r.records.is_empty());
        assert!(r.records.iter().all(|x| x.task == TaskFields::default()));
        let text = serde_json::to_string(&r.records[0]).unwrap();
        assert!(
            !text.contains("wilson") && !text.contains("\"task\""),
            "{text}"
        );
        let mut acc = r.records[0].clone();
        acc.metric = Metric::Accuracy;
        acc.task.task = Some("passkey".into());
        acc.task.depth = Some(0.5);
        let back: Record = serde_json::from_str(&serde_json::to_string(&acc).unwrap()).unwrap();
        assert_eq!(back, acc);
    }
}
