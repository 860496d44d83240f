//! Running a suite: isolated cells per (length, model), `sampling.processes` of each,
//! then statistics and scaling analysis, assembled into a [`Results`] document.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use crate::analysis::analyse;
use crate::machine::Machine;
use crate::measure::isolate::{run_isolated, CellLimits, Launcher};
use crate::measure::{CellEvent, CellOutcome, CellPlan};
use crate::model::ModelInfo;
use crate::results::{
    Failure, Metric, Record, Results, RunSettings, SuiteRecord, Tool, SCHEMA_VERSION,
};
use crate::stats::summarize;
use crate::suite::Suite;
use crate::Result;

/// One cell of a suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellId {
    pub model: String,
    pub seq_len: usize,
}

/// Receives progress; the CLI draws it, tests ignore it. Library code never prints.
pub trait Observer {
    fn cell_started(&mut self, _cell: &CellId, _index: usize, _total: usize) {}
    fn cell_progress(&mut self, _cell: &CellId, _event: &CellEvent) {}
    fn cell_finished(&mut self, _cell: &CellId, _result: std::result::Result<&CellOutcome, &str>) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// The tool description recorded in results.
pub fn tool() -> Tool {
    let crate_versions: BTreeMap<String, String> = env!("RWKV_BENCH_DEP_VERSIONS")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Tool {
        name: "rwkv-bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        git_commit: env!("RWKV_BENCH_GIT_COMMIT").into(),
        crate_versions,
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Turns the raw samples of a cell's processes into records, for the measurements the
/// suite asked for. Timings pool every process's samples; memory gives one sample per
/// process.
pub fn cell_records(suite: &Suite, seq_len: usize, outcomes: &[CellOutcome]) -> Vec<Record> {
    let Some(first) = outcomes.first() else {
        return Vec::new();
    };
    let m = suite.config.measure;
    let pooled = |f: fn(&CellOutcome) -> &[f64]| -> Vec<f64> {
        outcomes.iter().flat_map(|o| f(o).iter().copied()).collect()
    };
    let per_process =
        |f: fn(&CellOutcome) -> u64| -> Vec<f64> { outcomes.iter().map(|o| f(o) as f64).collect() };
    let mut series: Vec<(Metric, Vec<f64>)> = Vec::new();
    if m.prefill {
        let prefill_ms = pooled(|o| &o.prefill_ms);
        let tps = prefill_ms
            .iter()
            .map(|ms| seq_len as f64 / (ms / 1e3))
            .collect();
        series.push((Metric::PrefillTime, prefill_ms));
        series.push((Metric::PrefillThroughput, tps));
    }
    if m.decode {
        series.push((Metric::DecodeLatency, pooled(|o| &o.decode_ms)));
    }
    if m.memory {
        series.push((Metric::PeakRss, per_process(|o| o.peak_rss)));
        series.push((Metric::RssAfterLoad, per_process(|o| o.rss_after_load)));
        series.push((Metric::StateBytes, per_process(|o| o.state_bytes)));
    }
    series
        .into_iter()
        .filter_map(|(metric, samples)| {
            let summary = summarize(&samples)?;
            Some(Record {
                suite: suite.config.name.clone(),
                model: first.info.spec.clone(),
                implementation: first.info.implementation.clone(),
                arch: first.info.arch,
                metric,
                seq_len,
                unit: metric.unit(),
                samples,
                summary,
                task: Default::default(),
            })
        })
        .collect()
}

/// Runs every cell of `suite` in its own child process started by `launcher`.
pub fn run_suite(
    suite: &Suite,
    launcher: &Launcher,
    observer: &mut dyn Observer,
) -> Result<Results> {
    let c = &suite.config;
    let started_at = now_rfc3339();
    let clock = Instant::now();
    let machine = Machine::capture();
    let budget = c
        .limits
        .memory_budget_mb
        .map(|mb| mb << 20)
        .unwrap_or(machine.ram_bytes / 10 * 9);
    let limits = CellLimits {
        memory_budget_bytes: budget,
        timeout: Duration::from_secs_f64(c.limits.cell_timeout_s),
    };
    let launcher = Launcher {
        threads: c.threads,
        ..launcher.clone()
    };
    let cells: Vec<CellId> = c
        .seq_lens
        .iter()
        .flat_map(|&seq_len| {
            c.models.iter().map(move |model| CellId {
                model: model.clone(),
                seq_len,
            })
        })
        .collect();

    // `sampling.processes` rounds over every cell, so that drift over the run falls on
    // every cell alike. A cell that fails is not run again.
    let rounds = c.sampling.processes;
    let total = cells.len() * rounds;
    let mut outcomes: Vec<Vec<CellOutcome>> = vec![Vec::new(); cells.len()];
    let mut failed = vec![false; cells.len()];
    let mut failures = Vec::new();
    let mut threads_used = None;
    for round in 0..rounds {
        for (i, cell) in cells.iter().enumerate() {
            if failed[i] {
                continue;
            }
            observer.cell_started(cell, round * cells.len() + i, total);
            let plan = CellPlan {
                model: cell.model.clone(),
                seq_len: cell.seq_len,
                dtype: c.dtype,
                seed: c.seed,
                measure: c.measure,
                sampling: c.sampling,
            };
            let mut forward = |e: &CellEvent| observer.cell_progress(cell, e);
            match run_isolated(&launcher, &plan, limits, &mut forward) {
                Ok(outcome) => {
                    observer.cell_finished(cell, Ok(&outcome));
                    threads_used = Some(outcome.threads);
                    outcomes[i].push(outcome);
                }
                Err(e) => {
                    let error = e.to_string();
                    observer.cell_finished(cell, Err(&error));
                    failed[i] = true;
                    failures.push(Failure {
                        model: cell.model.clone(),
                        seq_len: cell.seq_len,
                        error,
                    });
                }
            }
        }
    }
    let mut records = Vec::new();
    let mut models: Vec<ModelInfo> = Vec::new();
    for (cell, outs) in cells.iter().zip(&outcomes) {
        if let Some(o) = outs.first() {
            if !models.iter().any(|m| m.spec == o.info.spec) {
                models.push(o.info.clone());
            }
        }
        records.extend(cell_records(suite, cell.seq_len, outs));
    }
    let analysis = analyse(&models, &records);
    Ok(Results {
        schema_version: SCHEMA_VERSION,
        tool: tool(),
        started_at,
        finished_at: now_rfc3339(),
        duration_s: clock.elapsed().as_secs_f64(),
        machine,
        settings: RunSettings {
            threads_requested: c.threads,
            threads_used,
            dtype: format!("{:?}", c.dtype).to_lowercase(),
            device: "cpu".into(),
        },
        suite: SuiteRecord {
            path: suite.path.display().to_string(),
            source: suite.source.clone(),
            config: c.clone(),
        },
        models,
        records,
        failures,
        analysis,
        gates: Vec::new(),
    })
}
