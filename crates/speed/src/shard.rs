//! A suite's work split into units for `run --shard I/N`, each with a predicted cost.
//!
//! A unit is every cell at one length (all models, inference and training), one
//! model's max-context search, or one model's dtype cost. Keeping a length's cells
//! together keeps every speed-up ratio (RWKV vs transformer at one length) measured on
//! one machine, in one process schedule, as in an unsharded run: only comparisons
//! across lengths (slopes, crossovers) may then span machines, which `merge` refuses
//! unless their captures match.

use kernels::WeightDtype;
use models::{registry, weight_dtype, Result};
use results::roofline::{prefill_flops, step_flops, train_flops};
use results::shard::{assign, Shard};
use results::suite::Suite;
use results::{ModelInfo, ModelSpec};

use crate::measure::estimate::repetitions;

/// One unit of a suite's work.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    /// Every cell at this length.
    Length(usize),
    /// A model's max-context search (`measure.max_context`).
    MaxContext(ModelSpec),
    /// A model's logit agreement with its f32 build (`measure.dtype_cost`).
    DtypeCost(ModelSpec),
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unit::Length(l) => write!(f, "seq_len {l}"),
            Unit::MaxContext(m) => write!(f, "max_context {m}"),
            Unit::DtypeCost(m) => write!(f, "dtype_cost {m}"),
        }
    }
}

/// The FLOP rate predictions are made at. Only ratios between units matter for the
/// balance; a nominal rate lets the suite's per-cell time budget cap the prompt runs
/// as it will on a real machine of about this speed (the 2-core machines here reach
/// 100–180 GFLOP/s in f32).
const NOMINAL_FLOPS: f64 = 1e11;

/// Seconds to build a model per parameter (drawing random weights, or reading them).
const LOAD_S_PER_PARAM: f64 = 3e-9;

/// Probes a max-context search typically makes (each up to the cap).
const FIT_PROBES: f64 = 3.0;

/// The units of `suite`, in the order an unsharded run meets them.
pub fn units(suite: &Suite) -> Vec<Unit> {
    let c = &suite.config;
    let mut units: Vec<Unit> = c.seq_lens.iter().map(|&l| Unit::Length(l)).collect();
    if c.measure.max_context {
        units.extend(c.models.iter().cloned().map(Unit::MaxContext));
    }
    if c.measure.dtype_cost {
        units.extend(
            c.models
                .iter()
                .filter(|m| registry::model_dtype(m, c.dtype).is_ok_and(|d| d != WeightDtype::F32))
                .cloned()
                .map(Unit::DtypeCost),
        );
    }
    units
}

fn info(suite: &Suite, model: &ModelSpec) -> Result<ModelInfo> {
    registry::nominal_info(model, weight_dtype(suite.config.dtype))
}

/// Predicted seconds of `unit` at [`NOMINAL_FLOPS`]: every process of every cell, its
/// build, warm-up, timed prompts (as many as the time budget allows), decode steps and
/// training steps.
pub fn predicted_seconds(suite: &Suite, unit: &Unit) -> Result<f64> {
    let c = &suite.config;
    let s = &c.sampling;
    let secs = |flops: f64| flops / NOMINAL_FLOPS;
    Ok(match unit {
        Unit::Length(t) => {
            let mut total = 0.0;
            for model in &c.models {
                let m = info(suite, model)?;
                let load = m.params as f64 * LOAD_S_PER_PARAM;
                if c.measure.inference() {
                    let prefill = secs(prefill_flops(&m, *t));
                    let warmup = secs(prefill_flops(&m, s.warmup_tokens.min(*t)));
                    let steps = (s.decode_warmup + s.decode_tokens) as f64;
                    let decode = if c.measure.decode {
                        steps * secs(step_flops(&m, *t))
                    } else {
                        0.0
                    };
                    let reps = repetitions(s, prefill) as f64;
                    total += load + warmup + reps * prefill + decode;
                }
                if c.measure.train && registry::trains(model) {
                    let step = secs(train_flops(&m, *t, c.train.tokens_per_step));
                    total += load + (c.train.warmup_steps + c.train.steps) as f64 * step;
                }
            }
            total * s.processes as f64
        }
        Unit::MaxContext(model) => {
            let m = info(suite, model)?;
            FIT_PROBES * secs(prefill_flops(&m, c.fit.cap))
        }
        Unit::DtypeCost(model) => {
            // The model and its f32 build, each over the tokens.
            let m = info(suite, model)?;
            2.0 * secs(prefill_flops(&m, c.dtype_cost.tokens))
        }
    })
}

/// Which units of a suite one shard runs.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    pub shard: Shard,
    units: Vec<Unit>,
    costs: Vec<f64>,
    /// The shard (0-based) of each unit.
    assignment: Vec<usize>,
}

impl ShardPlan {
    /// The plan of `shard`, the same on every machine that computes it.
    pub fn new(suite: &Suite, shard: Shard) -> Result<Self> {
        let units = units(suite);
        let costs = units
            .iter()
            .map(|u| predicted_seconds(suite, u))
            .collect::<Result<Vec<f64>>>()?;
        let assignment = assign(&costs, shard.count);
        Ok(Self {
            shard,
            units,
            costs,
            assignment,
        })
    }

    fn mine(&self, unit: &Unit) -> bool {
        self.units
            .iter()
            .position(|u| u == unit)
            .is_some_and(|i| self.assignment[i] + 1 == self.shard.index)
    }

    /// Whether this shard measures the cells at `seq_len`.
    pub fn has_length(&self, seq_len: usize) -> bool {
        self.mine(&Unit::Length(seq_len))
    }

    /// Whether this shard runs `model`'s max-context search.
    pub fn has_max_context(&self, model: &ModelSpec) -> bool {
        self.mine(&Unit::MaxContext(model.clone()))
    }

    /// Whether this shard measures `model`'s dtype cost.
    pub fn has_dtype_cost(&self, model: &ModelSpec) -> bool {
        self.mine(&Unit::DtypeCost(model.clone()))
    }

    /// This shard's units, in the suite's order.
    pub fn units(&self) -> Vec<&Unit> {
        self.units
            .iter()
            .zip(&self.assignment)
            .filter(|(_, &s)| s + 1 == self.shard.index)
            .map(|(u, _)| u)
            .collect()
    }

    /// This shard's share of the suite's predicted cost (0..1).
    pub fn share(&self) -> f64 {
        let total: f64 = self.costs.iter().sum();
        let mine: f64 = self
            .costs
            .iter()
            .zip(&self.assignment)
            .filter(|(_, &s)| s + 1 == self.shard.index)
            .map(|(c, _)| c)
            .sum();
        if total > 0.0 {
            mine / total
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ci_suite() -> Suite {
        Suite::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/ci.toml")).unwrap()
    }

    #[test]
    fn every_unit_is_in_exactly_one_shard_of_any_split() {
        let suite = ci_suite();
        let all = units(&suite);
        for n in 1..=5 {
            let plans: Vec<ShardPlan> = (1..=n)
                .map(|i| ShardPlan::new(&suite, Shard { index: i, count: n }).unwrap())
                .collect();
            for u in &all {
                let owners = plans.iter().filter(|p| p.units().contains(&u)).count();
                assert_eq!(owners, 1, "{u} in {owners} of {n} shards");
            }
            let shares: f64 = plans.iter().map(ShardPlan::share).sum();
            assert!((shares - 1.0).abs() < 1e-9, "{shares}");
        }
    }

    #[test]
    fn longer_lengths_are_predicted_to_cost_more() {
        let suite = ci_suite();
        let cost = |l| predicted_seconds(&suite, &Unit::Length(l)).unwrap();
        assert!(cost(16) < cost(64) && cost(64) < cost(256));
    }
}
