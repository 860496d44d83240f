//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use harness::suite::Dtype;

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
    /// Write charts, report.html and summary.md from a results file
    Report(ReportArgs),
    /// Compare a run with a baseline: exit 0 = no regression, 1 = regression, 2 = unusable input
    Compare(CompareArgs),
    /// Keep a run history: append results to a JSON-lines file, chart the trend
    History(HistoryArgs),
    /// Show this machine and the model presets with their parameter counts
    Info,
    /// Write the logits of every position for given tokens (parity checks)
    Logits(LogitsArgs),
    /// Measure one cell (internal: the isolated child process `run` starts)
    #[command(hide = true)]
    Cell,
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
    /// Element type, overriding the suite
    #[arg(long, value_enum)]
    pub dtype: Option<DtypeArg>,
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
    /// A results.json written by `run`
    pub results: PathBuf,
    /// Output directory [default: the results file's directory]
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
    /// RWKV/transformer ratio that must not fall by more than PERCENT, e.g.
    /// decode_latency@4096=10% (repeatable)
    #[arg(long, value_name = "METRIC@LENGTH=PERCENT")]
    pub ratio_gate: Vec<harness::compare::RatioGate>,
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

impl From<MetricArg> for harness::results::Metric {
    fn from(m: MetricArg) -> Self {
        use harness::results::Metric;
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
    harness::compare::parse_percent(s)
        .ok_or_else(|| format!("`{s}` is not a percentage such as 10%"))
}

#[derive(clap::Args)]
pub struct LogitsArgs {
    /// Model spec, e.g. rwkv7:model.pth or llama:hf_dir
    #[arg(long)]
    pub model: String,
    /// Comma-separated token ids
    #[arg(long, value_delimiter = ',', required = true)]
    pub tokens: Vec<u32>,
    /// seq: one batched forward over all tokens; step: one token at a time
    #[arg(long, value_enum, default_value_t = LogitsMode::Seq)]
    pub mode: LogitsMode,
    /// Output safetensors file (tensor `logits`, [T, vocab] f32)
    #[arg(long)]
    pub out: PathBuf,
    /// Element type the model runs in
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
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
}

impl From<DtypeArg> for Dtype {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::F32 => Dtype::F32,
            DtypeArg::Bf16 => Dtype::Bf16,
            DtypeArg::F16 => Dtype::F16,
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
