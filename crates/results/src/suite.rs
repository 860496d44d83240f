//! Suite files: which models, lengths and measurements a run makes (TOML).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::accuracy::AccuracyConfig;
use crate::spec::ModelSpec;
use crate::{Error, Result};

/// How the models store their weight matrices (llama.cpp's names). Our RWKV-7 and
/// Llama compute in f32 whatever is chosen; candle-transformers' models compute in the
/// 16-bit dtypes and have no quantised weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Dtype {
    #[default]
    #[serde(rename = "f32")]
    F32,
    #[serde(rename = "bf16")]
    Bf16,
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "q8_0")]
    Q8_0,
    #[serde(rename = "q4_k")]
    Q4K,
}

impl Dtype {
    /// The name in suites and records: `f32`, `bf16`, `f16`, `q8_0`, `q4_k`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
            Dtype::Q8_0 => "q8_0",
            Dtype::Q4K => "q4_k",
        }
    }
}

/// Which measurements each cell makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Measure {
    /// Time to process a prompt of the cell's length (TTFT), and tokens/s.
    pub prefill: bool,
    /// ms/token of single-token steps after a prompt of the cell's length.
    pub decode: bool,
    /// Peak RSS of the isolated cell process and `state_bytes()` after the prompt.
    pub memory: bool,
    /// Training cost: the time of one optimizer step (forward, backward, AdamW) at
    /// `[train] tokens_per_step`, tokens/s and the step's peak RSS, in training cells
    /// of their own (separate processes from the inference cells, so that each peak
    /// RSS is its own).
    pub train: bool,
    /// The longest prompt each model prefills and decodes within `[fit] budget_mb`,
    /// found by a search over isolated processes (see [`FitSettings`]).
    pub max_context: bool,
    /// The logit agreement of every model stored in another dtype than f32 with the f32
    /// build of the same spec (see [`DtypeCostSettings`]), measured after every timing
    /// cell, so that it never runs beside one.
    pub dtype_cost: bool,
}

impl Default for Measure {
    fn default() -> Self {
        Self {
            prefill: true,
            decode: true,
            memory: true,
            train: false,
            max_context: false,
            dtype_cost: false,
        }
    }
}

impl Measure {
    /// Whether any inference measurement is on.
    pub fn inference(&self) -> bool {
        self.prefill || self.decode || self.memory
    }

    /// Whether the suite measures anything `rwkv-bench run` makes (rather than only the
    /// accuracy `rwkv-bench eval` makes).
    pub fn any_run(&self) -> bool {
        self.inference() || self.train || self.max_context || self.dtype_cost
    }
}

/// How `measure.dtype_cost` compares a model with its f32 build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DtypeCostSettings {
    /// Positions compared: this many random tokens drawn with the suite's seed (random
    /// weights have no text of their own to read, and the cosine measures the storage
    /// type on any input).
    pub tokens: usize,
}

impl Default for DtypeCostSettings {
    fn default() -> Self {
        Self { tokens: 256 }
    }
}

impl DtypeCostSettings {
    /// Checks the settings; the message names the key to fix.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.tokens < 2 {
            return Err(format!(
                "`dtype_cost.tokens` is {}: at least 2 positions are needed (a loss needs a \
                 next token)",
                self.tokens
            ));
        }
        Ok(())
    }
}

/// How a training cell steps: a batch of `tokens_per_step / seq_len` sequences of the
/// cell's length, so that every length trains on the same tokens per step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainCell {
    /// At least the suite's longest length, and a multiple of every length.
    pub tokens_per_step: usize,
    /// Untimed optimizer steps first (allocations, page faults, thread pool).
    pub warmup_steps: usize,
    /// Timed optimizer steps, at most (each is one sample); fewer when the next would
    /// pass `sampling.max_seconds_per_cell`.
    pub steps: usize,
    /// AdamW's learning rate (the value does not change the time).
    pub lr: f64,
}

impl Default for TrainCell {
    fn default() -> Self {
        Self {
            tokens_per_step: 8192,
            warmup_steps: 1,
            steps: 3,
            lr: 1e-4,
        }
    }
}

/// How a max-context search (`measure.max_context`, `rwkv-bench fit`) runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitSettings {
    /// The memory budget a probe's peak RSS must stay within, MiB.
    pub budget_mb: u64,
    /// The longest prompt tried (and the model's own maximum, if lower): a constant
    /// state never reaches a budget by context alone, so its search ends here.
    pub cap: usize,
    /// The first probe's prompt, which the memory model is fitted to.
    pub start: usize,
    /// The search stops once the shortest prompt over budget is within this fraction
    /// of the longest that fitted.
    pub tolerance: f64,
    /// Prompt lengths tried are multiples of this.
    pub granularity: usize,
    /// A probe running longer than this ends the search (its result a lower bound).
    pub probe_timeout_s: f64,
}

impl Default for FitSettings {
    fn default() -> Self {
        Self {
            budget_mb: 8192,
            cap: 16384,
            start: 512,
            tolerance: 0.05,
            granularity: 64,
            probe_timeout_s: 3600.0,
        }
    }
}

impl FitSettings {
    /// Checks the settings; the message names the key to fix.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.budget_mb == 0 || self.budget_mb.checked_mul(1 << 20).is_none() {
            return Err(format!(
                "`fit.budget_mb` is {}: it must be at least 1 and at most {}",
                self.budget_mb,
                u64::MAX >> 20
            ));
        }
        if self.granularity == 0 || self.start < self.granularity || self.cap < self.start {
            return Err(format!(
                "`fit` needs 1 ≤ granularity ≤ start ≤ cap (granularity {}, start {}, cap {})",
                self.granularity, self.start, self.cap
            ));
        }
        if !(self.tolerance > 0.0 && self.tolerance < 0.5) {
            return Err(format!(
                "`fit.tolerance` is {}: it must lie between 0 and 0.5",
                self.tolerance
            ));
        }
        if !(self.probe_timeout_s > 0.0
            && Duration::try_from_secs_f64(self.probe_timeout_s).is_ok())
        {
            return Err(format!(
                "`fit.probe_timeout_s` is {}: it must be a positive, finite number of seconds",
                self.probe_timeout_s
            ));
        }
        Ok(())
    }

    pub fn budget_bytes(&self) -> u64 {
        self.budget_mb << 20
    }
}

/// How many samples each cell takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sampling {
    /// Tokens of an untimed prompt run first in each cell (pages weights in, starts
    /// the thread pool).
    pub warmup_tokens: usize,
    /// Timed prompt runs per cell, at most.
    pub repetitions: usize,
    /// Stop taking prompt samples once the next would exceed this (at least one is
    /// always taken); the number taken is recorded with the samples.
    pub max_seconds_per_cell: f64,
    /// Untimed decode steps after the prompt.
    pub decode_warmup: usize,
    /// Timed decode steps after the prompt (each is one sample).
    pub decode_tokens: usize,
    /// Processes per cell, each a full measurement, run in rounds over every cell and
    /// pooled. A process's page placement (huge pages, NUMA, cache colouring) shifts
    /// its memory-bound timings by ~10 % on a shared machine; with one process per
    /// cell, that luck would be read as a difference between lengths.
    pub processes: usize,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            warmup_tokens: 64,
            repetitions: 5,
            max_seconds_per_cell: 60.0,
            decode_warmup: 2,
            decode_tokens: 16,
            processes: 1,
        }
    }
}

/// Limits that turn a runaway cell into a recorded failure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// A cell whose process RSS exceeds this is killed and recorded as failed.
    /// Unset: 90 % of the machine's RAM.
    pub memory_budget_mb: Option<u64>,
    /// A cell running longer than this is killed and recorded as failed.
    pub cell_timeout_s: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_budget_mb: None,
            cell_timeout_s: 1800.0,
        }
    }
}

/// A suite as written in its TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Model specs, e.g. `rwkv7-upstream:preset=0.1b`.
    pub models: Vec<ModelSpec>,
    /// Prompt lengths (and decode depths) in tokens.
    pub seq_lens: Vec<usize>,
    #[serde(default)]
    pub dtype: Dtype,
    /// Compute threads; 0 uses every core.
    #[serde(default)]
    pub threads: usize,
    /// Seed of random weights and prompt tokens.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub measure: Measure,
    #[serde(default)]
    pub sampling: Sampling,
    #[serde(default)]
    pub limits: Limits,
    /// Training cells (`measure.train`).
    #[serde(default)]
    pub train: TrainCell,
    /// Max-context searches (`measure.max_context`).
    #[serde(default)]
    pub fit: FitSettings,
    /// Dtype-cost measurements (`measure.dtype_cost`).
    #[serde(default)]
    pub dtype_cost: DtypeCostSettings,
    /// Accuracy tasks, task files, corpora and gates (`rwkv-bench eval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<AccuracyConfig>,
    /// The Python interpreter that measures the PyTorch peers (`rwkv7-official`,
    /// `llama-hf`): one with scripts/peers/requirements.txt installed (`--python`
    /// overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PathBuf>,
}

/// A loaded and validated suite.
#[derive(Debug, Clone)]
pub struct Suite {
    pub path: PathBuf,
    /// The file's text, recorded verbatim in results.
    pub source: String,
    pub config: SuiteConfig,
}

/// The error for a suite at `path`.
pub fn suite_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Suite {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// One line for a TOML error: the parser's message, where, and the offending line.
fn describe_toml_error(source: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = source[..span.start.min(source.len())].matches('\n').count() + 1;
            let text = source.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line} (`{text}`): {message}")
        }
        None => message,
    }
}

impl Suite {
    /// Reads, parses and validates a suite file.
    pub fn load(path: &Path) -> Result<Self> {
        let source = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, source)
    }

    /// Parses and validates suite text; `path` is used in messages.
    pub fn parse(path: &Path, source: String) -> Result<Self> {
        let mut config: SuiteConfig = toml::from_str(&source)
            .map_err(|e| suite_error(path, describe_toml_error(&source, &e)))?;
        if let (Some(acc), Some(dir)) = (config.accuracy.as_mut(), path.parent()) {
            acc.resolve_paths(dir);
        }
        let suite = Self {
            path: path.to_path_buf(),
            source,
            config,
        };
        suite.validate()?;
        Ok(suite)
    }

    /// A suite made from settings rather than a file (`rwkv-bench eval --model …`); its
    /// recorded source is the settings written as TOML.
    pub fn from_config(path: &Path, config: SuiteConfig) -> Result<Self> {
        let source = toml::to_string(&config).map_err(|e| suite_error(path, e.to_string()))?;
        let suite = Self {
            path: path.to_path_buf(),
            source,
            config,
        };
        suite.validate()?;
        Ok(suite)
    }

    fn validate(&self) -> Result<()> {
        let c = &self.config;
        let fail = |m: String| Err(suite_error(&self.path, m));
        if c.name.trim().is_empty() {
            return fail("`name` is empty".into());
        }
        if c.models.is_empty() {
            return fail("`models` is empty: name at least one model spec".into());
        }
        // Task files are not generated per length, and a max-context search chooses its
        // own: a suite of only those needs none.
        let needs_lengths = c.measure.inference()
            || c.measure.train
            || c.accuracy
                .as_ref()
                .is_some_and(|a| !(a.tasks.is_empty() && a.corpora.is_empty()));
        if c.seq_lens.is_empty() && needs_lengths {
            return fail("`seq_lens` is empty: name at least one length".into());
        }
        if let Some(bad) = c.seq_lens.iter().find(|&&l| l == 0) {
            return fail(format!(
                "`seq_lens` contains {bad}: lengths must be at least 1 token"
            ));
        }
        if c.sampling.repetitions == 0 {
            return fail("`sampling.repetitions` must be at least 1".into());
        }
        if c.sampling.processes == 0 {
            return fail("`sampling.processes` must be at least 1".into());
        }
        if c.sampling.max_seconds_per_cell.is_nan() || c.sampling.max_seconds_per_cell <= 0.0 {
            return fail("`sampling.max_seconds_per_cell` must be positive".into());
        }
        // The runner turns it into a `Duration`, which holds neither `inf` nor 1e20 s.
        let timeout = c.limits.cell_timeout_s;
        if !(timeout > 0.0 && Duration::try_from_secs_f64(timeout).is_ok()) {
            return fail(format!(
                "`limits.cell_timeout_s` is {timeout}: it must be a positive, finite number \
                 of seconds"
            ));
        }
        if let Some(mb) = c.limits.memory_budget_mb {
            if mb == 0 || mb.checked_mul(1 << 20).is_none() {
                return fail(format!(
                    "`limits.memory_budget_mb` is {mb}: it must be at least 1 and at most {}",
                    u64::MAX >> 20
                ));
            }
        }
        if c.measure.train {
            let t = &c.train;
            if let Some(&bad) = c
                .seq_lens
                .iter()
                .find(|&&l| l > t.tokens_per_step || !t.tokens_per_step.is_multiple_of(l))
            {
                return fail(format!(
                    "`train.tokens_per_step` is {}: every length must divide it, and {bad} \
                     does not (each length trains on the same tokens per step)",
                    t.tokens_per_step
                ));
            }
            if t.steps == 0 {
                return fail("`train.steps` must be at least 1".into());
            }
            if !(t.lr.is_finite() && t.lr > 0.0) {
                return fail(format!("`train.lr` is {}: it must be positive", t.lr));
            }
        }
        if c.measure.max_context {
            c.fit.validate().or_else(fail)?;
        }
        if c.measure.dtype_cost {
            c.dtype_cost.validate().or_else(fail)?;
        }
        if !c.measure.any_run() && c.accuracy.is_none() {
            return fail("`measure` turns every measurement off".into());
        }
        if let Some(acc) = &c.accuracy {
            acc.validate().or_else(fail)?;
        }
        Ok(())
    }

    /// Positions a cell of length `seq_len` needs: the prompt and the decode steps
    /// after it. Saturates, so that an absurd length fails a model's limit rather than
    /// wrapping below it.
    pub fn positions_needed(&self, seq_len: usize) -> usize {
        let s = &self.config.sampling;
        let decode = if self.config.measure.decode {
            s.decode_warmup.saturating_add(s.decode_tokens)
        } else {
            0
        };
        seq_len.saturating_add(decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Suite> {
        Suite::parse(Path::new("suites/test.toml"), text.to_string())
    }

    const MINIMAL: &str = r#"
name = "t"
models = ["rwkv7-upstream:preset=tiny", "llama-upstream:preset=tiny"]
seq_lens = [16, 64]
"#;

    #[test]
    fn minimal_suite_gets_defaults() {
        let s = parse(MINIMAL).unwrap();
        assert_eq!(s.config.dtype, Dtype::F32);
        assert_eq!(s.config.threads, 0);
        assert!(s.config.measure.prefill && s.config.measure.decode && s.config.measure.memory);
        assert_eq!(s.config.sampling, Sampling::default());
        assert_eq!(s.source, MINIMAL);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = parse(&MINIMAL.replace("seq_lens", "seqlens"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("suites/test.toml: line 4"), "{e}");
        assert!(e.contains("seqlens"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn wrong_type_and_missing_key_are_named() {
        let e = parse(&MINIMAL.replace("[16, 64]", "[\"a\"]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("seq_lens"), "{e}");
        let e = parse("name = \"t\"\nseq_lens = [1]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("models"), "{e}");
        let e = parse(&format!("{MINIMAL}\n[sampling]\nrepetitons = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("repetitons"), "{e}");
    }

    #[test]
    fn impossible_lengths_and_models_are_rejected() {
        let e = parse(&MINIMAL.replace("[16, 64]", "[0, 64]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 1 token"), "{e}");
        let e = parse(&MINIMAL.replace("llama-upstream:preset=tiny", "llama-upstream"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("models") && e.contains("NAME:PATH"), "{e}");
    }

    /// Values TOML accepts that the runner cannot use (found by tests/bad_input.rs).
    #[test]
    fn limits_the_runner_cannot_hold_are_rejected() {
        for timeout in ["inf", "nan", "1e20", "0", "-1"] {
            let text = format!("{MINIMAL}[limits]\ncell_timeout_s = {timeout}\n");
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains("`limits.cell_timeout_s`"), "{e}");
        }
        for mb in ["0", "18446744073709551615"] {
            let text = format!("{MINIMAL}[limits]\nmemory_budget_mb = {mb}\n");
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains("`limits.memory_budget_mb`"), "{e}");
        }
        let s = parse(&MINIMAL.replace("[16, 64]", "[18446744073709551615]")).unwrap();
        assert_eq!(s.positions_needed(usize::MAX), usize::MAX);
    }

    #[test]
    fn dtype_cost_settings_default_and_are_checked_only_when_measured() {
        let s = parse(&format!("{MINIMAL}[measure]\ndtype_cost = true\n")).unwrap();
        assert!(s.config.measure.dtype_cost && s.config.measure.any_run());
        assert_eq!(s.config.dtype_cost.tokens, 256);
        let bad = format!("{MINIMAL}[measure]\ndtype_cost = true\n[dtype_cost]\ntokens = 1\n");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("suites/test.toml: ") && e.contains("`dtype_cost.tokens` is 1"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        // Off, the table is not read for anything.
        assert!(parse(&format!("{MINIMAL}[dtype_cost]\ntokens = 1\n")).is_ok());
        let e = parse(&format!("{MINIMAL}[dtype_cost]\ntoken = 8\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("token"), "{e}");
        // A suite of only the dtype cost measures something `run` makes.
        let only = format!(
            "{MINIMAL}[measure]\nprefill = false\ndecode = false\nmemory = false\ndtype_cost = true\n"
        );
        assert!(parse(&only).is_ok());
    }
}
