//! Imported records joined to a run (`--into`), checked to come from its CPU and
//! thread count, or made into a run of their own (`--out`).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::analysis::analyse;
use crate::machine::Machine;
use crate::record::{CellKey, Metric, Record};
use crate::roofline::efficiency;
use crate::schema::{Results, RunSettings, SCHEMA_VERSION};
use crate::spec::ModelSpec;
use crate::{Error, Result};

use super::*;

/// The CPU model a name describes, for comparing the names llama.cpp and sysinfo give
/// one CPU: lowercase, whitespace collapsed, control characters (a trailing NUL of the
/// macOS brand string) dropped, and the words that only one side may carry left out
/// (`(R)`, `(TM)`, `CPU`, `Processor`, an `N-Core` count).
pub(super) fn cpu_words(name: &str) -> Vec<String> {
    let lower = name
        .to_lowercase()
        .replace("(r)", " ")
        .replace("(tm)", " ")
        .replace(|c: char| c.is_control(), " ");
    lower
        .split_whitespace()
        .filter(|w| !matches!(*w, "cpu" | "processor"))
        .filter(|w| {
            !w.strip_suffix("-core")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
        .map(String::from)
        .collect()
}

/// Whether llama-bench's `cpu_info` (the CPU, then any accelerator devices,
/// comma-separated) names the CPU a run recorded as `cpu_model`.
pub fn same_cpu(cpu_info: &str, cpu_model: &str) -> bool {
    let model = cpu_words(cpu_model);
    !model.is_empty()
        && (cpu_words(cpu_info) == model
            || cpu_info.split(", ").any(|part| cpu_words(part) == model))
}

/// A way the tests' machine or settings differ from a run's.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub spec: ModelSpec,
    pub message: String,
}

/// Where `tests` were not run on `machine` (its CPU model), or, given the run's
/// `settings`, with another thread count than the run's cells. One mismatch per
/// distinct CPU or thread count, naming the first test that shows it.
pub fn mismatches(
    tests: &[Test],
    machine: &Machine,
    settings: Option<&RunSettings>,
) -> Result<Vec<Mismatch>> {
    let threads = settings.and_then(|s| {
        s.threads_used
            .or((s.threads_requested > 0).then_some(s.threads_requested))
    });
    let mut out: Vec<Mismatch> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for t in tests {
        if !same_cpu(&t.cpu_info, &machine.cpu_model) {
            let what = format!("cpu {}", t.cpu_info);
            if !seen.contains(&what) {
                seen.push(what);
                out.push(Mismatch {
                    spec: t.spec()?,
                    message: format!(
                        "llama-bench ran on `{}` ({}), not on the run's `{}`",
                        t.cpu_info, t.origin, machine.cpu_model
                    ),
                });
            }
        }
        if let (Some(ours), Some(theirs)) = (threads, t.n_threads) {
            let what = format!("threads {theirs}");
            if ours != theirs && !seen.contains(&what) {
                seen.push(what);
                out.push(Mismatch {
                    spec: t.spec()?,
                    message: format!(
                        "llama-bench used {theirs} threads ({}), the run {ours}",
                        t.origin
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// How [`merge`] treats what it finds.
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeOptions {
    /// Import despite another CPU or thread count, noting it in the models'
    /// descriptions.
    pub force: bool,
    /// Overwrite cells (and model descriptions) the results already hold.
    pub replace: bool,
}

/// What [`merge`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    pub added: usize,
    /// Records of the results that imported ones replaced.
    pub replaced: usize,
    /// The mismatches `force` let through.
    pub warnings: Vec<String>,
}

/// Adds `imported` (read from `tests`) to the run `results` stored at `path`: refused
/// when the tests ran on another CPU or thread count (unless `force`) or measure a cell
/// the run already holds (unless `replace`). Each new prefill record's efficiency is
/// computed against the run's roofline (decode's needs the KV cache's bytes, which
/// llama-bench does not report), and the analysis is redone. On error `results` is
/// unchanged.
pub fn merge(
    results: &mut Results,
    path: &Path,
    tests: &[Test],
    mut imported: Imported,
    opts: MergeOptions,
) -> Result<Merged> {
    let fail = |message: String| Error::Results {
        path: path.to_path_buf(),
        message,
    };
    let mismatched = mismatches(tests, &results.machine, Some(&results.settings))?;
    if !mismatched.is_empty() && !opts.force {
        let all: Vec<&str> = mismatched.iter().map(|m| m.message.as_str()).collect();
        return Err(fail(format!(
            "{}; pass --force to import anyway",
            all.join("; ")
        )));
    }
    for m in &mut imported.models {
        let notes: Vec<&str> = mismatched
            .iter()
            .filter(|x| x.spec == m.spec)
            .map(|x| x.message.as_str())
            .collect();
        if !notes.is_empty() {
            m.description
                .push_str(&format!(". Imported with --force: {}", notes.join("; ")));
        }
    }
    let new_keys: Vec<CellKey> = imported.records.iter().map(Record::key).collect();
    if !opts.replace {
        for (r, origin) in imported.records.iter().zip(&imported.origins) {
            if results.find(&r.key()).is_some() {
                return Err(fail(format!(
                    "already holds {} {} at {} (imported again from {origin}); pass --replace \
                     to overwrite it",
                    r.model,
                    r.metric.label(),
                    r.seq_len
                )));
            }
        }
        for m in &imported.models {
            if let Some(old) = results.models.iter().find(|o| o.spec == m.spec) {
                if old != m {
                    return Err(fail(format!(
                        "already describes {} otherwise (`{}`; this import: `{}`); pass \
                         --replace to overwrite it",
                        m.spec, old.description, m.description
                    )));
                }
            }
        }
    }
    let before = results.records.len();
    results.records.retain(|r| !new_keys.contains(&r.key()));
    let replaced = before - results.records.len();
    for m in &imported.models {
        results.models.retain(|o| o.spec != m.spec);
        results.models.push(m.clone());
    }
    if let Some(roof) = &results.machine.roofline {
        for r in &mut imported.records {
            let Some(m) = imported.models.iter().find(|m| m.spec == r.model) else {
                continue;
            };
            if m.layers > 0 && m.width > 0 {
                r.efficiency = efficiency(roof, m, r.metric, r.seq_len, r.summary.median, None);
            }
        }
    }
    let added = imported.records.len();
    results.records.extend(imported.records);
    results.analysis = analyse(&results.models, &results.records);
    Ok(Merged {
        added,
        replaced,
        warnings: mismatched.into_iter().map(|m| m.message).collect(),
    })
}

/// A results document of only the imported records, measured on `machine` (this
/// one): refused when a test ran on another CPU. `sources` are the files read, with
/// their text, recorded as the run's "suite".
pub fn new_results(
    tests: &[Test],
    imported: Imported,
    machine: Machine,
    sources: &[(PathBuf, String)],
) -> Result<Results> {
    if let Some(t) = tests
        .iter()
        .find(|t| !same_cpu(&t.cpu_info, &machine.cpu_model))
    {
        return Err(t.origin.error(format!(
            "llama-bench ran on `{}`, not on this machine (`{}`): import the tests with --into \
             into a results file of a run on that machine",
            t.cpu_info, machine.cpu_model
        )));
    }
    let common = |values: Vec<String>| -> Option<String> {
        let first = values.first()?.clone();
        values.iter().all(|v| *v == first).then_some(first)
    };
    let threads: Vec<Option<usize>> = tests.iter().map(|t| t.n_threads).collect();
    let threads_used = threads
        .first()
        .copied()
        .flatten()
        .filter(|n| threads.iter().all(|t| *t == Some(*n)));
    let dtype = common(imported.models.iter().map(|m| m.dtype.clone()).collect())
        .unwrap_or_else(|| "mixed".into());
    let device = common(imported.models.iter().map(|m| m.device.clone()).collect())
        .unwrap_or_else(|| "mixed".into());
    let mut times: Vec<&str> = tests
        .iter()
        .filter_map(|t| t.test_time.as_deref())
        .collect();
    times.sort_unstable();
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let started = times.first().map_or(now.clone(), |s| s.to_string());
    let finished = times.last().map_or(now, |s| s.to_string());
    let span = match (
        humantime::parse_rfc3339_weak(&started),
        humantime::parse_rfc3339_weak(&finished),
    ) {
        (Ok(a), Ok(b)) => b.duration_since(a).map_or(0.0, |d| d.as_secs_f64()),
        _ => 0.0,
    };
    let mut seq_lens: Vec<usize> = imported.records.iter().map(|r| r.seq_len).collect();
    seq_lens.sort_unstable();
    seq_lens.dedup();
    let has = |m: Metric| imported.records.iter().any(|r| r.metric == m);
    let paths: Vec<String> = sources.iter().map(|s| s.0.display().to_string()).collect();
    let source: String = sources.iter().map(|s| s.1.as_str()).collect();
    let analysis = analyse(&imported.models, &imported.records);
    // Through serde rather than a struct literal: every field a later schema adds with
    // a default (gates, fits, shards…) takes it here too.
    let doc = json!({
        "schema_version": SCHEMA_VERSION,
        "tool": crate::tool::tool(),
        "started_at": started,
        "finished_at": finished,
        "duration_s": span,
        "machine": machine,
        "settings": RunSettings {
            threads_requested: threads_used.unwrap_or(0),
            threads_used,
            dtype,
            device,
        },
        "suite": {
            "path": paths.join(", "),
            "source": source,
            "config": {
                "name": SUITE,
                "description": format!("imported from llama-bench: {}", paths.join(", ")),
                "models": imported.models.iter().map(|m| &m.spec).collect::<Vec<_>>(),
                "seq_lens": seq_lens,
                "threads": threads_used.unwrap_or(0),
                "measure": {
                    "prefill": has(Metric::PrefillTime),
                    "decode": has(Metric::DecodeLatency),
                    "memory": false,
                },
            },
        },
        "models": imported.models,
        "records": imported.records,
        "failures": [],
        "analysis": analysis,
    });
    serde_json::from_value(doc).map_err(|e| Error::Results {
        path: PathBuf::from(paths.join(", ")),
        message: format!("the imported run does not form a results document: {e}"),
    })
}
