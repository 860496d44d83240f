//! The `rwkv-bench` binary.

mod cli;
mod commands;
mod progress;

use clap::Parser;

fn run() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Run(args) => commands::run::run(args),
        cli::Command::Info => commands::info::run(),
        cli::Command::Cell => commands::cell::run(),
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
