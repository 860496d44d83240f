//! A run history: one JSON line per run with the medians of every cell, so a CI job can
//! append each run and chart the trend without keeping every results file.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::record::{CellKey, Metric};
use crate::schema::Results;
use crate::spec::ModelSpec;
use crate::{Error, Result};

/// The figure of one cell in one run. A cell is (model, metric, length) and, for
/// accuracy records, task and depth: two tasks at one length are two cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub model: ModelSpec,
    pub metric: Metric,
    pub seq_len: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<usize>,
    pub median: f64,
    /// The mean, kept for accuracy metrics: an accuracy is the mean of 0/1 samples, whose
    /// median says nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
}

impl Point {
    /// The figure to chart: the mean of accuracy metrics, the median of costs.
    pub fn value(&self) -> f64 {
        self.mean.unwrap_or(self.median)
    }

    pub fn key(&self) -> CellKey {
        CellKey {
            model: self.model.clone(),
            metric: self.metric,
            seq_len: self.seq_len,
            task: self.task.clone(),
            depth: self.depth,
            pairs: self.pairs,
        }
    }
}

/// One line of a history file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub started_at: String,
    pub git_commit: String,
    pub suite: String,
    pub cpu_model: String,
    pub points: Vec<Point>,
}

impl Entry {
    pub fn from_results(r: &Results) -> Self {
        Self {
            started_at: r.started_at.clone(),
            git_commit: r.tool.git_commit.clone(),
            suite: r.suite.config.name.clone(),
            cpu_model: r.machine.cpu_model.clone(),
            points: r
                .records
                .iter()
                .map(|rec| Point {
                    model: rec.model.clone(),
                    metric: rec.metric,
                    seq_len: rec.seq_len,
                    task: rec.task.task.clone(),
                    depth: rec.task.depth,
                    pairs: rec.task.pairs,
                    median: rec.summary.median,
                    mean: rec.metric.is_accuracy().then_some(rec.summary.mean),
                })
                .collect(),
        }
    }
}

/// Appends one run as a line. A line is written with a single `write_all` on a file
/// opened for appending, so a crash leaves earlier lines intact.
pub fn append(path: &Path, entry: &Entry) -> Result<()> {
    let mut line = serde_json::to_string(entry).map_err(|e| Error::Results {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    line.push('\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(line.as_bytes()).map_err(|e| Error::io(path, e))
}

/// Reads every line; a malformed line is an error naming its line number.
pub fn load(path: &Path) -> Result<Vec<Entry>> {
    // Bytes, not a string: a line cut inside a multi-byte character is a malformed
    // line (with its number), not an I/O error.
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.trim_ascii().is_empty())
        .map(|(i, l)| {
            serde_json::from_slice(l).map_err(|e| Error::Results {
                path: path.to_path_buf(),
                message: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(commit: &str) -> Entry {
        Entry {
            started_at: "2026-11-26T00:00:00Z".into(),
            git_commit: commit.into(),
            suite: "ci".into(),
            cpu_model: "cpu".into(),
            points: vec![Point {
                model: "llama:preset=tiny".parse().unwrap(),
                metric: Metric::DecodeLatency,
                seq_len: 16,
                task: None,
                depth: None,
                pairs: None,
                median: 1.5,
                mean: None,
            }],
        }
    }

    #[test]
    fn appends_and_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h/history.jsonl");
        append(&path, &entry("a")).unwrap();
        append(&path, &entry("b")).unwrap();
        let all = load(&path).unwrap();
        assert_eq!(
            all.iter()
                .map(|e| e.git_commit.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn malformed_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        append(&path, &entry("a")).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"started_at\": \n")
            .unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("history.jsonl: line 2"), "{e}");
    }

    #[test]
    fn a_line_cut_inside_a_character_is_a_malformed_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        append(&path, &entry("abc")).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice("{\"suite\": \"é".as_bytes());
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("h.jsonl") && e.contains("line 2"), "{e}");
    }
}
