//! Tests as rwkv-bench records: pp as prefill, tg at a depth as decode, and the
//! model each ran.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::model_info::{ModelInfo, Weights};
use crate::record::{Metric, Record, TaskFields};
use crate::spec::ModelSpec;
use crate::{Error, Result};

use super::*;

/// What llama-bench does not write about a model: read from its GGUF file by the
/// caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    pub layers: usize,
    pub width: usize,
    pub vocab: usize,
    /// No separate output matrix: the head is the embedding table.
    pub tied_embeddings: bool,
    /// The context length the model was trained for.
    pub max_seq_len: Option<usize>,
}

/// The models and records of some tests.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub models: Vec<ModelInfo>,
    pub records: Vec<Record>,
    /// The test each record came from, in the order of `records`.
    pub origins: Vec<Origin>,
    /// Tests that are no rwkv-bench cell, each with why (for the CLI to print).
    pub skipped: Vec<String>,
}

/// The model a test ran, with `shape` where its GGUF file could be read (zeros
/// otherwise, and then no efficiency is computed for it).
pub fn model_info(test: &Test, shape: Option<&Shape>) -> Result<ModelInfo> {
    let shape = shape.copied().unwrap_or_default();
    Ok(ModelInfo {
        spec: test.spec()?,
        arch: test.arch(),
        implementation: IMPLEMENTATION.into(),
        version: Some(test.version()),
        description: test.description(),
        params: test.model_n_params.unwrap_or(0),
        layers: shape.layers,
        width: shape.width,
        vocab: shape.vocab,
        dtype: test.dtype(),
        device: test.device(),
        weights: Weights::Checkpoint {
            path: PathBuf::from(&test.model_filename),
        },
        max_seq_len: shape.max_seq_len,
        tokenizer: None,
        tied_embeddings: shape.tied_embeddings,
        weight_bytes: test.model_size,
    })
}

/// The `(metric, seq_len, samples)` a test measures, or why it measures no cell.
pub(super) fn cells(t: &Test) -> std::result::Result<Vec<(Metric, usize, Vec<f64>)>, String> {
    match (t.n_prompt, t.n_gen, t.n_depth) {
        (p, 0, 0) => Ok(vec![
            (
                Metric::PrefillTime,
                p,
                t.samples_ns.iter().map(|ns| ns / 1e6).collect(),
            ),
            (
                Metric::PrefillThroughput,
                p,
                t.samples_ns.iter().map(|ns| p as f64 * 1e9 / ns).collect(),
            ),
        ]),
        (_, 0, _) => Err("rwkv-bench's prefill starts from an empty context".into()),
        (0, _, 0) => Err(
            "rwkv-bench measures decode after a prompt of the cell's length: run llama-bench \
             with -d (e.g. -n 16 -d 128,2048) for tg tests at those depths"
                .into(),
        ),
        (0, g, depth) => Ok(vec![(
            Metric::DecodeLatency,
            depth,
            t.samples_ns.iter().map(|ns| ns / g as f64 / 1e6).collect(),
        )]),
        _ => Err(
            "a prompt and generation together is no rwkv-bench metric (import pp and tg \
                  tests)"
                .into(),
        ),
    }
}

/// The models and records of `tests`; `shapes` holds the shape of each
/// `model_filename` whose GGUF file could be read. Tests of one model must agree on
/// how it ran (build, threads, batch sizes…), and no two tests may measure one cell.
pub fn build(tests: &[Test], shapes: &BTreeMap<String, Shape>) -> Result<Imported> {
    let mut out = Imported::default();
    let mut first_of: BTreeMap<ModelSpec, &Test> = BTreeMap::new();
    for t in tests {
        let measured = match cells(t) {
            Ok(c) => c,
            Err(why) => {
                out.skipped
                    .push(format!("{}: {} skipped: {why}", t.origin, t.name()));
                continue;
            }
        };
        let info = model_info(t, shapes.get(&t.model_filename))?;
        match first_of.get(&info.spec) {
            Some(first) => {
                let differ: Vec<String> = first
                    .settings()
                    .into_iter()
                    .zip(t.settings())
                    .filter(|(a, b)| a.1 != b.1)
                    .map(|((name, a), (_, b))| format!("{name} {a} vs {b}"))
                    .collect();
                if !differ.is_empty() {
                    return Err(t.origin.error(format!(
                        "{} ran with other settings than on {} ({}): one model of a run has \
                         one description; import these tests into separate runs",
                        info.spec,
                        first.origin,
                        differ.join(", ")
                    )));
                }
            }
            None => {
                first_of.insert(info.spec.clone(), t);
                out.models.push(info.clone());
            }
        }
        for (metric, seq_len, samples) in measured {
            let Some(record) = Record::from_samples(
                SUITE,
                &info,
                metric,
                seq_len,
                samples,
                TaskFields::default(),
            ) else {
                continue;
            };
            let key = record.key();
            if let Some(i) = out.records.iter().position(|r| r.key() == key) {
                return Err(t.origin.error(format!(
                    "{} measures the same cell as {} ({} {} at {seq_len})",
                    t.name(),
                    out.origins[i],
                    info.spec,
                    metric.label()
                )));
            }
            out.records.push(record);
            out.origins.push(t.origin.clone());
        }
    }
    if out.records.is_empty() {
        let path = tests.first().map(|t| t.origin.file.clone());
        return Err(Error::Results {
            path: path.unwrap_or_default(),
            message: "no pp or tg test that maps to an rwkv-bench cell".into(),
        });
    }
    Ok(out)
}
