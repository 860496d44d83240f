//! A suite's `measure.dtype_cost`: every model the suite stores in another dtype than
//! f32 (its spec's `dtype=`, else the suite's `dtype`) against the f32 build of the same
//! spec, weights and seed, on seeded random tokens ([`crate::agreement`]). `rwkv-bench
//! run` calls it once the timing cells have finished, in its own process: the models
//! it builds never share the machine with a measurement.

use kernels::WeightDtype;
use models::{registry, BuildOptions};
use results::dtype_cost::DtypeCost;
use results::pipeline::{Cell, Observer};
use results::suite::{suite_error, Suite};
use results::ModelSpec;

use crate::agreement::Reference;
use crate::{Error, Result};

/// A suite model measured against f32: its spec, the f32 spec built for the comparison
/// (without `dtype=`) and its dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub model: ModelSpec,
    pub base: ModelSpec,
    pub dtype: WeightDtype,
}

/// The models of `suite` that `measure.dtype_cost` compares with f32, in suite order
/// except that models of one base follow each other (they share a reference).
pub fn jobs(suite: &Suite) -> Result<Vec<Job>> {
    let c = &suite.config;
    let mut out = Vec::new();
    for model in &c.models {
        let dtype = registry::model_dtype(model, c.dtype)?;
        if dtype == WeightDtype::F32 {
            continue;
        }
        let mut base = model.clone();
        base.options.retain(|(k, _)| k != "dtype");
        out.push(Job {
            model: model.clone(),
            base,
            dtype,
        });
    }
    let first = |base: &ModelSpec| out.iter().position(|j| j.base == *base);
    let order: Vec<Option<usize>> = out.iter().map(|j| first(&j.base)).collect();
    let mut keyed: Vec<(Option<usize>, Job)> = order.into_iter().zip(out).collect();
    keyed.sort_by_key(|(k, _)| *k);
    Ok(keyed.into_iter().map(|(_, j)| j).collect())
}

/// Checks, before any cell runs, that every compared model holds `dtype_cost.tokens`
/// positions; the message names the suite file.
pub fn check(suite: &Suite) -> Result<()> {
    let tokens = suite.config.dtype_cost.tokens;
    for job in jobs(suite)? {
        if let Some(max) = registry::max_seq_len(&job.model)? {
            if tokens > max {
                return Err(suite_error(
                    &suite.path,
                    format!(
                        "`dtype_cost.tokens` is {tokens}, but {} supports at most {max} positions",
                        job.model
                    ),
                )
                .into());
            }
        }
    }
    Ok(())
}

/// The spec a job's reference is: its base with `dtype=f32`, as a reader of the results
/// would build it.
fn reference_spec(base: &ModelSpec) -> ModelSpec {
    let mut spec = base.clone();
    spec.options.push(("dtype".into(), "f32".into()));
    spec
}

/// An error as one line: a candle error under `RUST_BACKTRACE` carries its backtrace
/// on the lines after the message, which a results file and a table cell do not want.
fn one_line(e: &Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// Measures every job of `suite`, one model at a time. Models sharing a base share
/// one f32 reference (built and run once). A failure is recorded in its model's
/// entry and the others go on.
pub fn measure(suite: &Suite, observer: &mut dyn Observer) -> Result<Vec<DtypeCost>> {
    let c = &suite.config;
    let tokens = c.dtype_cost.tokens;
    let opts = BuildOptions {
        seed: c.seed,
        ..BuildOptions::default()
    };
    let jobs = jobs(suite)?;
    let mut out = Vec::with_capacity(jobs.len());
    let mut reference: Option<(ModelSpec, std::result::Result<Reference, String>)> = None;
    for (i, job) in jobs.iter().enumerate() {
        let cell = Cell::dtype_cost(&job.model, tokens);
        observer.dtype_cost_started(&cell, i, jobs.len());
        if reference.as_ref().is_some_and(|(b, _)| *b != job.base) {
            // Another base's reference goes before this one is built: one f32 model
            // and one set of reference logits at a time.
            reference = None;
        }
        let (_, built) = reference.get_or_insert_with(|| {
            let r = Reference::random(&job.base, tokens, c.seed, &opts);
            (job.base.clone(), r.map_err(|e| one_line(&e)))
        });
        let result = match built {
            Ok(r) => r.compare(job.dtype).map_err(|e| one_line(&e)),
            Err(e) => Err(format!("its f32 reference: {e}")),
        };
        let cost = DtypeCost {
            model: job.model.clone(),
            reference: reference_spec(&job.base),
            tokens,
            seed: c.seed,
            agreement: result.as_ref().ok().cloned(),
            error: result.err(),
        };
        observer.dtype_cost_finished(&cell, &cost);
        out.push(cost);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use results::pipeline::Silent;

    use super::*;

    fn suite(extra: &str) -> Suite {
        let text = format!(
            "name = \"t\"\nmodels = [\"rwkv7:preset=tiny\", \"rwkv7:preset=tiny,dtype=q8_0\", \
             \"llama:preset=tiny,kv_dtype=f16,dtype=bf16\"]\nseq_lens = [16]\n{extra}\
             [measure]\ndtype_cost = true\n[dtype_cost]\ntokens = 12\n"
        );
        Suite::parse(Path::new("suites/t.toml"), text).unwrap()
    }

    #[test]
    fn every_non_f32_model_is_compared_with_its_f32_build() {
        let s = suite("");
        let j = jobs(&s).unwrap();
        assert_eq!(j.len(), 2, "{j:?}");
        assert_eq!(j[0].base, "rwkv7:preset=tiny");
        assert_eq!(j[1].base, "llama:preset=tiny,kv_dtype=f16");
        assert_eq!(j[1].dtype, WeightDtype::Bf16);
        // The suite's dtype applies to a spec without its own.
        let s = suite("dtype = \"f16\"\n");
        let j = jobs(&s).unwrap();
        assert_eq!(j.len(), 3);
        assert_eq!((j[0].dtype, &j[0].base), (WeightDtype::F16, &j[0].model));
        let costs = measure(&s, &mut Silent).unwrap();
        assert_eq!(costs.len(), 3);
        for c in &costs {
            let a = c.agreement.as_ref().unwrap_or_else(|| panic!("{c:?}"));
            assert_eq!(a.positions, 12);
            assert!(a.min_cosine > 0.99, "{c:?}");
        }
        assert_eq!(costs[1].reference, "rwkv7:preset=tiny,dtype=f32");
        assert_eq!(costs[1].agreement.as_ref().unwrap().dtype, "q8_0");
    }

    #[test]
    fn models_of_one_base_are_measured_together() {
        let mut s = suite("");
        s.config.models = [
            "rwkv7:preset=tiny,dtype=q8_0",
            "llama:preset=tiny,dtype=q8_0",
            "rwkv7:preset=tiny,dtype=bf16",
        ]
        .map(|m| m.parse().unwrap())
        .to_vec();
        let order: Vec<String> = jobs(&s)
            .unwrap()
            .iter()
            .map(|j| j.model.to_string())
            .collect();
        assert_eq!(
            order,
            [
                "rwkv7:preset=tiny,dtype=q8_0",
                "rwkv7:preset=tiny,dtype=bf16",
                "llama:preset=tiny,dtype=q8_0"
            ]
        );
    }

    #[test]
    fn too_many_tokens_for_a_model_name_the_suite_file() {
        // candle-transformers' Llama is the implementation with a context limit.
        let mut s = suite("");
        s.config.models = vec!["llama-upstream:preset=tiny,dtype=bf16".parse().unwrap()];
        assert!(check(&s).is_ok());
        s.config.dtype_cost.tokens = 1 << 30;
        let e = check(&s).unwrap_err().to_string();
        assert!(
            e.starts_with("suites/t.toml") && e.contains("`dtype_cost.tokens`"),
            "{e}"
        );
    }
}
