//! `rwkv-bench history`: append runs to a JSON-lines file and chart the trend.

use results::history::{self, Entry};
use results::Results;

use crate::cli::{HistoryArgs, HistoryCommand};

pub fn run(args: HistoryArgs) -> anyhow::Result<()> {
    match args.command {
        HistoryCommand::Append { results, file } => {
            let r = Results::load(&results)?;
            history::append(&file, &Entry::from_results(&r))?;
            println!("appended {} to {}", results.display(), file.display());
        }
        HistoryCommand::Chart { file, out } => {
            let entries = history::load(&file)?;
            let written = report::write_charts(&report::chart::trend::charts(&entries), &out)?;
            println!(
                "charted {} runs from {} into {} files under {}",
                entries.len(),
                file.display(),
                written.len(),
                out.display()
            );
        }
    }
    Ok(())
}
