//! The child side of an isolated cell, as the binary's `cell` command runs it: a
//! [`CellPlan`] as JSON on stdin, [`CellEvent`]s as JSON lines on stdout.

use std::io::{Read, Write};

use models::{Error, Result};

use crate::measure::calibrate::calibrate;
use crate::measure::cell::run_cell;
use crate::measure::{CellEvent, ChildJob};

fn emit(event: &CellEvent) {
    let mut out = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(event) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Reads a job from stdin (a cell plan, or a roofline calibration), carries it out,
/// and reports the result (or the failure) on stdout; the error is returned too, so
/// the process exits non-zero.
pub fn cell_main() -> Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| Error::Cell(format!("reading the cell plan from stdin: {e}")))?;
    let job: ChildJob = serde_json::from_str(&input)
        .map_err(|e| Error::Cell(format!("parsing the cell plan: {e}")))?;
    let result = match job {
        // On a rayon worker, not the main thread: every parallel product of a decode
        // step then forks from inside the pool (a work-stealing join, the idle worker
        // still spinning from the previous one) instead of injecting its job from
        // outside and sleeping on a latch until a futex wakes it, twice per product.
        // That round trip cost a 0.1B decode step about a millisecond on 2 cores.
        ChildJob::Cell(plan) => {
            rayon::scope(|_| run_cell(&plan, &mut |e| emit(&e))).map(|outcome| CellEvent::Done {
                outcome: Box::new(outcome),
            })
        }
        ChildJob::Calibrate { calibrate: plan } => {
            calibrate(&plan).map(|roofline| CellEvent::Calibrated {
                roofline: Box::new(roofline),
            })
        }
    };
    match result {
        Ok(event) => {
            emit(&event);
            Ok(())
        }
        Err(e) => {
            emit(&CellEvent::Failed {
                error: e.to_string(),
            });
            Err(e)
        }
    }
}
