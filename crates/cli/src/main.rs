//! The `rwkv-bench` binary.

mod cli;
mod commands;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn run() -> anyhow::Result<ExitCode> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Run(args) => return commands::run::run(args),
        cli::Command::Report(args) => commands::report::run(args),
        cli::Command::Merge(args) => commands::merge::run(args),
        cli::Command::Compare(args) => return commands::compare::run(args),
        cli::Command::History(args) => commands::history::run(args),
        cli::Command::Info => commands::info::run(),
        cli::Command::Logits(args) => commands::logits::run(args),
        cli::Command::Grad(args) => commands::grad::run(args),
        cli::Command::Train(args) => return commands::train::run(args),
        cli::Command::Eval(args) => return commands::eval::run(args),
        cli::Command::Fertility(args) => commands::fertility::run(args),
        cli::Command::DtypeCost(args) => commands::dtype_cost::run(args),
        cli::Command::Fit(args) => return commands::fit::run(args),
        cli::Command::Import(args) => commands::import::run(args),
        cli::Command::Cell => commands::cell::run(),
    }
    .map(|()| ExitCode::SUCCESS)
}

/// Unusable input — a suite, spec, task or results file that is malformed or names
/// something missing, a checkpoint that cannot be used, a file that cannot be read —
/// exits 2, so CI can tell it from a regression or a failed cell (1).
fn exit_code(e: &anyhow::Error) -> u8 {
    let unusable = e.chain().any(|c| {
        c.is::<results::compare::Unusable>()
            || c.is::<results::Error>()
            || c.downcast_ref::<models::Error>()
                .is_some_and(models::Error::is_unusable_input)
            || matches!(
                c.downcast_ref::<report::ReportError>(),
                Some(report::ReportError::Data(_))
            )
    });
    if unusable {
        2
    } else {
        1
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}
