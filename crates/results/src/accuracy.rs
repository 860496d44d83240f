//! The `[accuracy]` section of a suite: which tasks, task files and corpora to evaluate,
//! and the gates a run must pass.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::record::Metric;
use crate::spec::ModelSpec;
use crate::task::{TaskKind, TaskParams};

/// A user task file (JSON Lines; the eval crate's `tasks::taskfile` reads it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFileConfig {
    /// Relative to the suite file's directory.
    pub path: PathBuf,
    /// The task name in records and gates [default: the file stem].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A text corpus for perplexity by position: one `.txt` file or a directory of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusConfig {
    /// Relative to the suite file's directory.
    pub path: PathBuf,
    /// The name in records [default: the file or directory name].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl CorpusConfig {
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "corpus".into())
        })
    }
}

/// "`metric` of `task` must be at least `min` (and/or at most `max`)", for one model or
/// every model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// A synthetic task (`passkey`, …) or a task file's name.
    pub task: String,
    /// The model spec it applies to [default: every model of the run].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSpec>,
    /// [default: `accuracy`]
    #[serde(default = "default_metric")]
    pub metric: Metric,
    /// Only this length [default: pooled over every length and depth].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_len: Option<usize>,
    /// The lowest acceptable score (a fraction for accuracies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The highest acceptable score (for losses and bits per byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl Gate {
    /// Whether `score` passes.
    pub fn passes(&self, score: f64) -> bool {
        self.min.is_none_or(|m| score >= m) && self.max.is_none_or(|m| score <= m)
    }
}

fn default_metric() -> Metric {
    Metric::Accuracy
}

/// The accuracy part of a suite.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccuracyConfig {
    /// Synthetic tasks, each generated at every length of `seq_lens`.
    #[serde(default)]
    pub tasks: Vec<TaskKind>,
    #[serde(default)]
    pub params: TaskParams,
    #[serde(default)]
    pub task_files: Vec<TaskFileConfig>,
    /// Perplexity corpora: bits per byte with windows of every length of `seq_lens`,
    /// loss by position with the longest.
    #[serde(default)]
    pub corpora: Vec<CorpusConfig>,
    #[serde(default)]
    pub gates: Vec<Gate>,
}

impl AccuracyConfig {
    /// Makes relative task-file and corpus paths relative to `dir` (the suite file's
    /// directory), so a suite works from any working directory.
    pub fn resolve_paths(&mut self, dir: &std::path::Path) {
        let paths = self
            .task_files
            .iter_mut()
            .map(|f| &mut f.path)
            .chain(self.corpora.iter_mut().map(|c| &mut c.path));
        for p in paths {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Checks what can be checked before loading any model; the message names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.tasks.is_empty() && self.task_files.is_empty() && self.corpora.is_empty() {
            return Err("`accuracy` names no `tasks`, `task_files` or `corpora`".into());
        }
        let p = &self.params;
        if p.examples == 0 {
            return Err("`accuracy.params.examples` must be at least 1".into());
        }
        if p.depths.is_empty() || p.depths.iter().any(|d| !(0.0..=1.0).contains(d)) {
            return Err("`accuracy.params.depths` must be fractions in [0, 1]".into());
        }
        for f in &self.task_files {
            if !f.path.is_file() {
                return Err(format!(
                    "`accuracy.task_files`: {} does not exist",
                    f.path.display()
                ));
            }
        }
        for c in &self.corpora {
            if !c.path.exists() {
                return Err(format!(
                    "`accuracy.corpora`: {} does not exist",
                    c.path.display()
                ));
            }
        }
        for g in &self.gates {
            if g.min.is_none() && g.max.is_none() {
                return Err(format!(
                    "`accuracy.gates`: the gate on `{}` sets neither `min` nor `max`",
                    g.task
                ));
            }
        }
        Ok(())
    }
}
