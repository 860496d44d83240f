//! Results files sorted into machines. Two files are one machine when their recorded
//! captures have the same [`MachineId`] (CPU model and features, usable cores and
//! memory, architecture), whatever the files are called and whichever host name they
//! carry: identical cloud instances are one kind of hardware. One machine's runs are
//! combined into one set of records and analysed again, so a suite split over several
//! runs (or re-run in part) counts once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use results::analysis::{analyse, Analysis};
use results::machine::MachineId;
use results::{CellKey, ModelInfo, Record, Results};
use serde::Serialize;

use crate::Result;
use results::fit::thousands;

/// One results file as given.
#[derive(Debug, Clone)]
pub struct Run {
    /// The path as the user wrote it: how the report names the file.
    pub file: String,
    pub results: Results,
}

impl Run {
    /// Reads a results file; an unreadable one is an error naming it.
    pub fn load(path: &Path) -> Result<Self> {
        Ok(Self {
            file: path.display().to_string(),
            results: Results::load(path)?,
        })
    }
}

/// Cells that two runs of one machine both measured: the later run's were kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replacement {
    /// The file whose records were kept, and when its run finished.
    pub kept: (String, String),
    /// The file whose records were dropped, and when its run finished.
    pub dropped: (String, String),
    /// The cells, as `model metric at length`.
    pub cells: Vec<String>,
}

/// One machine: the runs made on it, with their records combined and analysed.
#[derive(Debug, Clone)]
pub struct MachineRuns {
    pub id: MachineId,
    /// The id and the threads its runs used: how the report names the machine.
    pub label: String,
    /// Its runs, by `finished_at`, earliest first.
    pub runs: Vec<Run>,
    /// The threads its runs used, distinct and ascending (`None`: not recorded).
    pub threads: Vec<Option<usize>>,
    /// Every model of its runs, the latest run's description of each.
    pub models: Vec<ModelInfo>,
    /// One record per cell: where two runs measured a cell, the later run's.
    pub records: Vec<Record>,
    /// The analysis of `records`, made afresh (each file's own covers only its cells).
    pub analysis: Analysis,
    pub replaced: Vec<Replacement>,
}

/// The machines of a multi-machine report, ordered by id.
#[derive(Debug, Clone)]
pub struct Machines {
    pub machines: Vec<MachineRuns>,
}

impl Machines {
    /// Reads every file and groups them; see [`Machines::from_runs`].
    pub fn load(paths: &[PathBuf]) -> Result<Self> {
        let runs = paths
            .iter()
            .map(|p| Run::load(p))
            .collect::<Result<Vec<_>>>()?;
        Self::from_runs(runs)
    }

    /// Groups runs by machine. Fewer than two machines is an error pointing to the
    /// single-file report: there is nothing to compare across hardware.
    pub fn from_runs(runs: Vec<Run>) -> Result<Self> {
        let files: Vec<String> = runs.iter().map(|r| r.file.clone()).collect();
        let mut by_id: BTreeMap<MachineId, Vec<Run>> = BTreeMap::new();
        for run in runs {
            by_id.entry(run.results.machine.id()).or_default().push(run);
        }
        if by_id.len() < 2 {
            let found = match by_id.keys().next() {
                Some(id) => format!(
                    "{} recorded on one machine ({id})",
                    if files.len() == 1 {
                        "the one file was".to_string()
                    } else {
                        format!("all {} files were", files.len())
                    }
                ),
                None => "no results files given".into(),
            };
            return Err(results::Error::Results {
                path: PathBuf::from(files.join(", ")),
                message: format!(
                    "{found}: a report across machines needs runs from two machines or more \
                     (told apart by the recorded CPU model, usable cores, memory, CPU features \
                     and architecture, not by file name); for one machine's report give one \
                     file: `rwkv-bench report FILE`"
                ),
            }
            .into());
        }
        Ok(Self {
            machines: by_id
                .into_iter()
                .map(|(id, runs)| MachineRuns::combine(id, runs))
                .collect(),
        })
    }

    /// How many files the machines' runs came from.
    pub fn files(&self) -> usize {
        self.machines.iter().map(|m| m.runs.len()).sum()
    }
}

/// A cell as a reader names it: `llama:preset=0.1b decode latency at 1,024`.
fn cell(r: &Record) -> String {
    let task = r
        .task
        .task
        .as_deref()
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    format!(
        "{} {} at {}{task}",
        r.model,
        r.metric.label(),
        thousands(r.seq_len)
    )
}

/// `2 threads`, `1 and 2 threads`, `threads not recorded`.
pub fn threads_text(threads: &[Option<usize>]) -> String {
    let known: Vec<String> = threads.iter().flatten().map(|n| n.to_string()).collect();
    match known.as_slice() {
        [] => "threads not recorded".into(),
        [one] if one == "1" => "1 thread".into(),
        [one] => format!("{one} threads"),
        [init @ .., last] => format!("{} and {last} threads", init.join(", ")),
    }
}

impl MachineRuns {
    /// Combines one machine's runs: the records of every run, and where two runs
    /// measured the same cell, the record of the one that finished later (a re-run
    /// supersedes what it repeats). Ties keep the file given last.
    fn combine(id: MachineId, mut runs: Vec<Run>) -> Self {
        // RFC 3339 times in UTC, as every run writes them, sort as strings.
        runs.sort_by(|a, b| a.results.finished_at.cmp(&b.results.finished_at));
        let mut records: Vec<(CellKey, Record, usize)> = Vec::new();
        let mut replaced: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
        let mut models: Vec<ModelInfo> = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            for r in &run.results.records {
                let key = r.key();
                match records.iter_mut().find(|(k, _, _)| *k == key) {
                    Some(slot) => {
                        if slot.2 != i {
                            replaced.entry((i, slot.2)).or_default().push(cell(r));
                        }
                        *slot = (key, r.clone(), i);
                    }
                    None => records.push((key, r.clone(), i)),
                }
            }
            for m in &run.results.models {
                match models.iter_mut().find(|x| x.spec == m.spec) {
                    Some(slot) => *slot = m.clone(),
                    None => models.push(m.clone()),
                }
            }
        }
        let mut threads: Vec<Option<usize>> = runs
            .iter()
            .map(|r| r.results.settings.threads_used)
            .collect();
        threads.sort_unstable();
        threads.dedup();
        let records: Vec<Record> = records.into_iter().map(|(_, r, _)| r).collect();
        let named = |i: usize| (runs[i].file.clone(), runs[i].results.finished_at.clone());
        let replaced = replaced
            .into_iter()
            .map(|((kept, dropped), cells)| Replacement {
                kept: named(kept),
                dropped: named(dropped),
                cells,
            })
            .collect();
        Self {
            label: format!("{id}, {}", threads_text(&threads)),
            analysis: analyse(&models, &records),
            id,
            runs,
            threads,
            models,
            records,
            replaced,
        }
    }

    /// The model a spec names, among this machine's runs.
    pub fn model(&self, spec: &results::ModelSpec) -> Option<&ModelInfo> {
        self.models.iter().find(|m| m.spec == *spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_listed_in_words() {
        assert_eq!(threads_text(&[Some(1)]), "1 thread");
        assert_eq!(threads_text(&[Some(2)]), "2 threads");
        assert_eq!(threads_text(&[Some(1), Some(2)]), "1 and 2 threads");
        assert_eq!(
            threads_text(&[None, Some(1), Some(2), Some(4)]),
            "1, 2 and 4 threads"
        );
        assert_eq!(threads_text(&[None]), "threads not recorded");
    }
}
