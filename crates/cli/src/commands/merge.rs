//! `rwkv-bench merge`: the shards of one suite joined into one results file and its
//! report.

use results::merge::{merge, MergeOptions};
use results::Results;

use crate::cli::MergeArgs;

pub fn run(args: MergeArgs) -> anyhow::Result<()> {
    let files = args
        .shards
        .iter()
        .map(|p| Ok((p.clone(), Results::load(p)?)))
        .collect::<results::Result<Vec<_>>>()?;
    let opts = MergeOptions {
        partial: args.partial,
        mixed_machines: args.allow_mixed_machines,
    };
    let merged = merge(files, opts)?;
    let path = args.out.join("results.json");
    merged.save(&path)?;
    let written = report::write_report(&merged, &args.out)?;
    let hosts: std::collections::BTreeSet<&str> =
        merged.shards.iter().map(|s| s.hostname.as_str()).collect();
    println!(
        "merged {} shard(s) of {} from {} host(s): {} records, {} failure(s)",
        merged.shards.len(),
        merged.shards.first().map_or(0, |s| s.count),
        hosts.len(),
        merged.records.len(),
        merged.failures.len()
    );
    println!(
        "wrote {}, {}, {} and {} chart files",
        path.display(),
        written.html.display(),
        written.markdown.display(),
        written.charts.len()
    );
    Ok(())
}
