//! The Markdown summary for a terminal or a pull-request comment: run metadata, the
//! key tables, the scaling analysis and the claims table.

use std::fmt::Write;

use results::Results;

use super::Exporter;
use crate::claims::claims;
use crate::tables::{self, Table};
use crate::Result;

pub struct Markdown;

fn escape(cell: &str) -> String {
    cell.replace('|', "\\|")
}

/// Renders one table as GitHub-flavoured Markdown.
pub fn table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "\n### {}\n", t.title);
    if !t.note.is_empty() {
        let _ = writeln!(out, "{}.\n", t.note);
    }
    let _ = writeln!(
        out,
        "| {} |",
        t.header
            .iter()
            .map(|h| escape(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let align: Vec<&str> = (0..t.header.len())
        .map(|i| if i == 0 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    for row in &t.rows {
        let _ = writeln!(
            out,
            "| {} |",
            row.iter()
                .map(|c| escape(c))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
}

/// The one-paragraph description of the run.
pub fn run_line(results: &Results) -> String {
    let m = &results.machine;
    format!(
        "{} ({} core{}, {:.0} GB RAM, {}), {} threads, {}, commit `{}`, {}, {:.0} s.",
        m.cpu_model,
        m.cores(),
        if m.cores() == 1 { "" } else { "s" },
        m.memory_bytes() as f64 / (1u64 << 30) as f64,
        m.os,
        results
            .settings
            .threads_used
            .map_or("?".into(), |t| t.to_string()),
        results.settings.dtype,
        results.tool.git_commit,
        results.started_at,
        results.duration_s
    )
}

impl Exporter for Markdown {
    fn serialize(&self, results: &Results) -> Result<Vec<u8>> {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## rwkv-bench: suite `{}`\n",
            results.suite.config.name
        );
        let _ = writeln!(out, "{}", run_line(results));
        if results.models.iter().any(|m| m.weights.is_random()) {
            let _ = writeln!(
                out,
                "\nRandom-weight presets: speed and memory are meaningful, accuracy is not."
            );
        }
        table(&mut out, &tables::models(results));
        for t in tables::metrics(results) {
            table(&mut out, &t);
        }
        for t in [
            tables::dtypes(results),
            tables::accuracy(results),
            tables::perplexity(results),
            tables::gates(results),
            tables::max_context(results),
            tables::scaling(results),
            tables::crossovers(results),
            tables::implementations(results),
            tables::fairness(results),
        ]
        .into_iter()
        .flatten()
        {
            table(&mut out, &t);
        }
        table(&mut out, &tables::claims(&claims(results)));
        if let Some(t) = tables::failures(results) {
            table(&mut out, &t);
        }
        Ok(out.into_bytes())
    }
}
