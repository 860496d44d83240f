//! Running a suite: one isolated cell per (length, model), then statistics and
//! scaling analysis, assembled into a [`Results`] document.

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

/// Turns a cell's raw samples into records, for the measurements the suite asked for.
pub fn cell_records(suite: &Suite, seq_len: usize, o: &CellOutcome) -> Vec<Record> {
    let m = suite.config.measure;
    let mut series: Vec<(Metric, Vec<f64>)> = Vec::new();
    if m.prefill {
        series.push((Metric::PrefillTime, o.prefill_ms.clone()));
        let tps = o
            .prefill_ms
            .iter()
            .map(|ms| seq_len as f64 / (ms / 1e3))
            .collect();
        series.push((Metric::PrefillThroughput, tps));
    }
    if m.decode {
        series.push((Metric::DecodeLatency, o.decode_ms.clone()));
    }
    if m.memory {
        series.push((Metric::PeakRss, vec![o.peak_rss as f64]));
        series.push((Metric::RssAfterLoad, vec![o.rss_after_load as f64]));
        series.push((Metric::StateBytes, vec![o.state_bytes as f64]));
    }
    series
        .into_iter()
        .filter_map(|(metric, samples)| {
            let summary = summarize(&samples)?;
            Some(Record {
                suite: suite.config.name.clone(),
                model: o.info.spec.clone(),
                implementation: o.info.implementation.clone(),
                arch: o.info.arch,
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

    let mut records = Vec::new();
    let mut failures = Vec::new();
    let mut models: Vec<ModelInfo> = Vec::new();
    let mut threads_used = None;
    for (index, cell) in cells.iter().enumerate() {
        observer.cell_started(cell, index, cells.len());
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
                if !models.iter().any(|m| m.spec == outcome.info.spec) {
                    models.push(outcome.info.clone());
                }
                records.extend(cell_records(suite, cell.seq_len, &outcome));
            }
            Err(e) => {
                let error = e.to_string();
                observer.cell_finished(cell, Err(&error));
                failures.push(Failure {
                    model: cell.model.clone(),
                    seq_len: cell.seq_len,
                    error,
                });
            }
        }
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
