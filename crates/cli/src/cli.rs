//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use results::suite::Dtype;
use results::ModelSpec;

#[derive(Parser)]
#[command(
    name = "rwkv-bench",
    version,
    about = "Benchmark RWKV against transformers on candle"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a benchmark suite and write results.json and summary.md
    Run(RunArgs),
    /// Write charts, report.html and summary.md from a results file; from the results
    /// of several machines, a report of them side by side (machines.html, machines.md)
    Report(ReportArgs),
    /// Join the results of a suite's shards (`run --shard I/N`) into one results file
    /// and write its report; refuses shards of different suites, builds, schemas or
    /// machines, and overlapping or missing shards
    Merge(MergeArgs),
    /// Compare a run with a baseline: exit 0 = no regression, 1 = regression, 2 = unusable input
    Compare(CompareArgs),
    /// Keep a run history: append results to a JSON-lines file, chart the trend
    History(HistoryArgs),
    /// Show this machine and the model presets with their parameter counts
    Info,
    /// Write the logits of every position for given tokens (parity checks)
    Logits(LogitsArgs),
    /// Write the next-token loss and the gradient of every parameter for given tokens
    /// (gradient parity checks)
    Grad(GradArgs),
    /// Train a model (AdamW, warm-up + cosine, clipping) on text or a synthetic task,
    /// writing checkpoints in the model's own format and a JSON-lines loss log
    Train(TrainArgs),
    /// Measure accuracy across lengths: synthetic tasks, task files, perplexity; exit 1
    /// when a gate fails
    Eval(EvalArgs),
    /// Tokens per character and per byte of each tokenizer on text in several languages
    /// (gettext catalogs), and a run's crossovers in characters
    Fertility(FertilityArgs),
    /// What storing the weights in bf16, f16, q8_0 or q4_k costs in accuracy: logit
    /// agreement with f32 per position and the loss change, on the same weights
    DtypeCost(DtypeCostArgs),
    /// The longest prompt a model prefills and decodes within a memory budget, by a
    /// search over isolated child processes, next to the analytic prediction
    Fit(FitArgs),
    /// Add another tool's measurements to a run as records of their own (llama.cpp's
    /// llama-bench)
    Import(ImportArgs),
    /// Measure one cell (internal: the isolated child process `run` starts)
    #[command(hide = true)]
    Cell,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub command: ImportCommand,
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Tests of `llama-bench -o jsonl` as llama.cpp records: pp tests as prefill, tg
    /// tests as decode at their depth (layers and width read from the GGUF file where
    /// it is on this machine)
    LlamaBench(LlamaBenchArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["into", "out"])))]
pub struct LlamaBenchArgs {
    /// Files written by `llama-bench -o jsonl`, one test a line
    #[arg(required = true, value_name = "FILE.jsonl")]
    pub files: Vec<PathBuf>,
    /// A run's results.json to add the records to (its report is rewritten beside it);
    /// llama-bench must have run on its machine with its threads
    #[arg(long, value_name = "RESULTS")]
    pub into: Option<PathBuf>,
    /// Or a directory for a new results.json of only these records, on this machine
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Import into --into despite another CPU or thread count (noted in the models'
    /// descriptions)
    #[arg(long)]
    pub force: bool,
    /// Overwrite cells the results already hold (or an existing --out results.json)
    #[arg(long)]
    pub replace: bool,
}

#[derive(clap::Args)]
pub struct FertilityArgs {
    /// Tokenizer: world:PATH (rwkv_vocab_v20230424.txt), hf:PATH (tokenizer.json) or
    /// bytes (repeatable)
    #[arg(long, required = true)]
    pub tokenizer: Vec<results::TokenizerSpec>,
    /// Languages: directories under --locales (English is always measured, on the
    /// catalogs' sources)
    #[arg(long, value_delimiter = ',', default_value = "id,th,vi")]
    pub languages: Vec<String>,
    /// Where gettext catalogs lie, as <DIR>/<lang>/LC_MESSAGES/*.mo
    #[arg(long, default_value = "/usr/share/locale")]
    pub locales: PathBuf,
    /// A results.json of `run`: its crossovers are given in characters per language
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Also write the measurements as JSON here
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DtypeCostArgs {
    /// Model spec without `dtype=`, e.g. rwkv7:model.pth or llama:pretrained=recall-small
    #[arg(long)]
    pub model: ModelSpec,
    /// Weight dtypes to compare with f32
    #[arg(long, value_delimiter = ',', default_value = "bf16,f16,q8_0,q4_k")]
    pub dtypes: Vec<kernels::WeightDtype>,
    /// Text to score, in the model's tokenizer (without it: seeded random tokens)
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Positions compared (the first ones of --text, or this many random tokens)
    #[arg(long, default_value_t = 256)]
    pub tokens: usize,
    /// Seed of the random tokens and of preset weights
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the comparison as JSON here
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct FitArgs {
    /// Model spec, e.g. rwkv7:preset=3b,dtype=q4_k or llama:pretrained=recall-small
    #[arg(long)]
    pub model: ModelSpec,
    /// The memory budget a probe's peak RSS must stay within: 8GB, 6.5GiB, 512MB
    /// (GB and GiB both mean 2^30 bytes, as RAM is sold)
    #[arg(long, value_parser = parse_mib, default_value = "8GB")]
    pub budget: u64,
    /// The longest prompt tried (RWKV's memory does not grow with the context, so its
    /// search ends here)
    #[arg(long, default_value_t = results::suite::FitSettings::default().cap)]
    pub cap: usize,
    /// The first probe's prompt length, which the memory model is fitted to
    #[arg(long, default_value_t = results::suite::FitSettings::default().start)]
    pub start: usize,
    /// Stop once the shortest prompt over budget is within this fraction of the
    /// longest that fitted
    #[arg(long, default_value_t = results::suite::FitSettings::default().tolerance)]
    pub tolerance: f64,
    /// Seconds a probe may run before the search stops with a lower bound
    #[arg(long, default_value_t = results::suite::FitSettings::default().probe_timeout_s)]
    pub probe_timeout: f64,
    /// Weight storage type, unless the spec says `dtype=`
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// Compute threads (0 = every core)
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Seed of preset weights and prompt tokens
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the search (every probe, the prediction, the machine) as JSON here
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A size in MiB from `8GB`, `8GiB`, `512MB`, `512MiB` or `4096` (MiB).
pub fn parse_mib(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 8GB or 512MB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => 1.0,
        "g" | "gb" | "gib" => 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0,
        other => return Err(format!("unknown unit `{other}` in `{text}` (use MB or GB)")),
    };
    let mib = (value * scale).round();
    if !(mib >= 1.0 && mib < (u64::MAX >> 20) as f64) {
        return Err(format!("`{text}`: a budget must be at least 1 MB"));
    }
    Ok(mib as u64)
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Suite file (TOML)
    #[arg(default_value = "suites/quick.toml")]
    pub suite: PathBuf,
    /// Output directory [default: reports/<suite name>]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Compute threads, overriding the suite (0 = every core)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Weight storage type (f32, bf16, f16, q8_0, q4_k), overriding the suite
    #[arg(long, value_enum)]
    pub dtype: Option<DtypeArg>,
    /// Run shard I of N (from 1): the lengths, max-context searches and dtype costs
    /// assigned to it, balanced by predicted cost and the same on every machine; join
    /// the shards with `merge` [default --out: reports/<suite name>/shard-I-of-N]
    #[arg(long, value_name = "I/N")]
    pub shard: Option<results::shard::Shard>,
    /// Python interpreter for the PyTorch peers (`rwkv7-official`, `llama-hf`),
    /// overriding the suite's `python` (scripts/peers/setup.sh makes one)
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// Results files of shards of one suite (`run --shard I/N`), in any order
    #[arg(required = true, num_args = 1..)]
    pub shards: Vec<PathBuf>,
    /// Directory for the merged results.json and its report
    #[arg(long)]
    pub out: PathBuf,
    /// Merge even when shards are missing (the file lists the shards it holds)
    #[arg(long)]
    pub partial: bool,
    /// Merge shards whose machine captures differ (each cell stays its machine's; the
    /// merged file keeps the first shard's capture and lists every host)
    #[arg(long)]
    pub allow_mixed_machines: bool,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub command: HistoryCommand,
}

#[derive(Subcommand)]
pub enum HistoryCommand {
    /// Append the medians of a results.json as one line
    Append {
        results: PathBuf,
        /// The history file (JSON lines)
        #[arg(long, default_value = "reports/history.jsonl")]
        file: PathBuf,
    },
    /// Chart every cell's median over the runs of a history file
    Chart {
        #[arg(default_value = "reports/history.jsonl")]
        file: PathBuf,
        #[arg(long, default_value = "reports/history")]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// A results.json written by `run`; two or more, from different machines, for one
    /// report comparing the machines (machines.html, machines.md)
    #[arg(required = true, value_name = "RESULTS")]
    pub results: Vec<PathBuf>,
    /// Output directory [default: the results file's directory; with several files,
    /// reports/machines]
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct CompareArgs {
    /// The baseline results.json
    pub baseline: PathBuf,
    /// The current results.json
    pub current: PathBuf,
    /// A cell regresses when the whole 95 % interval of its change exceeds this
    #[arg(long, default_value = "10%", value_parser = parse_fraction)]
    pub max_regression: f64,
    /// Transformer/RWKV cost ratio (baseline over candidate) that must not fall by more than PERCENT, e.g.
    /// decode_latency@4096=10% (repeatable)
    #[arg(long, value_name = "METRIC@LENGTH=PERCENT")]
    pub ratio_gate: Vec<results::compare::RatioGate>,
    /// Compare only these metrics (repeatable) [default: all timing and memory metrics]
    #[arg(long, value_enum)]
    pub metric: Vec<MetricArg>,
    #[arg(long, value_enum, default_value_t = CompareFormat::Markdown)]
    pub format: CompareFormat,
}

/// The metrics `compare` can gate on.
#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum MetricArg {
    PrefillTime,
    DecodeLatency,
    PeakRss,
    StateBytes,
}

impl From<MetricArg> for results::Metric {
    fn from(m: MetricArg) -> Self {
        use results::Metric;
        match m {
            MetricArg::PrefillTime => Metric::PrefillTime,
            MetricArg::DecodeLatency => Metric::DecodeLatency,
            MetricArg::PeakRss => Metric::PeakRss,
            MetricArg::StateBytes => Metric::StateBytes,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CompareFormat {
    Markdown,
    Json,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    results::compare::parse_percent(s)
        .ok_or_else(|| format!("`{s}` is not a percentage such as 10%"))
}

#[derive(clap::Args)]
pub struct LogitsArgs {
    /// Model spec, e.g. rwkv7:model.pth or llama:hf_dir
    #[arg(long)]
    pub model: ModelSpec,
    /// Comma-separated token ids
    #[arg(long, value_delimiter = ',', required = true)]
    pub tokens: Vec<u32>,
    /// seq: one batched forward over all tokens; step: one token at a time
    #[arg(long, value_enum, default_value_t = LogitsMode::Seq)]
    pub mode: LogitsMode,
    /// Output safetensors file (tensor `logits`, [T, vocab] f32)
    #[arg(long)]
    pub out: PathBuf,
    /// Weight storage type (f32, bf16, f16, q8_0, q4_k)
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
}

#[derive(clap::Args)]
pub struct GradArgs {
    /// Model spec, e.g. rwkv7:model.pth or rwkv7:preset=tiny
    #[arg(long)]
    pub model: ModelSpec,
    /// Comma-separated token ids (at least 2)
    #[arg(long, value_delimiter = ',', required = true)]
    pub tokens: Vec<u32>,
    /// Output safetensors file: `loss` [1] and `grad.<checkpoint key>` per parameter, f32
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Model spec to start from: a preset (random init) or a checkpoint
    #[arg(long)]
    pub model: ModelSpec,
    /// Run directory: run.json, log.jsonl, step-NNNNNN/ checkpoints, latest
    #[arg(long)]
    pub out: PathBuf,
    /// Train on a text file or a directory of .txt files, in the model's tokenizer
    #[arg(long, conflicts_with = "task", required_unless_present = "task")]
    pub text: Option<PathBuf>,
    /// Train on a synthetic task (loss on its answers only)
    #[arg(long, value_enum)]
    pub task: Option<TaskArg>,
    /// A task setting, as in a suite's [tasks] table, e.g. mqar_pairs=16 (repeatable)
    #[arg(long = "task-param", value_name = "KEY=VALUE")]
    pub task_params: Vec<String>,
    /// A task mixture entry, e.g. `seq_len=512,mqar_pairs=64` over --seq-len and
    /// --task-param (repeatable; step s trains on entry (s - 1) mod count)
    #[arg(long, value_name = "SETTINGS", requires = "task")]
    pub mix: Vec<String>,
    /// Optimizer steps in all (a resumed run goes on to this step)
    #[arg(long, default_value_t = 200)]
    pub steps: u64,
    /// Sequences per step
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Tokens per sequence
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Peak learning rate
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Warm-up steps [default: 10 % of --steps]
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Final learning rate as a fraction of --lr (cosine decay)
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_ratio: f64,
    /// AdamW weight decay (matrices only)
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f64,
    /// Clip the global gradient norm to this
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Seeds the batches (and a preset's initial weights)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a checkpoint every N steps (and at the last)
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: u64,
    /// Continue from the run directory's latest checkpoint, optimizer state included
    #[arg(long)]
    pub resume: bool,
    /// Stop after this step with a checkpoint, as if interrupted (the schedule stays
    /// that of --steps; --resume goes on)
    #[arg(long)]
    pub stop_after: Option<u64>,
    /// Compute threads (0 = every core)
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogitsMode {
    Seq,
    Step,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DtypeArg {
    F32,
    Bf16,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_k")]
    Q4K,
}

impl From<DtypeArg> for Dtype {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::F32 => Dtype::F32,
            DtypeArg::Bf16 => Dtype::Bf16,
            DtypeArg::F16 => Dtype::F16,
            DtypeArg::Q8_0 => Dtype::Q8_0,
            DtypeArg::Q4K => Dtype::Q4K,
        }
    }
}

impl std::fmt::Display for LogitsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogitsMode::Seq => "seq",
            LogitsMode::Step => "step",
        })
    }
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A suite with an [accuracy] section (e.g. suites/accuracy.toml); or give --model
    /// and --task / --task-file / --text for a one-off check
    pub suite: Option<PathBuf>,
    /// Model spec, optionally with its tokenizer: SPEC[,tokenizer=bytes|world:PATH|hf:PATH]
    /// (repeatable)
    #[arg(long)]
    pub model: Vec<ModelSpec>,
    /// Synthetic task (repeatable)
    #[arg(long, value_enum)]
    pub task: Vec<TaskArg>,
    /// Lengths in tokens, e.g. 1k,4k,16k
    #[arg(long, value_delimiter = ',', value_parser = parse_length)]
    pub lengths: Vec<usize>,
    /// A task file (JSON Lines) to score (repeatable)
    #[arg(long)]
    pub task_file: Vec<PathBuf>,
    /// A text file, or a directory of .txt files, for perplexity by position (repeatable)
    #[arg(long)]
    pub text: Vec<PathBuf>,
    /// Examples per (length, depth)
    #[arg(long)]
    pub examples: Option<usize>,
    /// Needle depths as fractions, e.g. 0,0.5,1
    #[arg(long, value_delimiter = ',')]
    pub depths: Vec<f64>,
    /// Seed of the generated examples
    #[arg(long)]
    pub seed: Option<u64>,
    /// Minimum accuracy of a task for every model, e.g. passkey=0.9 (repeatable)
    #[arg(long, value_name = "TASK=SCORE")]
    pub min: Vec<String>,
    /// Output directory [default: reports/<suite name>]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the records of an interrupted run in the output directory and run only the
    /// missing cells
    #[arg(long)]
    pub resume: bool,
    /// Compute threads, overriding the suite (0 = every core)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Weight storage type (f32, bf16, f16, q8_0, q4_k), overriding the suite
    #[arg(long, value_enum)]
    pub dtype: Option<DtypeArg>,
}

/// The synthetic tasks.
#[derive(Clone, Copy, ValueEnum)]
pub enum TaskArg {
    Passkey,
    Niah,
    Mqar,
    Copy,
}

impl From<TaskArg> for results::task::TaskKind {
    fn from(t: TaskArg) -> Self {
        use results::task::TaskKind;
        match t {
            TaskArg::Passkey => TaskKind::Passkey,
            TaskArg::Niah => TaskKind::Niah,
            TaskArg::Mqar => TaskKind::Mqar,
            TaskArg::Copy => TaskKind::Copy,
        }
    }
}

/// `4096`, `4k` (= 4096) or `1.5k`.
pub fn parse_length(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let n = match t.strip_suffix(['k', 'K']) {
        Some(k) => k
            .parse::<f64>()
            .ok()
            .map(|v| (v * 1024.0).round())
            .filter(|v| *v >= 1.0 && v.fract() == 0.0)
            .map(|v| v as usize),
        None => t.parse::<usize>().ok().filter(|&n| n > 0),
    };
    n.ok_or_else(|| format!("`{s}` is not a length such as 512, 4k or 16k"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_as_ram_is_sold() {
        assert_eq!(parse_mib("8GB"), Ok(8192));
        assert_eq!(parse_mib("6.5GiB"), Ok(6656));
        assert_eq!(parse_mib("512MB"), Ok(512));
        assert_eq!(parse_mib("4096"), Ok(4096));
        assert!(parse_mib("8 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_mib("0GB").is_err());
        assert!(parse_mib("GB").is_err());
    }
}
