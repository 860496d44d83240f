//! The longest prompt a model prefills and decodes within a memory budget: a search
//! over isolated processes, one prompt length each, that starts from a memory model
//! fitted to its first probe (weights + runtime + a chunk's activations, plus the KV
//! cache's bytes per token) and brackets the limit to within `tolerance`.

use std::time::{Duration, Instant};

use results::fit::{Fit, FitPrediction, FitProbe, ProbeOutcome};
use results::pipeline::{Cell, Observer};
use results::suite::{Dtype, FitSettings, Measure, Sampling};
use results::{FailureKind, ModelInfo, ModelSpec};

use crate::measure::isolate::{run_isolated, CellLimits, Launcher};
use crate::measure::{CellEvent, CellPlan};

/// A search stops after this many probes whatever the bracket (each is a process
/// that prefills up to the cap).
const MAX_PROBES: usize = 16;

/// Decode steps each probe takes after its prompt: the question is whether the model
/// still serves once the context is in memory, not how fast.
const PROBE_DECODE_TOKENS: usize = 2;

/// What a search is asked: one model, one budget.
#[derive(Debug, Clone)]
pub struct FitJob {
    pub model: ModelSpec,
    pub dtype: Dtype,
    pub seed: u64,
    pub settings: FitSettings,
}

/// One probe as it came out, with the model's description when the process finished.
#[derive(Debug, Clone)]
pub struct Reading {
    pub probe: FitProbe,
    pub info: Option<ModelInfo>,
}

/// The memory model of a probe that fitted: what it held besides the state stays, and
/// a KV cache grows by its state over its tokens.
pub fn predict(info: &ModelInfo, probe: &FitProbe, budget: u64) -> FitPrediction {
    let state = probe.state_bytes.unwrap_or(0);
    let fixed = probe.peak_rss.saturating_sub(state);
    let (bytes_per_token, constant_state_bytes) = if info.arch.constant_state() {
        (0.0, state)
    } else {
        (state as f64 / probe.seq_len.max(1) as f64, 0)
    };
    let room = budget as f64 - fixed as f64 - constant_state_bytes as f64;
    let max_context = (bytes_per_token > 0.0).then(|| (room.max(0.0) / bytes_per_token) as usize);
    FitPrediction {
        weight_bytes: info.weight_bytes,
        fixed_bytes: fixed,
        bytes_per_token,
        constant_state_bytes,
        max_context,
    }
}

/// Where a search stands: the longest prompt that fitted and the shortest that did
/// not, and how many probes in a row went the same way (each further one doubles its
/// step, so a wrong start is left quickly).
#[derive(Debug, Clone)]
struct Bracket {
    tolerance: f64,
    granularity: usize,
    cap: usize,
    lo: Option<usize>,
    hi: Option<usize>,
    last_fit: bool,
    streak: i32,
    /// A first guess from the memory model, tried once if it lies inside the bracket.
    guess: Option<f64>,
}

impl Bracket {
    fn new(s: &FitSettings) -> Self {
        Self {
            tolerance: s.tolerance,
            granularity: s.granularity,
            cap: s.cap,
            lo: None,
            hi: None,
            last_fit: true,
            streak: 0,
            guess: None,
        }
    }

    fn record(&mut self, seq_len: usize, fits: bool, guessed: bool) {
        if fits {
            self.lo = Some(self.lo.map_or(seq_len, |l| l.max(seq_len)));
        } else {
            self.hi = Some(self.hi.map_or(seq_len, |h| h.min(seq_len)));
        }
        // After the model's guess, the next step is the tolerance: an accurate guess
        // then brackets the limit in two probes.
        self.streak = if guessed || fits != self.last_fit {
            1
        } else {
            self.streak + 1
        };
        self.last_fit = fits;
    }

    /// The next prompt length to try, or `None` once the bracket is tight, the cap
    /// fits, or nothing shorter is left to try.
    fn next(&mut self, start: usize) -> Option<(usize, bool)> {
        let (tol, g) = (self.tolerance, self.granularity);
        let (lo, hi) = match (self.lo, self.hi) {
            (None, None) => return Some((start.min(self.cap), false)),
            (Some(l), Some(h)) if h as f64 <= l as f64 * (1.0 + tol) || h <= l + g => return None,
            (l, h) => (l.unwrap_or(0), h.unwrap_or(usize::MAX)),
        };
        let top = self.cap.min(hi.saturating_sub(g));
        let bottom = lo + g;
        if bottom > top && !(lo < self.cap && self.cap < hi) {
            return None;
        }
        let inside = |x: f64| x > lo as f64 && x < hi as f64;
        let (raw, guessed) = match self.guess.take().filter(|&x| inside(x)) {
            Some(x) => (x, true),
            None => {
                let step = tol * 2f64.powi(self.streak.max(1) - 1);
                let up = lo as f64 * (1.0 + step).min(2.0);
                let down = hi as f64 * (1.0 - step).max(0.5);
                let raw = match (self.lo, self.hi) {
                    (Some(_), None) => up,
                    (None, Some(_)) => down,
                    _ => {
                        let mid = (lo as f64 * hi as f64).sqrt();
                        if self.last_fit {
                            mid.min(up)
                        } else {
                            mid.max(down)
                        }
                    }
                };
                (raw, false)
            }
        };
        // Multiples of the granularity, except the cap itself.
        let rounded = (raw / g as f64).floor() as usize * g;
        let len = if raw >= self.cap as f64 {
            self.cap
        } else {
            rounded.clamp(bottom, top.max(bottom))
        };
        (len > lo && len < hi && len <= self.cap).then_some((len, guessed))
    }
}

/// Searches the longest prompt of `job` within its budget; `probe` runs one length
/// (in a process of its own) and says how it came out.
pub fn search(job: &FitJob, probe: &mut dyn FnMut(usize) -> Reading) -> (Fit, Option<ModelInfo>) {
    let s = &job.settings;
    let budget = s.budget_bytes();
    let mut bracket = Bracket::new(s);
    let mut fit = Fit {
        model: job.model.clone(),
        dtype: job.dtype.name().into(),
        budget_bytes: budget,
        cap: s.cap,
        max_context: None,
        over_budget_at: None,
        stopped: None,
        prediction: None,
        probes: Vec::new(),
    };
    let mut info: Option<ModelInfo> = None;
    while fit.probes.len() < MAX_PROBES {
        let Some((seq_len, guessed)) = bracket.next(s.start) else {
            break;
        };
        let reading = probe(seq_len);
        let p = reading.probe;
        match p.outcome {
            ProbeOutcome::Fits => bracket.record(seq_len, true, guessed),
            ProbeOutcome::OverBudget => bracket.record(seq_len, false, guessed),
            ProbeOutcome::Failed => {
                fit.stopped = Some(format!(
                    "the probe at {seq_len} tokens failed: {}",
                    p.error.as_deref().unwrap_or("no reason given")
                ));
            }
        }
        if let (Some(i), None) = (&reading.info, &fit.prediction) {
            fit.dtype = i.dtype.clone();
            // The model's own maximum caps the search too (a prompt and its decode
            // steps must fit its positions).
            if let Some(max) = i.max_seq_len {
                let own = max.saturating_sub(PROBE_DECODE_TOKENS);
                bracket.cap = bracket.cap.min(own);
                fit.cap = bracket.cap;
            }
            if p.outcome == ProbeOutcome::Fits {
                let prediction = predict(i, &p, budget);
                bracket.guess = Some(match prediction.max_context {
                    Some(m) => m as f64 * (1.0 - s.tolerance / 2.0),
                    // Nothing grows with the context: straight to the cap.
                    None => bracket.cap as f64,
                });
                fit.prediction = Some(prediction);
            }
        }
        if info.is_none() {
            info = reading.info;
        }
        fit.probes.push(p);
        if fit.stopped.is_some() {
            break;
        }
    }
    fit.max_context = bracket.lo;
    fit.over_budget_at = bracket.hi;
    (fit, info)
}

/// [`search`] with every probe in a child process started by `launcher`, reported to
/// `observer` as the cell [`Cell::fit_probe`].
pub fn search_isolated(
    launcher: &Launcher,
    job: &FitJob,
    observer: &mut dyn Observer,
) -> (Fit, Option<ModelInfo>) {
    search(job, &mut |seq_len| {
        let cell = Cell::fit_probe(&job.model, seq_len);
        observer.fit_probe_started(&cell);
        let reading = probe_isolated(launcher, job, seq_len, &mut |e| {
            if let CellEvent::Progress { phase, done, total } = e {
                observer.cell_progress(&cell, *phase, *done, *total);
            }
        });
        observer.fit_probe_finished(&cell, &reading.probe);
        reading
    })
}

/// The cell a probe runs: a prompt of `seq_len`, once, and a couple of decode steps.
pub fn probe_plan(job: &FitJob, seq_len: usize) -> CellPlan {
    CellPlan {
        model: job.model.clone(),
        seq_len,
        dtype: job.dtype,
        seed: job.seed,
        measure: Measure {
            prefill: true,
            decode: true,
            memory: true,
            train: false,
            max_context: false,
            dtype_cost: false,
        },
        sampling: Sampling {
            warmup_tokens: 16,
            repetitions: 1,
            max_seconds_per_cell: f64::MAX,
            decode_warmup: 0,
            decode_tokens: PROBE_DECODE_TOKENS,
            processes: 1,
        },
        train: Default::default(),
        preset: None,
    }
}

/// Runs one probe in a child process held to the job's budget.
pub fn probe_isolated(
    launcher: &Launcher,
    job: &FitJob,
    seq_len: usize,
    on_progress: &mut dyn FnMut(&CellEvent),
) -> Reading {
    let limits = CellLimits {
        memory_budget_bytes: job.settings.budget_bytes(),
        budget_declared: true,
        timeout: Duration::from_secs_f64(job.settings.probe_timeout_s),
    };
    let t = Instant::now();
    let result = run_isolated(launcher, &probe_plan(job, seq_len), limits, on_progress);
    let wall_s = t.elapsed().as_secs_f64();
    match result {
        Ok(o) => Reading {
            probe: FitProbe {
                seq_len,
                outcome: ProbeOutcome::Fits,
                peak_rss: o.peak_rss,
                rss_after_load: Some(o.rss_after_load),
                state_bytes: Some(o.state_bytes),
                wall_s,
                error: None,
            },
            info: Some(o.info),
        },
        Err(e) => Reading {
            probe: FitProbe {
                seq_len,
                outcome: if e.kind == FailureKind::OverBudget {
                    ProbeOutcome::OverBudget
                } else {
                    ProbeOutcome::Failed
                },
                peak_rss: e.rss.unwrap_or(0),
                rss_after_load: None,
                state_bytes: None,
                wall_s,
                error: Some(e.message),
            },
            info: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use results::Arch;

    const MB: u64 = 1 << 20;

    fn info(arch: Arch) -> ModelInfo {
        ModelInfo {
            spec: "llama:preset=tiny".parse().unwrap(),
            version: None,
            arch,
            implementation: "x".into(),
            description: String::new(),
            params: 1,
            layers: 1,
            width: 1,
            vocab: 1,
            dtype: "q4_k".into(),
            device: "cpu".into(),
            weights: results::Weights::Random {
                preset: "tiny".into(),
                seed: 0,
            },
            max_seq_len: None,
            tokenizer: None,
            tied_embeddings: false,
            weight_bytes: Some(100 * MB),
        }
    }

    fn job(budget_mb: u64, cap: usize) -> FitJob {
        FitJob {
            model: "llama:preset=tiny".parse().unwrap(),
            dtype: Dtype::Q4K,
            seed: 0,
            settings: FitSettings {
                budget_mb,
                cap,
                ..FitSettings::default()
            },
        }
    }

    /// A model whose peak is `fixed + per_token · len` MB, plus `bump` MB past `knee`
    /// tokens (what the memory model does not know about).
    fn simulated(
        arch: Arch,
        fixed: f64,
        per_token: f64,
        knee: usize,
        bump: f64,
        budget: u64,
    ) -> impl FnMut(usize) -> Reading {
        move |len| {
            let state = (per_token * len as f64 * MB as f64) as u64;
            let extra = if len > knee { bump } else { 0.0 };
            let peak = ((fixed + extra) * MB as f64) as u64 + state;
            let fits = peak <= budget * MB;
            Reading {
                probe: FitProbe {
                    seq_len: len,
                    outcome: if fits {
                        ProbeOutcome::Fits
                    } else {
                        ProbeOutcome::OverBudget
                    },
                    peak_rss: peak,
                    rss_after_load: fits.then_some(peak / 2),
                    state_bytes: fits.then_some(if arch.constant_state() { 1000 } else { state }),
                    wall_s: 0.0,
                    error: None,
                },
                info: fits.then(|| info(arch)),
            }
        }
    }

    fn lengths(fit: &Fit) -> Vec<usize> {
        fit.probes.iter().map(|p| p.seq_len).collect()
    }

    #[test]
    fn an_accurate_model_brackets_the_limit_in_two_probes_after_the_first() {
        // 1000 MB fixed, 0.5 MB per token, 8000 MB budget: the limit is 14,000 tokens.
        let j = job(8000, 65536);
        let (fit, info) = search(
            &j,
            &mut simulated(Arch::Transformer, 1000.0, 0.5, 0, 0.0, 8000),
        );
        assert!(info.is_some());
        let p = fit.prediction.as_ref().unwrap();
        assert_eq!(p.max_context, Some(14_000));
        assert_eq!(fit.probes.len(), 3, "{:?}", lengths(&fit));
        let (max, over) = (fit.max_context.unwrap(), fit.over_budget_at.unwrap());
        assert!(max <= 14_000 && over > 14_000, "{max} {over}");
        assert!(over as f64 <= max as f64 * 1.05, "{max} {over}");
        assert!(max.is_multiple_of(64) && over.is_multiple_of(64));
    }

    #[test]
    fn an_optimistic_model_steps_back_and_still_brackets_the_limit() {
        // 300 MB the model does not know about from 4096 tokens on: the true limit is
        // 13,400 tokens, the prediction 14,000.
        let j = job(8000, 65536);
        let mut sim = simulated(Arch::Transformer, 1000.0, 0.5, 4096, 300.0, 8000);
        let (fit, _) = search(&j, &mut sim);
        let (max, over) = (fit.max_context.unwrap(), fit.over_budget_at.unwrap());
        assert!(max <= 13_400 && over > 13_400, "{:?}", lengths(&fit));
        assert!(over as f64 <= max as f64 * 1.05);
        assert!(fit.probes.len() <= 6, "{:?}", lengths(&fit));
    }

    #[test]
    fn a_constant_state_goes_straight_to_the_cap() {
        let j = job(8000, 16384);
        let (fit, _) = search(&j, &mut simulated(Arch::Rwkv, 1000.0, 0.0, 0, 0.0, 8000));
        assert_eq!(lengths(&fit), vec![512, 16384]);
        assert!(fit.capped());
        assert_eq!(fit.over_budget_at, None);
        assert_eq!(fit.prediction.unwrap().max_context, None);
    }

    #[test]
    fn a_model_too_big_for_the_budget_fits_nothing() {
        let j = job(500, 16384);
        let (fit, info) = search(&j, &mut simulated(Arch::Rwkv, 1000.0, 0.0, 0, 0.0, 500));
        assert_eq!(fit.max_context, None);
        assert_eq!(fit.over_budget_at, Some(64));
        assert!(info.is_none());
        assert!(fit.describe().starts_with("none"), "{}", fit.describe());
    }

    #[test]
    fn a_failed_probe_stops_the_search_with_a_lower_bound() {
        let j = job(8000, 65536);
        let mut sim = simulated(Arch::Transformer, 1000.0, 0.5, 0, 0.0, 8000);
        let mut calls = 0;
        let (fit, _) = search(&j, &mut |len| {
            calls += 1;
            let mut r = sim(len);
            if calls == 2 {
                r.probe.outcome = ProbeOutcome::Failed;
                r.probe.error = Some("timed out after 3600 s".into());
            }
            r
        });
        assert_eq!(fit.max_context, Some(512));
        assert!(fit.stopped.as_deref().unwrap().contains("timed out"));
        assert_eq!(fit.probes.len(), 2);
    }

    #[test]
    fn the_models_own_maximum_caps_the_search() {
        let j = job(8000, 65536);
        let mut sim = simulated(Arch::Rwkv, 1000.0, 0.0, 0, 0.0, 8000);
        let (fit, _) = search(&j, &mut |len| {
            let mut r = sim(len);
            if let Some(i) = r.info.as_mut() {
                i.max_seq_len = Some(4096);
            }
            r
        });
        assert_eq!(fit.cap, 4094);
        assert_eq!(fit.max_context, Some(4094));
    }
}
