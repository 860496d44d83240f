//! A report over runs from several machines: where RWKV beats the transformer, and
//! from which length, on each kind of hardware.
//!
//! The pipeline is the single-run report's: [`group`] reads the files and sorts their
//! records into machines (by the recorded capture, never by file name) and analyses
//! each machine's records; [`wins`] judges every (machine, metric, pair); [`charts`]
//! and [`tables`] present them; [`export`] turns them into HTML and Markdown without
//! I/O; [`write`] writes the files.

pub mod charts;
pub mod export;
pub mod group;
pub mod tables;
pub mod wins;

use std::path::Path;

pub use export::{Html, MachinesExporter, Markdown};
pub use group::{MachineRuns, Machines, Replacement, Run};
pub use wins::{Outcome, WinRow};

use crate::{Result, Written};

/// Writes `machines.html`, `machines.md` and `charts/<name>.{svg,png}` into `dir`,
/// each atomically.
pub fn write(machines: &Machines, dir: &Path) -> Result<Written> {
    let charts = crate::write_charts(&charts::charts(machines), &dir.join("charts"))?;
    let html = dir.join("machines.html");
    results::atomic::write(&html, &Html.serialize(machines)?)?;
    let markdown = dir.join("machines.md");
    results::atomic::write(&markdown, &Markdown.serialize(machines)?)?;
    Ok(Written {
        html,
        markdown,
        charts,
    })
}
