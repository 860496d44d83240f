//! What every run shares, speed suites and evaluations alike: the cells it works
//! through, progress reported to an [`Observer`], failures recorded, and the
//! [`Results`] document assembled.

use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::accuracy::Gate;
use crate::analysis::analyse;
use crate::fit::Fit;
use crate::machine::Machine;
use crate::model_info::ModelInfo;
use crate::record::{CellKey, Failure, FailureKind, Record};
use crate::schema::{Results, RunSettings, SuiteRecord, SCHEMA_VERSION};
use crate::shard::{Shard, ShardRecord};
use crate::spec::ModelSpec;
use crate::suite::Suite;
use crate::tool::tool;

/// One unit of work: a model at a length (speed), or a task, task file or corpus on a
/// model at a length (accuracy; a task file has no length).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub model: ModelSpec,
    pub task: Option<String>,
    pub seq_len: Option<usize>,
    /// MQAR's key-value pairs, where a suite evaluates a grid of them.
    pub pairs: Option<usize>,
}

/// The task name of a max-context search's probes.
pub const FIT_PROBE: &str = "max_context";

/// The task name of a dtype-cost measurement (`measure.dtype_cost`).
pub const DTYPE_COST: &str = "dtype_cost";

impl Cell {
    /// The cell the dtype cost of `model` over `tokens` positions is shown as.
    pub fn dtype_cost(model: &ModelSpec, tokens: usize) -> Self {
        Self {
            model: model.clone(),
            task: Some(DTYPE_COST.into()),
            seq_len: Some(tokens),
            pairs: None,
        }
    }

    /// The cell a max-context probe of `model` at `seq_len` tokens is shown as.
    pub fn fit_probe(model: &ModelSpec, seq_len: usize) -> Self {
        Self {
            model: model.clone(),
            task: Some(FIT_PROBE.into()),
            seq_len: Some(seq_len),
            pairs: None,
        }
    }

    /// Whether a record with this key belongs to the cell.
    pub fn holds(&self, key: &CellKey) -> bool {
        key.model == self.model
            && key.task == self.task
            && self.seq_len.is_none_or(|l| l == key.seq_len)
            && key.pairs == self.pairs
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.model)?;
        if let Some(t) = &self.task {
            write!(f, " {t}")?;
        }
        if let Some(k) = self.pairs {
            write!(f, " ({k} pairs)")?;
        }
        if let Some(l) = self.seq_len {
            write!(f, " @ {l}")?;
        }
        Ok(())
    }
}

/// What a cell is doing, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Load,
    Warmup,
    Prefill,
    Decode,
    /// Scoring the examples, items or documents of an accuracy cell.
    Score,
    /// Optimizer steps of a training cell.
    Train,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Load => "loading",
            Phase::Warmup => "warm-up",
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
            Phase::Score => "scoring",
            Phase::Train => "training steps",
        }
    }
}

/// Receives progress; the CLI draws it, tests ignore it. Library code never prints.
pub trait Observer {
    /// A model is being built (evaluations build each model once for all its cells).
    fn model_loading(&mut self, _model: &ModelSpec) {}
    /// The machine's roofline is being calibrated (speed runs, before the cells).
    fn calibrating(&mut self) {}
    fn cell_started(&mut self, _cell: &Cell, _index: usize, _total: usize) {}
    fn cell_progress(&mut self, _cell: &Cell, _phase: Phase, _done: usize, _total: usize) {}
    /// The records the cell produced (for one process of a speed cell, that
    /// process's), or why it failed.
    fn cell_finished(&mut self, _cell: &Cell, _result: Result<&[Record], &str>) {}
    /// The cell's records were already in the results being resumed.
    fn cell_skipped(&mut self, _cell: &Cell, _index: usize, _total: usize) {}
    /// A max-context search starts a probe (its phases come as `cell_progress` of
    /// the cell [`Cell::fit_probe`]).
    fn fit_probe_started(&mut self, _cell: &Cell) {}
    fn fit_probe_finished(&mut self, _cell: &Cell, _probe: &crate::fit::FitProbe) {}
    /// A dtype-cost measurement starts, after every timing cell (the cell
    /// [`Cell::dtype_cost`]); `index` of `total` such measurements.
    fn dtype_cost_started(&mut self, _cell: &Cell, _index: usize, _total: usize) {}
    fn dtype_cost_finished(&mut self, _cell: &Cell, _cost: &crate::dtype_cost::DtypeCost) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A run in progress: the models, records and failures so far.
pub struct Run<'a> {
    suite: &'a Suite,
    started_at: String,
    clock: Instant,
    /// Seconds spent by the run this one resumes.
    earlier_s: f64,
    machine: Machine,
    /// Compute threads the cells ran with, once one has reported them.
    pub threads_used: Option<usize>,
    models: Vec<ModelInfo>,
    records: Vec<Record>,
    failures: Vec<Failure>,
    fits: Vec<Fit>,
    /// Cells begun or skipped so far, and how many the run has.
    index: usize,
    total: usize,
    /// The shard this run is, its units and its share of the predicted cost.
    shard: Option<(Shard, Vec<String>, f64)>,
}

impl<'a> Run<'a> {
    /// A new run of `suite` over `total` cells.
    pub fn start(suite: &'a Suite, total: usize) -> Self {
        Self {
            suite,
            started_at: now_rfc3339(),
            clock: Instant::now(),
            earlier_s: 0.0,
            machine: Machine::capture(),
            threads_used: None,
            models: Vec::new(),
            records: Vec::new(),
            failures: Vec::new(),
            fits: Vec::new(),
            index: 0,
            total,
            shard: None,
        }
    }

    /// Makes the run shard `shard` of its suite, given `units` (labels) holding
    /// `predicted_share` of the suite's predicted cost.
    pub fn set_shard(&mut self, shard: Shard, units: Vec<String>, predicted_share: f64) {
        self.shard = Some((shard, units, predicted_share));
    }

    /// Continues `previous`: its models and records are kept, its failures retried.
    pub fn resume(suite: &'a Suite, total: usize, previous: Results) -> Self {
        Self {
            started_at: previous.started_at,
            earlier_s: previous.duration_s,
            models: previous.models,
            records: previous.records,
            fits: previous.fits,
            ..Self::start(suite, total)
        }
    }

    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Stores the roofline calibrated for this run.
    pub fn set_roofline(&mut self, roofline: crate::roofline::Roofline) {
        self.machine.roofline = Some(roofline);
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Whether the run already holds records of `cell`.
    pub fn has(&self, cell: &Cell) -> bool {
        self.records.iter().any(|r| cell.holds(&r.key()))
    }

    /// Whether the run describes a model of `spec`.
    pub fn has_model(&self, spec: &ModelSpec) -> bool {
        self.models.iter().any(|m| m.spec == *spec)
    }

    /// Adds (or replaces) the description of a model.
    pub fn add_model(&mut self, info: ModelInfo) {
        self.models.retain(|m| m.spec != info.spec);
        self.models.push(info);
    }

    pub fn add_fit(&mut self, fit: Fit) {
        self.fits.push(fit);
    }

    pub fn add_records(&mut self, records: impl IntoIterator<Item = Record>) {
        self.records.extend(records);
    }

    /// Announces the next cell.
    pub fn begin(&mut self, obs: &mut dyn Observer, cell: &Cell) {
        obs.cell_started(cell, self.index, self.total);
        self.index += 1;
    }

    /// Reports a cell's outcome; a failure is recorded as an error, and the run goes on.
    pub fn end(&mut self, obs: &mut dyn Observer, cell: &Cell, result: Result<&[Record], String>) {
        match result {
            Ok(records) => obs.cell_finished(cell, Ok(records)),
            Err(error) => self.fail(obs, cell, FailureKind::Errored, error),
        }
    }

    /// Records a cell that ended without a measurement, of `kind`; the run goes on.
    pub fn fail(&mut self, obs: &mut dyn Observer, cell: &Cell, kind: FailureKind, error: String) {
        obs.cell_finished(cell, Err(&error));
        self.failures.push(Failure {
            model: cell.model.clone(),
            seq_len: cell.seq_len.unwrap_or(0),
            error,
            kind,
        });
    }

    /// Passes over a cell that `has` already.
    pub fn skip(&mut self, obs: &mut dyn Observer, cell: &Cell) {
        obs.cell_skipped(cell, self.index, self.total);
        self.index += 1;
    }

    /// The results document as it stands, with `gates` checked against it.
    pub fn results(&self, gates: &[Gate]) -> Results {
        let c = &self.suite.config;
        let finished_at = now_rfc3339();
        let duration_s = self.earlier_s + self.clock.elapsed().as_secs_f64();
        let shards = self
            .shard
            .iter()
            .map(|(shard, units, share)| ShardRecord {
                index: shard.index,
                count: shard.count,
                units: units.clone(),
                predicted_share: *share,
                hostname: self.machine.hostname.clone(),
                started_at: self.started_at.clone(),
                finished_at: finished_at.clone(),
                duration_s,
            })
            .collect();
        Results {
            schema_version: SCHEMA_VERSION,
            tool: tool(),
            started_at: self.started_at.clone(),
            finished_at,
            duration_s,
            machine: self.machine.clone(),
            settings: RunSettings {
                threads_requested: c.threads,
                threads_used: self.threads_used,
                dtype: c.dtype.name().into(),
                device: "cpu".into(),
            },
            suite: SuiteRecord {
                path: self.suite.path.display().to_string(),
                source: self.suite.source.clone(),
                config: c.clone(),
            },
            models: self.models.clone(),
            records: self.records.clone(),
            failures: self.failures.clone(),
            analysis: analyse(&self.models, &self.records),
            gates: crate::gate::check(&self.models, &self.records, gates),
            fits: self.fits.clone(),
            dtype_costs: Vec::new(),
            shards,
        }
    }
}
