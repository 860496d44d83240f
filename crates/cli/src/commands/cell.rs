//! The child side of an isolated cell: a plan on stdin, JSON-line events on stdout.

use std::io::{Read, Write};

use anyhow::Context;
use harness::measure::cell::run_cell;
use harness::measure::{CellEvent, CellPlan};

fn emit(event: &CellEvent) {
    let mut out = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(event) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

pub fn run() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the cell plan from stdin")?;
    let plan: CellPlan = serde_json::from_str(&input).context("parsing the cell plan")?;
    match run_cell(&plan, &mut |e| emit(&e)) {
        Ok(outcome) => {
            emit(&CellEvent::Done {
                outcome: Box::new(outcome),
            });
            Ok(())
        }
        Err(e) => {
            emit(&CellEvent::Failed {
                error: e.to_string(),
            });
            Err(e.into())
        }
    }
}
