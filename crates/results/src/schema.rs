//! The results document: one versioned JSON file per run. Reports and comparisons read
//! only this, so a run made on one machine can be reported or compared on another.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::dtype_cost::DtypeCost;
use crate::fit::Fit;
use crate::gate::GateOutcome;
use crate::machine::Machine;
use crate::model_info::{Arch, ModelInfo};
use crate::record::{CellKey, Failure, Metric, Record};
use crate::shard::ShardRecord;
use crate::spec::ModelSpec;
use crate::suite::SuiteConfig;
use crate::{Error, Result};

/// Bumped on every incompatible change of this document. 2: `models[].weights` is
/// tagged (`{"kind": "random", "preset", "seed"}` or `{"kind": "checkpoint", "path"}`),
/// speed-ups, crossovers and ratio gates name their pair `candidate` / `baseline`.
/// 3: slopes, speed-ups and crossovers carry bootstrap intervals, records their
/// per-process sample counts and efficiency, `machine.roofline`, `failures[].kind`.
pub const SCHEMA_VERSION: u32 = 3;

/// The oldest schema this build still reads (older fields are read under their old
/// names and forms).
pub const OLDEST_READABLE_SCHEMA: u32 = 1;

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
    /// Max-context searches under a memory budget (`measure.max_context`, `fit`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fits: Vec<Fit>,
    /// Each non-f32 model's logit agreement with its f32 build (`measure.dtype_cost`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dtype_costs: Vec<DtypeCost>,
    /// The shard this file is (`run --shard I/N`), or every shard a merged file joins
    /// (`merge`); empty for a run of the whole suite.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRecord>,
}

impl Results {
    /// Records of one metric, for one model spec, ordered by length. The state an
    /// evaluation's examples left behind (a `StateBytes` record with a task) is the
    /// recall chart's, not part of the speed run's series.
    pub fn series(&self, model: &ModelSpec, metric: Metric) -> Vec<&Record> {
        let mut v: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| r.model == *model && r.metric == metric)
            .filter(|r| r.metric != Metric::StateBytes || r.task.task.is_none())
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
        // Bytes, not a string: a file cut inside a multi-byte character is truncated
        // JSON, not an I/O error.
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let fail = |message: String| Error::Results {
            path: path.to_path_buf(),
            message,
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
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
        let mut results: Self = serde_json::from_value(value)
            .map_err(|e| fail(format!("does not match the results schema: {e}")))?;
        // Files written before intervals carry bare slopes and ratios: recomputed from
        // their samples, their claims get intervals like a new run's.
        if results.analysis.slopes.iter().any(|s| s.ci.is_none()) {
            results.analysis = crate::analysis::analyse(&results.models, &results.records);
        }
        Ok(results)
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
    use crate::record::TaskFields;

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
