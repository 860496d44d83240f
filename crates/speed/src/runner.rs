//! Running a suite: isolated cells per (length, model), `sampling.processes` of each,
//! pooled into records and assembled into a [`Results`] document by the shared
//! [`Run`] pipeline.

use std::time::Duration;

use models::{Result, Runtime};
use results::pipeline::{Cell, Observer, Run};
use results::suite::{Measure, Suite};
use results::{Metric, Record, Results};

use results::roofline::{efficiency, train_efficiency, Roofline};
use results::stats::median_in_place;

use crate::fit::{search_isolated, FitJob};
use crate::measure::calibrate::CalibrationPlan;
use crate::measure::isolate::{calibrate_isolated, run_isolated, CellLimits, Launcher};
use crate::measure::{CellEvent, CellOutcome, CellPlan};
use crate::shard::ShardPlan;

/// A metric's pooled samples and how many each process took.
type Split = (Vec<f64>, Vec<usize>);

/// Turns the raw samples of a cell's processes into records, for the measurements the
/// suite asked for. Timings pool every process's samples (split by process, for the
/// intervals); memory gives one sample per process. With a roofline, prefill and
/// decode records carry their efficiency.
pub fn cell_records(
    suite: &Suite,
    measure: Measure,
    seq_len: usize,
    outcomes: &[CellOutcome],
    roofline: Option<&Roofline>,
) -> Vec<Record> {
    let Some(first) = outcomes.first() else {
        return Vec::new();
    };
    let m = measure;
    let pooled = |f: fn(&CellOutcome) -> &[f64]| -> Split {
        let samples = outcomes.iter().flat_map(|o| f(o).iter().copied()).collect();
        (samples, outcomes.iter().map(|o| f(o).len()).collect())
    };
    let per_process = |f: fn(&CellOutcome) -> u64| -> Split {
        (
            outcomes.iter().map(|o| f(o) as f64).collect(),
            vec![1; outcomes.len()],
        )
    };
    let mut series: Vec<(Metric, Split)> = Vec::new();
    if m.prefill {
        let (prefill_ms, sizes) = pooled(|o| &o.prefill_ms);
        let tps = prefill_ms
            .iter()
            .map(|ms| seq_len as f64 / (ms / 1e3))
            .collect();
        series.push((Metric::PrefillTime, (prefill_ms, sizes.clone())));
        series.push((Metric::PrefillThroughput, (tps, sizes)));
    }
    if m.decode {
        series.push((Metric::DecodeLatency, pooled(|o| &o.decode_ms)));
    }
    let train_tokens = first.train_tokens;
    if m.train {
        let (step_ms, sizes) = pooled(|o| &o.train_step_ms);
        let tps = step_ms
            .iter()
            .map(|ms| train_tokens as f64 / (ms / 1e3))
            .collect();
        series.push((Metric::TrainStepTime, (step_ms, sizes.clone())));
        series.push((Metric::TrainThroughput, (tps, sizes)));
        series.push((Metric::TrainPeakRss, per_process(|o| o.peak_rss)));
    }
    if m.memory {
        series.push((Metric::PeakRss, per_process(|o| o.peak_rss)));
        series.push((Metric::RssAfterLoad, per_process(|o| o.rss_after_load)));
        series.push((Metric::StateBytes, per_process(|o| o.state_bytes)));
    }
    let mut state: Vec<f64> = outcomes.iter().map(|o| o.state_bytes as f64).collect();
    let state_bytes = median_in_place(&mut state);
    let name = &suite.config.name;
    series
        .into_iter()
        .filter_map(|(metric, (samples, sizes))| {
            let r = Record::from_samples(
                name,
                &first.info,
                metric,
                seq_len,
                samples,
                Default::default(),
            )?
            .with_processes(sizes);
            let efficiency = roofline.and_then(|roof| match metric {
                Metric::TrainStepTime => {
                    train_efficiency(roof, &first.info, seq_len, train_tokens, r.summary.median)
                }
                _ => efficiency(
                    roof,
                    &first.info,
                    metric,
                    seq_len,
                    r.summary.median,
                    Some(state_bytes),
                ),
            });
            Some(Record { efficiency, ..r })
        })
        .collect()
}

/// The task name of training cells.
pub const TRAIN_CELL: &str = "train";

/// What a cell measures: a training cell only training, an inference cell the rest.
pub fn cell_measure(suite: &Suite, cell: &Cell) -> Measure {
    let m = suite.config.measure;
    if cell.task.as_deref() == Some(TRAIN_CELL) {
        Measure {
            prefill: false,
            decode: false,
            memory: false,
            train: true,
            max_context: false,
            dtype_cost: false,
        }
    } else {
        Measure {
            train: false,
            max_context: false,
            dtype_cost: false,
            ..m
        }
    }
}

/// The cells of a suite, length by length, every model at each length: an inference
/// cell where any inference measurement is on, a training cell where `train` is and
/// the model's implementation has a backward pass.
pub fn cells(suite: &Suite) -> Vec<Cell> {
    let c = &suite.config;
    let kinds: Vec<Option<String>> = [
        c.measure.inference().then_some(None),
        c.measure.train.then(|| Some(TRAIN_CELL.to_string())),
    ]
    .into_iter()
    .flatten()
    .collect();
    c.seq_lens
        .iter()
        .flat_map(|&seq_len| {
            let kinds = &kinds;
            c.models.iter().flat_map(move |model| {
                kinds
                    .iter()
                    .filter(|task| task.is_none() || models::registry::trains(model))
                    .map(move |task| Cell {
                        model: model.clone(),
                        task: task.clone(),
                        seq_len: Some(seq_len),
                        pairs: None,
                    })
            })
        })
        .collect()
}

/// Far more than the calibration's second or two; a machine this slow measures nothing.
const CALIBRATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Widths the roofline is calibrated at: the suite's presets', else a 0.1B model's.
fn calibration_widths(suite: &Suite) -> Vec<usize> {
    let widths: Vec<usize> = suite
        .config
        .models
        .iter()
        .filter_map(|m| models::registry::preset_width(m).ok().flatten())
        .collect();
    if widths.is_empty() {
        vec![768]
    } else {
        widths
    }
}

/// Runs every cell of `suite` in its own child process started by `launcher`, after
/// calibrating the machine's roofline in one; with a `shard` plan, only that shard's
/// cells and searches.
pub fn run_suite(
    suite: &Suite,
    launcher: &Launcher,
    shard: Option<&ShardPlan>,
    observer: &mut dyn Observer,
) -> Result<Results> {
    models::registry::check_suite(suite)?;
    let c = &suite.config;
    let cells: Vec<Cell> = cells(suite)
        .into_iter()
        .filter(|cell| shard.is_none_or(|p| p.has_length(cell.seq_len.unwrap_or(0))))
        .collect();
    let fits: Vec<&results::ModelSpec> = c
        .models
        .iter()
        .filter(|m| c.measure.max_context && shard.is_none_or(|p| p.has_max_context(m)))
        .collect();
    // `sampling.processes` rounds over every cell, so that drift over the run falls on
    // every cell alike. A cell that fails is not run again.
    let rounds = c.sampling.processes;
    let mut run = Run::start(suite, cells.len() * rounds);
    if let Some(p) = shard {
        let units = p.units().iter().map(|u| u.to_string()).collect();
        run.set_shard(p.shard, units, p.share());
    }
    let guard = run.machine().ram_bytes / 10 * 9;
    let limits = CellLimits {
        memory_budget_bytes: c.limits.memory_budget_mb.map_or(guard, |mb| mb << 20),
        budget_declared: c.limits.memory_budget_mb.is_some(),
        timeout: Duration::from_secs_f64(c.limits.cell_timeout_s),
    };
    // The calibration is the machine's, not a cell's: it is held to the machine's guard.
    let calibration_limits = CellLimits {
        memory_budget_bytes: guard,
        budget_declared: false,
        timeout: CALIBRATION_TIMEOUT,
    };
    let launcher = Launcher {
        threads: c.threads,
        ..launcher.clone()
    };
    let calibration = CalibrationPlan {
        widths: calibration_widths(suite),
        dtype: c.dtype,
    };
    // A machine that cannot calibrate still measures; its records lack efficiencies. A
    // shard with no cells (more shards than lengths) has nothing to calibrate for.
    let roofline = if cells.is_empty() && fits.is_empty() {
        None
    } else {
        observer.calibrating();
        calibrate_isolated(&launcher, &calibration, calibration_limits).ok()
    };
    if let Some(roof) = &roofline {
        run.set_roofline(roof.clone());
    }
    let mut outcomes: Vec<Vec<CellOutcome>> = vec![Vec::new(); cells.len()];
    let mut failed = vec![false; cells.len()];
    for round in 0..rounds {
        // Every other round runs the cells backwards: whatever slows the start (or
        // the end) of a round — the machine settling after the previous run, a
        // neighbour's burst — then falls on the short lengths in one round and on the
        // long ones in the next, instead of always on the same length, where it
        // would read as a slope (seen: RWKV decode at 128 tokens 40 % slow in both
        // processes of one run, a slope of -0.07).
        let order: Vec<usize> = if round % 2 == 0 {
            (0..cells.len()).collect()
        } else {
            (0..cells.len()).rev().collect()
        };
        for i in order {
            let cell = &cells[i];
            if failed[i] {
                continue;
            }
            let seq_len = cell.seq_len.unwrap_or(0);
            let measure = cell_measure(suite, cell);
            run.begin(observer, cell);
            let (plan, launcher) = match cell_launch(suite, cell, measure, &launcher) {
                Ok(x) => x,
                Err(e) => {
                    run.fail(observer, cell, results::FailureKind::Errored, e.to_string());
                    failed[i] = true;
                    continue;
                }
            };
            let mut forward = |e: &CellEvent| {
                if let CellEvent::Progress { phase, done, total } = e {
                    observer.cell_progress(cell, *phase, *done, *total);
                }
            };
            match run_isolated(&launcher, &plan, limits, &mut forward) {
                Ok(outcome) => {
                    let records = cell_records(
                        suite,
                        measure,
                        seq_len,
                        std::slice::from_ref(&outcome),
                        None,
                    );
                    run.end(observer, cell, Ok(&records));
                    run.threads_used = Some(outcome.threads);
                    outcomes[i].push(outcome);
                }
                Err(e) => {
                    run.fail(observer, cell, e.kind, e.message);
                    failed[i] = true;
                }
            }
        }
    }
    for (cell, outs) in cells.iter().zip(&outcomes) {
        if let Some(o) = outs.first() {
            run.add_model(o.info.clone());
        }
        let seq_len = cell.seq_len.unwrap_or(0);
        let measure = cell_measure(suite, cell);
        run.add_records(cell_records(
            suite,
            measure,
            seq_len,
            outs,
            roofline.as_ref(),
        ));
    }
    for model in fits {
        let (fit, info) = fit_model(&launcher, suite, model, observer);
        if let Some(info) = info.filter(|i| !run.has_model(&i.spec)) {
            run.add_model(info);
        }
        run.add_fit(fit);
    }
    Ok(run.results(&[]))
}

/// The plan of `cell` and the child that measures it: this binary, or for a Python
/// peer the suite's interpreter running `scripts/peers/cell.py` (given the preset's
/// shapes, since it builds the weights itself).
fn cell_launch(
    suite: &Suite,
    cell: &Cell,
    measure: Measure,
    ours: &Launcher,
) -> Result<(CellPlan, Launcher)> {
    let c = &suite.config;
    let mut plan = CellPlan {
        model: cell.model.clone(),
        seq_len: cell.seq_len.unwrap_or(0),
        dtype: c.dtype,
        seed: c.seed,
        measure,
        sampling: c.sampling,
        train: c.train,
        preset: None,
    };
    match models::registry::runtime(&cell.model)? {
        Runtime::Native => Ok((plan, ours.clone())),
        Runtime::Python => {
            plan.preset = models::registry::preset_shapes(&cell.model)?;
            let python = c.python.clone().unwrap_or_else(|| "python3".into());
            let launcher = Launcher {
                program: python,
                args: vec![models::registry::peer_script().display().to_string()],
                threads: ours.threads,
            };
            Ok((plan, launcher))
        }
    }
}

/// The max-context search of one model of the suite, one process per probe.
fn fit_model(
    launcher: &Launcher,
    suite: &Suite,
    model: &results::ModelSpec,
    observer: &mut dyn Observer,
) -> (results::fit::Fit, Option<results::ModelInfo>) {
    let c = &suite.config;
    let job = FitJob {
        model: model.clone(),
        dtype: c.dtype,
        seed: c.seed,
        settings: c.fit,
    };
    search_isolated(launcher, &job, observer)
}
