//! `rwkv-bench report`: charts, HTML and Markdown from a results file, or from results
//! files of several machines side by side.

use std::path::PathBuf;

use results::Results;

use crate::cli::ReportArgs;

/// Where a report of several machines goes unless `--out` says otherwise: their files
/// may lie anywhere, so no one file's directory is the natural place.
const MACHINES_DIR: &str = "reports/machines";

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let [path] = args.results.as_slice() else {
        return machines(args);
    };
    let results = Results::load(path)?;
    let dir = args.out.unwrap_or_else(|| {
        path.parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let written = report::write_report(&results, &dir)?;
    println!(
        "wrote {}, {} and {} chart files",
        written.html.display(),
        written.markdown.display(),
        written.charts.len()
    );
    Ok(())
}

/// The report of two or more results files, grouped by the machine each recorded.
fn machines(args: ReportArgs) -> anyhow::Result<()> {
    let machines = report::machines::Machines::load(&args.results)?;
    let dir = args.out.unwrap_or_else(|| PathBuf::from(MACHINES_DIR));
    let written = report::machines::write(&machines, &dir)?;
    println!(
        "{} files, {} machines: wrote {}, {} and {} chart files",
        machines.files(),
        machines.machines.len(),
        written.html.display(),
        written.markdown.display(),
        written.charts.len()
    );
    Ok(())
}
