//! llama.cpp's own benchmark as records of a run: each line `llama-bench -o jsonl`
//! writes (one JSON object per test) becomes records labelled as llama.cpp, so a report
//! shows llama.cpp on the same machine beside the implementations rwkv-bench builds.
//!
//! A `pp` test (a prompt of `n_prompt` tokens into an empty context) is a prefill cell
//! at `seq_len = n_prompt`: prefill time and throughput, one sample per repetition. A
//! `tg` test (`n_gen` tokens generated after `n_depth` tokens of context) is a decode
//! cell at `seq_len = n_depth`, each repetition's sample its mean step time. A `pp` at
//! a depth and a combined `pg` test have no rwkv-bench cell and are skipped with a
//! note. llama-bench does not write a model's layers, width or vocabulary: the caller
//! reads them from the GGUF file where it can ([`Shape`]); without them no efficiency
//! is computed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::analysis::analyse;
use crate::machine::Machine;
use crate::model_info::{Arch, ModelInfo, Weights};
use crate::record::{CellKey, Metric, Record, TaskFields};
use crate::roofline::efficiency;
use crate::schema::{Results, RunSettings, SCHEMA_VERSION};
use crate::spec::{ModelSpec, Source};
use crate::{Error, Result};

/// The implementation name of imported models and records.
pub const IMPLEMENTATION: &str = "llama.cpp";
/// The suite name imported records carry.
pub const SUITE: &str = "llama-bench";

/// The line a test was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}", self.file.display(), self.line)
    }
}

impl Origin {
    /// An error about this line.
    fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::Results {
            path: self.file.clone(),
            message: format!("line {}: {message}", self.line),
        }
    }
}

/// One llama-bench test, as its line wrote it. Fields that some builds do not write are
/// `Option`s.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub origin: Origin,
    /// The short git commit of the llama.cpp build, e.g. `0c1e5709`.
    pub build_commit: String,
    pub build_number: Option<u64>,
    /// The CPU as the CPU backend names it (`/proc/cpuinfo`'s model name on Linux),
    /// followed by any accelerator devices, comma-separated.
    pub cpu_info: String,
    pub gpu_info: String,
    pub backends: Option<String>,
    /// The model path as given to llama-bench's `-m`.
    pub model_filename: String,
    /// llama.cpp's description: architecture, size class, file type, e.g.
    /// `llama ?B Q4_K - Medium`.
    pub model_type: String,
    /// Bytes of the weights.
    pub model_size: Option<u64>,
    pub model_n_params: Option<u64>,
    pub n_batch: Option<u64>,
    pub n_ubatch: Option<u64>,
    pub n_threads: Option<usize>,
    pub n_gpu_layers: Option<i64>,
    /// KV cache storage types; `f16` where a build does not say.
    pub type_k: String,
    pub type_v: String,
    /// `on`, `off` or `auto` (older builds write a bool, newer -1/0/1).
    pub flash_attn: Option<String>,
    pub n_prompt: usize,
    pub n_gen: usize,
    pub n_depth: usize,
    pub test_time: Option<String>,
    /// Wall time of each repetition, ns.
    pub samples_ns: Vec<f64>,
}

impl Test {
    /// llama-bench's name of the test: `pp512`, `tg128`, `pp512+tg128`, `… @ d4096`.
    pub fn name(&self) -> String {
        let mut s = match (self.n_prompt, self.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, g) => format!("tg{g}"),
            (p, g) => format!("pp{p}+tg{g}"),
        };
        if self.n_depth > 0 {
            s.push_str(&format!(" @ d{}", self.n_depth));
        }
        s
    }

    /// The GGUF architecture name: `model_type`'s first word (`llama`, `rwkv7`).
    pub fn arch_name(&self) -> &str {
        self.model_type.split_whitespace().next().unwrap_or("")
    }

    /// Every RWKV generation (`rwkv6`, `rwkv7`, and the hybrids `rwkv6qwen2`,
    /// `arwkv7`) keeps a constant-size state; anything else is an attention model.
    pub fn arch(&self) -> Arch {
        if self.arch_name().to_ascii_lowercase().contains("rwkv") {
            Arch::Rwkv
        } else {
            Arch::Transformer
        }
    }

    /// The weights' main storage type, from `model_type`'s file type.
    pub fn dtype(&self) -> String {
        let ftype: Vec<&str> = self.model_type.split_whitespace().skip(2).collect();
        quant_name(&ftype.join(" "))
    }

    /// The model spec of the test's model: `llama.cpp:PATH`, with `type_k=` /
    /// `type_v=` when its KV cache is not f16 (such a cache is another cell).
    pub fn spec(&self) -> Result<ModelSpec> {
        let mut options = Vec::new();
        for (key, value) in [("type_k", &self.type_k), ("type_v", &self.type_v)] {
            if value != "f16" {
                options.push((key.to_string(), value.clone()));
            }
        }
        let spec = ModelSpec {
            implementation: IMPLEMENTATION.into(),
            source: Source::Path(PathBuf::from(&self.model_filename)),
            tokenizer: None,
            options,
        };
        // Results store a spec as its string: one that would read back as another
        // model must not be written.
        if spec.to_string().parse::<ModelSpec>().ok().as_ref() != Some(&spec) {
            return Err(self.origin.error(format!(
                "model_filename `{}` cannot be written as a model spec (`,key=value` in the \
                 path?)",
                self.model_filename
            )));
        }
        Ok(spec)
    }

    /// The device the test ran on: the CPU unless layers were offloaded to a GPU.
    pub fn device(&self) -> String {
        let offloaded = self.n_gpu_layers.is_none_or(|n| n != 0);
        match &self.backends {
            Some(b) if offloaded && !self.gpu_info.trim().is_empty() => b.to_lowercase(),
            _ => "cpu".into(),
        }
    }

    /// `build 0c1e5709 (7100)`: reports show it after the implementation's name.
    pub fn version(&self) -> String {
        match self.build_number {
            Some(n) => format!("build {} ({n})", self.build_commit),
            None => format!("build {}", self.build_commit),
        }
    }

    /// The settings that describe the model's runs, as (name, value): two tests of one
    /// model spec must agree on them to share its description.
    fn settings(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        vec![
            ("build", self.version()),
            ("model_type", self.model_type.clone()),
            ("model_size", opt(self.model_size.map(|v| v.to_string()))),
            (
                "model_n_params",
                opt(self.model_n_params.map(|v| v.to_string())),
            ),
            ("n_threads", opt(self.n_threads.map(|v| v.to_string()))),
            ("n_batch", opt(self.n_batch.map(|v| v.to_string()))),
            ("n_ubatch", opt(self.n_ubatch.map(|v| v.to_string()))),
            ("flash_attn", opt(self.flash_attn.clone())),
            ("backends", opt(self.backends.clone())),
            ("device", self.device()),
        ]
    }

    /// One sentence of how llama-bench ran the model (the build is the model's
    /// `version`).
    fn description(&self) -> String {
        let mut parts = vec!["llama.cpp's llama-bench".to_string()];
        if let Some(t) = self.n_threads {
            parts.push(format!("{t} threads"));
        }
        match (self.n_batch, self.n_ubatch) {
            (Some(b), Some(u)) => parts.push(format!("batch {b} / ubatch {u}")),
            (Some(b), None) => parts.push(format!("batch {b}")),
            _ => {}
        }
        parts.push(format!("KV cache {}/{}", self.type_k, self.type_v));
        if let Some(fa) = &self.flash_attn {
            parts.push(format!("flash attention {fa}"));
        }
        if let Some(b) = &self.backends {
            parts.push(format!("backends {b}"));
        }
        parts.push(format!("`{}`", self.model_type));
        format!(
            "{}; a decode sample is the mean step of a tg test's tokens from its depth on",
            parts.join(", ")
        )
    }
}

/// A short lowercase name of llama.cpp's file type, the storage of most weights:
/// `Q4_K - Medium` → `q4_k`, `Q8_0` → `q8_0`, `all F32` → `f32`, `IQ4_NL - 4.5 bpw` →
/// `iq4_nl` (the names `kernels::ggml_name` gives GGUF storage).
pub fn quant_name(ftype: &str) -> String {
    let s = ftype.trim();
    let s = s.strip_suffix("(guessed)").unwrap_or(s).trim();
    let head = s.split(" - ").next().unwrap_or(s).trim();
    let head = head.strip_prefix("all ").unwrap_or(head);
    match head.split_whitespace().next() {
        Some(name) => name.to_lowercase(),
        None => "unknown".into(),
    }
}

/// The CPU model a name describes, for comparing the names llama.cpp and sysinfo give
/// one CPU: lowercase, whitespace collapsed, control characters (a trailing NUL of the
/// macOS brand string) dropped, and the words that only one side may carry left out
/// (`(R)`, `(TM)`, `CPU`, `Processor`, an `N-Core` count).
fn cpu_words(name: &str) -> Vec<String> {
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

/// Reads the tests of a `llama-bench -o jsonl` file. Blank lines are skipped; a line
/// that is not a complete JSON object, or lacks a field rwkv-bench needs, is an error
/// naming the file and the line.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Test>> {
    let mut tests = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let origin = Origin {
            file: path.to_path_buf(),
            line: i + 1,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if tests.is_empty() && line == "[" {
            return Err(origin.error(
                "this is `llama-bench -o json` output (one array); run llama-bench with \
                 `-o jsonl` (one test per line)",
            ));
        }
        tests.push(parse_line(origin, line)?);
    }
    if tests.is_empty() {
        return Err(Error::Results {
            path: path.to_path_buf(),
            message: "no tests: expected the output of `llama-bench -o jsonl`, one JSON \
                      object a line"
                .into(),
        });
    }
    Ok(tests)
}

/// The fields of one line.
struct Fields<'a> {
    origin: &'a Origin,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    /// A field that is absent or `null` reads as `None`.
    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn required(&self, name: &str) -> Result<&Value> {
        self.get(name).ok_or_else(|| {
            self.origin.error(format!(
                "no `{name}`, which rwkv-bench needs (is this `llama-bench -o jsonl` output?)"
            ))
        })
    }

    fn wrong(&self, name: &str, v: &Value, expected: &str) -> Error {
        self.origin
            .error(format!("`{name}` is {v}, expected {expected}"))
    }

    fn uint_value(&self, name: &str, v: &Value) -> Result<u64> {
        let n = v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x < u64::MAX as f64)
                .map(|x| x as u64)
        });
        n.ok_or_else(|| self.wrong(name, v, "a non-negative integer"))
    }

    fn uint(&self, name: &str) -> Result<usize> {
        let v = self.required(name)?;
        Ok(self.uint_value(name, v)? as usize)
    }

    fn opt_uint(&self, name: &str) -> Result<Option<u64>> {
        self.get(name).map(|v| self.uint_value(name, v)).transpose()
    }

    fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        self.get(name)
            .map(|v| v.as_i64().ok_or_else(|| self.wrong(name, v, "an integer")))
            .transpose()
    }

    fn string(&self, name: &str) -> Result<String> {
        let v = self.required(name)?;
        v.as_str()
            .map(String::from)
            .ok_or_else(|| self.wrong(name, v, "a string"))
    }

    fn opt_string(&self, name: &str) -> Result<Option<String>> {
        self.get(name)
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| self.wrong(name, v, "a string"))
            })
            .transpose()
    }

    /// A bool (older builds) or -1 / 0 / 1 (newer: auto, off, on).
    fn flash_attn(&self) -> Result<Option<String>> {
        let Some(v) = self.get("flash_attn") else {
            return Ok(None);
        };
        let s = match (v.as_bool(), v.as_i64(), v.as_str()) {
            (Some(true), _, _) | (_, Some(1), _) => "on".to_string(),
            (Some(false), _, _) | (_, Some(0), _) => "off".to_string(),
            (_, Some(-1), _) => "auto".to_string(),
            (_, _, Some(s)) => s.to_string(),
            _ => return Err(self.wrong("flash_attn", v, "a bool or -1, 0, 1")),
        };
        Ok(Some(s))
    }

    /// Positive finite numbers of array `name`, if the line has it.
    fn samples(&self, name: &str) -> Result<Option<Vec<f64>>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let bad = || self.wrong(name, v, "an array of positive numbers");
        let items = v.as_array().ok_or_else(bad)?;
        let xs: Option<Vec<f64>> = items
            .iter()
            .map(|x| x.as_f64().filter(|x| x.is_finite() && *x > 0.0))
            .collect();
        match xs {
            Some(xs) if !xs.is_empty() => Ok(Some(xs)),
            Some(_) => Err(self
                .origin
                .error(format!("`{name}` is empty: no repetitions"))),
            None => Err(bad()),
        }
    }
}

fn parse_line(origin: Origin, line: &str) -> Result<Test> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        if e.is_eof() {
            origin.error(format!("truncated JSON ({e})"))
        } else {
            origin.error(format!("not valid JSON ({e})"))
        }
    })?;
    let Some(map) = value.as_object() else {
        return Err(origin.error("not a JSON object: expected one llama-bench test a line"));
    };
    let f = Fields {
        origin: &origin,
        map,
    };
    let n_prompt = f.uint("n_prompt")?;
    let n_gen = f.uint("n_gen")?;
    let n_depth = f.uint("n_depth")?;
    if n_prompt == 0 && n_gen == 0 {
        return Err(origin.error("n_prompt and n_gen are both 0: the test measures nothing"));
    }
    // llama-bench derives samples_ts from samples_ns: tokens (prompt + generated, not
    // the depth) over each repetition's time.
    let samples_ns = match f.samples("samples_ns")? {
        Some(ns) => ns,
        None => match f.samples("samples_ts")? {
            Some(ts) => ts
                .iter()
                .map(|t| 1e9 * (n_prompt + n_gen) as f64 / t)
                .collect(),
            None => {
                return Err(origin
                    .error("no `samples_ns` or `samples_ts`: the repetitions' times are needed"))
            }
        },
    };
    let kv_type =
        |name: &str| -> Result<String> { Ok(f.opt_string(name)?.unwrap_or_else(|| "f16".into())) };
    Ok(Test {
        build_commit: f.string("build_commit")?,
        build_number: f.opt_uint("build_number")?,
        cpu_info: f.opt_string("cpu_info")?.unwrap_or_default(),
        gpu_info: f.opt_string("gpu_info")?.unwrap_or_default(),
        backends: f.opt_string("backends")?,
        model_filename: f.string("model_filename")?,
        model_type: f.string("model_type")?,
        model_size: f.opt_uint("model_size")?,
        model_n_params: f.opt_uint("model_n_params")?,
        n_batch: f.opt_uint("n_batch")?,
        n_ubatch: f.opt_uint("n_ubatch")?,
        n_threads: f.opt_uint("n_threads")?.map(|n| n as usize),
        n_gpu_layers: f.opt_int("n_gpu_layers")?,
        type_k: kv_type("type_k")?,
        type_v: kv_type("type_v")?,
        flash_attn: f.flash_attn()?,
        n_prompt,
        n_gen,
        n_depth,
        test_time: f.opt_string("test_time")?,
        samples_ns,
        origin,
    })
}

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
fn cells(t: &Test) -> std::result::Result<Vec<(Metric, usize, Vec<f64>)>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roofline::Roofline;

    const PP: &str = r#"{"build_commit": "0c1e5709", "build_number": 7100, "cpu_info": "AMD EPYC 9B14", "gpu_info": "", "backends": "CPU", "model_filename": "/m/llama-0.1b.q4_k.gguf", "model_type": "llama ?B Q4_K - Medium", "model_size": 73400320, "model_n_params": 110000000, "n_batch": 2048, "n_ubatch": 512, "n_threads": 2, "cpu_mask": "0x0", "cpu_strict": false, "poll": 50, "type_k": "f16", "type_v": "f16", "n_gpu_layers": 99, "split_mode": "layer", "main_gpu": 0, "no_kv_offload": false, "flash_attn": false, "tensor_split": "0.00", "use_mmap": true, "embeddings": false, "n_prompt": 512, "n_gen": 0, "n_depth": 0, "test_time": "2026-12-05T20:11:03Z", "avg_ns": 250000000, "stddev_ns": 1234567, "avg_ts": 2048.0, "stddev_ts": 12.1, "samples_ns": [250000000, 256000000, 244000000], "samples_ts": [2048.0, 2000.0, 2098.4]}"#;

    /// `PP` with fields replaced (a `null` drops one).
    fn line(changes: &[(&str, Value)]) -> String {
        let mut v: Value = serde_json::from_str(PP).unwrap();
        for (k, x) in changes {
            if x.is_null() {
                v.as_object_mut().unwrap().remove(*k);
            } else {
                v[*k] = x.clone();
            }
        }
        v.to_string()
    }

    fn tg(n_gen: u64, depth: u64, ns: &[u64]) -> String {
        line(&[
            ("n_prompt", json!(0)),
            ("n_gen", json!(n_gen)),
            ("n_depth", json!(depth)),
            ("samples_ns", json!(ns)),
        ])
    }

    fn parse_str(text: &str) -> Result<Vec<Test>> {
        parse(Path::new("bench.jsonl"), text)
    }

    fn import(text: &str) -> Imported {
        build(&parse_str(text).unwrap(), &BTreeMap::new()).unwrap()
    }

    fn record(im: &Imported, metric: Metric, seq_len: usize) -> &Record {
        im.records
            .iter()
            .find(|r| r.metric == metric && r.seq_len == seq_len)
            .unwrap_or_else(|| panic!("no {metric:?} at {seq_len}"))
    }

    #[test]
    fn a_pp_test_is_prefill_time_and_throughput_at_its_prompt_length() {
        let im = import(PP);
        assert_eq!(im.records.len(), 2);
        let time = record(&im, Metric::PrefillTime, 512);
        assert_eq!(time.samples, vec![250.0, 256.0, 244.0]);
        assert_eq!(time.summary.median, 250.0);
        assert_eq!(time.unit, crate::Unit::Ms);
        let tput = record(&im, Metric::PrefillThroughput, 512);
        assert_eq!(tput.samples[0], 2048.0);
        assert!((tput.samples[2] - 512.0 / 0.244).abs() < 1e-9);
        assert_eq!(time.implementation, "llama.cpp");
        assert_eq!(time.suite, "llama-bench");
        assert_eq!(time.arch, Arch::Transformer);
        assert_eq!(time.model.to_string(), "llama.cpp:/m/llama-0.1b.q4_k.gguf");
        assert_eq!(im.origins[0].to_string(), "bench.jsonl line 1");
    }

    #[test]
    fn a_tg_test_is_decode_latency_per_token_at_its_depth() {
        let im = import(&tg(128, 4096, &[1_280_000_000, 1_408_000_000]));
        assert_eq!(im.records.len(), 1);
        let r = record(&im, Metric::DecodeLatency, 4096);
        // 1.28 s over 128 tokens: 10 ms a token.
        assert_eq!(r.samples, vec![10.0, 11.0]);
        assert_eq!(r.unit, crate::Unit::MsPerToken);
    }

    #[test]
    fn samples_ts_stand_in_for_missing_samples_ns() {
        let text = line(&[("samples_ns", Value::Null), ("samples_ts", json!([1024.0]))]);
        let t = &parse_str(&text).unwrap()[0];
        assert_eq!(t.samples_ns, vec![5e8]);
        let e = parse_str(&line(&[
            ("samples_ns", Value::Null),
            ("samples_ts", Value::Null),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("samples_ns") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn prefill_at_a_depth_and_combined_tests_are_skipped_with_a_reason() {
        let text = [
            PP.to_string(),
            line(&[("n_depth", json!(4096))]),
            line(&[("n_gen", json!(128))]),
        ]
        .join("\n");
        let im = import(&text);
        assert_eq!(im.records.len(), 2, "only the first line's cells");
        assert_eq!(im.skipped.len(), 2);
        assert!(
            im.skipped[0].starts_with("bench.jsonl line 2: pp512 @ d4096 skipped")
                && im.skipped[0].contains("empty context"),
            "{}",
            im.skipped[0]
        );
        assert!(im.skipped[1].contains("pp512+tg128"), "{}", im.skipped[1]);
    }

    #[test]
    fn a_malformed_line_names_the_file_and_line() {
        let text = format!("{PP}\n\n{}", &PP[..PP.len() / 2]);
        let e = parse_str(&text).unwrap_err().to_string();
        assert!(e.starts_with("bench.jsonl: line 3: truncated JSON"), "{e}");
        let e = parse_str(&format!("{PP}\n{{\"n_prompt\": x}}"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bench.jsonl: line 2: not valid JSON"), "{e}");
        let e = parse_str("[\n").unwrap_err().to_string();
        assert!(e.contains("-o jsonl"), "{e}");
        let e = parse_str("\n").unwrap_err().to_string();
        assert!(e.contains("no tests"), "{e}");
        assert!(!parse_str("[1, 2]").unwrap_err().to_string().contains('\n'));
    }

    #[test]
    fn a_missing_or_mistyped_field_is_named() {
        for field in [
            "n_prompt",
            "n_gen",
            "n_depth",
            "model_filename",
            "build_commit",
            "model_type",
        ] {
            let e = parse_str(&line(&[(field, Value::Null)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("no `{field}`")), "{e}");
        }
        let e = parse_str(&line(&[("n_prompt", json!("512"))]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`n_prompt` is \"512\""), "{e}");
        let e = parse_str(&line(&[("samples_ns", json!([1, -2]))]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`samples_ns`"), "{e}");
        // Fields some builds do not write are optional.
        let t = &parse_str(&line(&[
            ("type_k", Value::Null),
            ("flash_attn", Value::Null),
            ("build_number", Value::Null),
            ("backends", Value::Null),
        ]))
        .unwrap()[0];
        assert_eq!((t.type_k.as_str(), t.flash_attn.as_deref()), ("f16", None));
        assert_eq!(t.version(), "build 0c1e5709");
    }

    #[test]
    fn the_model_says_what_llama_bench_ran() {
        let im = import(PP);
        let m = &im.models[0];
        assert_eq!(m.version.as_deref(), Some("build 0c1e5709 (7100)"));
        assert!(
            m.description.starts_with("llama.cpp's llama-bench, 2 threads, batch 2048 / ubatch 512, KV cache f16/f16, flash attention off, backends CPU, `llama ?B Q4_K - Medium`"),
            "{}",
            m.description
        );
        assert_eq!((m.params, m.weight_bytes), (110_000_000, Some(73_400_320)));
        assert_eq!((m.dtype.as_str(), m.device.as_str()), ("q4_k", "cpu"));
        assert_eq!((m.layers, m.width, m.vocab), (0, 0, 0));
        let shape = Shape {
            layers: 12,
            width: 768,
            vocab: 32000,
            tied_embeddings: true,
            max_seq_len: Some(2048),
        };
        let shapes = BTreeMap::from([("/m/llama-0.1b.q4_k.gguf".to_string(), shape)]);
        let m = &build(&parse_str(PP).unwrap(), &shapes).unwrap().models[0];
        assert_eq!((m.layers, m.width, m.vocab), (12, 768, 32000));
        assert!(m.tied_embeddings && m.max_seq_len == Some(2048));

        let rwkv = line(&[
            ("model_type", json!("rwkv7 0.1B Q8_0")),
            ("type_k", json!("q8_0")),
            ("flash_attn", json!(-1)),
        ]);
        let m = &import(&rwkv).models[0];
        assert_eq!(m.arch, Arch::Rwkv);
        assert_eq!(m.dtype, "q8_0");
        assert_eq!(
            m.spec.to_string(),
            "llama.cpp:/m/llama-0.1b.q4_k.gguf,type_k=q8_0"
        );
        assert!(m.description.contains("flash attention auto"));
    }

    #[test]
    fn file_types_get_short_storage_names() {
        for (ftype, name) in [
            ("Q4_K - Medium", "q4_k"),
            ("Q4_K - Small", "q4_k"),
            ("Q8_0", "q8_0"),
            ("all F32", "f32"),
            ("F16", "f16"),
            ("BF16", "bf16"),
            ("IQ4_NL - 4.5 bpw", "iq4_nl"),
            ("Q6_K (guessed)", "q6_k"),
            ("", "unknown"),
        ] {
            assert_eq!(quant_name(ftype), name, "{ftype}");
        }
    }

    #[test]
    fn cpu_names_match_across_spellings_but_not_across_models() {
        assert!(same_cpu("AMD EPYC 9B14", "AMD EPYC 9B14"));
        assert!(same_cpu("amd  epyc 9b14\0", " AMD EPYC 9B14"));
        assert!(same_cpu(
            "AMD Ryzen 9 5950X 16-Core Processor",
            "AMD Ryzen 9 5950X"
        ));
        assert!(same_cpu(
            "Intel(R) Xeon(R) CPU @ 2.20GHz",
            "Intel Xeon @ 2.20GHz"
        ));
        assert!(same_cpu("AMD EPYC 9B14, BLAS", "AMD EPYC 9B14"));
        assert!(!same_cpu("AMD EPYC 9B14", "AMD EPYC"));
        assert!(!same_cpu("AMD EPYC", "AMD EPYC 9B14"));
        assert!(!same_cpu("", ""));
    }

    #[test]
    fn tests_of_one_model_must_agree_and_not_repeat_a_cell() {
        let text = [PP.to_string(), line(&[("n_threads", json!(4))])].join("\n");
        let e = build(&parse_str(&text).unwrap(), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("n_threads 2 vs 4") && e.contains("line 1"),
            "{e}"
        );
        let text = [PP, PP].join("\n");
        let e = build(&parse_str(&text).unwrap(), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("same cell as bench.jsonl line 1"), "{e}");
    }

    fn run() -> Results {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/results/ci.json");
        let mut r = Results::load(&path).unwrap();
        r.machine.cpu_model = "AMD EPYC 9B14".into();
        r.settings.threads_used = Some(2);
        r
    }

    #[test]
    fn merging_checks_the_machine_and_refuses_to_overwrite() {
        let text = [PP.to_string(), tg(16, 64, &[160_000_000])].join("\n");
        let tests = parse_str(&text).unwrap();
        let im = build(&tests, &BTreeMap::new()).unwrap();
        let path = Path::new("run/results.json");

        let mut other = run();
        other.machine.cpu_model = "Intel(R) Xeon(R) Processor".into();
        let before = other.clone();
        let e = merge(
            &mut other,
            path,
            &tests,
            im.clone(),
            MergeOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("run/results.json: llama-bench ran on `AMD EPYC 9B14` (bench.jsonl line 1), not on the run's `Intel(R) Xeon(R) Processor`")
                && e.ends_with("pass --force to import anyway"),
            "{e}"
        );
        assert_eq!(other, before, "untouched");
        let mut threads = run();
        threads.settings.threads_used = Some(1);
        let e = merge(
            &mut threads,
            path,
            &tests,
            im.clone(),
            MergeOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("used 2 threads (bench.jsonl line 1), the run 1"),
            "{e}"
        );
        let forced = MergeOptions {
            force: true,
            replace: false,
        };
        let m = merge(&mut threads, path, &tests, im.clone(), forced).unwrap();
        assert_eq!(m.warnings.len(), 1);
        let model = threads
            .models
            .iter()
            .find(|m| m.implementation == "llama.cpp");
        assert!(model.unwrap().description.contains("Imported with --force"));

        let mut r = run();
        let n = r.records.len();
        let m = merge(&mut r, path, &tests, im.clone(), MergeOptions::default()).unwrap();
        assert_eq!((m.added, m.replaced, r.records.len()), (3, 0, n + 3));
        assert!(r
            .analysis
            .speedups
            .iter()
            .any(|s| s.baseline.implementation == "llama.cpp"));
        let e = merge(&mut r, path, &tests, im.clone(), MergeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("already holds llama.cpp:/m/llama-0.1b.q4_k.gguf prefill time at 512")
                && e.contains("--replace"),
            "{e}"
        );
        let replace = MergeOptions {
            force: false,
            replace: true,
        };
        let m = merge(&mut r, path, &tests, im, replace).unwrap();
        assert_eq!((m.added, m.replaced, r.records.len()), (3, 3, n + 3));
    }

    #[test]
    fn prefill_efficiency_needs_the_roofline_and_the_shape() {
        let tests = parse_str(PP).unwrap();
        let shape = Shape {
            layers: 12,
            width: 768,
            vocab: 32000,
            ..Shape::default()
        };
        let shapes = BTreeMap::from([("/m/llama-0.1b.q4_k.gguf".to_string(), shape)]);
        let mut r = run();
        r.machine.roofline = Some(Roofline {
            matmul_gflops: 100.0,
            matmul: Vec::new(),
            read_gb_s: 20.0,
            read_buffer_bytes: 0,
            threads: 2,
            dtype: "f32".into(),
            seconds: 1.0,
        });
        let mut bare = r.clone();
        let path = Path::new("results.json");
        let opts = MergeOptions::default();
        merge(&mut r, path, &tests, build(&tests, &shapes).unwrap(), opts).unwrap();
        let imported = |r: &Results, m: Metric| {
            r.records
                .iter()
                .find(|x| x.implementation == "llama.cpp" && x.metric == m)
                .unwrap()
                .efficiency
        };
        let e = imported(&r, Metric::PrefillTime).expect("efficiency");
        assert!(e.achieved > 0.0 && e.fraction > 0.0);
        assert!(imported(&r, Metric::PrefillThroughput).is_none());
        let no_shape = build(&tests, &BTreeMap::new()).unwrap();
        merge(&mut bare, path, &tests, no_shape, opts).unwrap();
        assert!(imported(&bare, Metric::PrefillTime).is_none());
    }

    #[test]
    fn a_new_run_holds_only_the_import_on_this_machine() {
        let text = [PP.to_string(), tg(16, 64, &[160_000_000])].join("\n");
        let tests = parse_str(&text).unwrap();
        let im = build(&tests, &BTreeMap::new()).unwrap();
        let mut machine = run().machine;
        let sources = [(PathBuf::from("bench.jsonl"), text.clone())];
        let r = new_results(&tests, im.clone(), machine.clone(), &sources).unwrap();
        assert_eq!(r.records.len(), 3);
        assert_eq!(r.models.len(), 1);
        assert_eq!(r.settings.threads_used, Some(2));
        assert_eq!(r.suite.config.seq_lens, vec![64, 512]);
        assert_eq!(r.suite.source, text);
        assert_eq!(r.started_at, "2026-12-05T20:11:03Z");
        let back: Results = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        machine.cpu_model = "AMD EPYC".into();
        let e = new_results(&tests, im, machine, &sources)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`AMD EPYC 9B14`") && e.contains("`AMD EPYC`") && e.contains("--into"),
            "{e}"
        );
    }
}
