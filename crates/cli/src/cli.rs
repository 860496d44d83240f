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
    /// Show this machine and the model presets with their parameter counts
    Info,
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
