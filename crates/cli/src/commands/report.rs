//! `rwkv-bench report`: charts, HTML and Markdown from a results file.

use std::path::PathBuf;

use results::Results;

use crate::cli::ReportArgs;

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let results = Results::load(&args.results)?;
    let dir = args.out.unwrap_or_else(|| {
        args.results
            .parent()
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
