//! The Markdown summary: run metadata, one table per metric (models x lengths), the
//! scaling analysis and the failed cells. Readable in a terminal and in a PR comment.

use std::fmt::Write;

use harness::analysis::CrossoverAt;
use harness::results::{Metric, Results};

use super::Exporter;
use crate::format;

/// Metrics in the order they are shown.
const SHOWN: [Metric; 5] = [
    Metric::PrefillTime,
    Metric::PrefillThroughput,
    Metric::DecodeLatency,
    Metric::PeakRss,
    Metric::StateBytes,
];

pub struct Markdown;

fn lengths(results: &Results) -> Vec<usize> {
    let mut l: Vec<usize> = results.records.iter().map(|r| r.seq_len).collect();
    l.extend(results.failures.iter().map(|f| f.seq_len));
    l.sort_unstable();
    l.dedup();
    l
}

fn metric_table(out: &mut String, results: &Results, metric: Metric, lens: &[usize]) {
    if !results.records.iter().any(|r| r.metric == metric) {
        return;
    }
    let what = match metric {
        Metric::DecodeLatency => "per token at context depth",
        Metric::PeakRss => "of the isolated cell process, by prompt length",
        _ => "by prompt length",
    };
    let _ = writeln!(out, "\n### {} ({what})\n", metric.label());
    let _ = write!(out, "| model |");
    for &l in lens {
        let _ = write!(out, " {} |", format::length(l));
    }
    let _ = write!(out, "\n|---|");
    for _ in lens {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    for m in &results.models {
        let _ = write!(out, "| `{}` |", m.spec);
        for &l in lens {
            let rec = results
                .records
                .iter()
                .find(|r| r.model == m.spec && r.metric == metric && r.seq_len == l);
            let failed = results
                .failures
                .iter()
                .any(|f| f.model == m.spec && f.seq_len == l);
            let cell = match rec {
                Some(r) if r.samples.len() > 1 => format!(
                    "{} (n={}, p10–p90 {}–{})",
                    format::value(r.unit, r.summary.median),
                    r.samples.len(),
                    format::value(r.unit, r.summary.p10),
                    format::value(r.unit, r.summary.p90)
                ),
                Some(r) => format!("{} (n=1)", format::value(r.unit, r.summary.median)),
                None if failed => "failed".into(),
                None => "–".into(),
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
}

fn analysis(out: &mut String, results: &Results) {
    let a = &results.analysis;
    if a.slopes.is_empty() && a.crossovers.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Scaling\n");
    let _ = writeln!(
        out,
        "Fitted exponent k of cost ~ length^k (1 = linear, 0 = flat):\n"
    );
    let _ = writeln!(out, "| model | metric | k | lengths |\n|---|---|---:|---|");
    for s in &a.slopes {
        let lens: Vec<String> = s.seq_lens.iter().map(|&l| format::length(l)).collect();
        let _ = writeln!(
            out,
            "| `{}` | {} | {:.2} | {} |",
            s.model,
            s.metric.label(),
            s.slope,
            lens.join(", ")
        );
    }
    if a.crossovers.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nWhere RWKV becomes cheaper than the transformer:\n");
    let _ = writeln!(
        out,
        "| metric | rwkv | transformer | crossover |\n|---|---|---|---|"
    );
    for c in &a.crossovers {
        let at = match c.at {
            CrossoverAt::RwkvCheaperThroughout { from } => {
                format!("cheaper at every length from {}", format::length(from))
            }
            CrossoverAt::Crosses { length, between } => format!(
                "≈ {length:.0} tokens (between {} and {})",
                format::length(between.0),
                format::length(between.1)
            ),
            CrossoverAt::Never { up_to } => format!("not cheaper up to {}", format::length(up_to)),
        };
        let _ = writeln!(
            out,
            "| {} | `{}` | `{}` | {at} |",
            c.metric.label(),
            c.rwkv,
            c.transformer
        );
    }
}

impl Exporter for Markdown {
    fn serialize(&self, results: &Results) -> Vec<u8> {
        let mut out = String::new();
        let m = &results.machine;
        let _ = writeln!(
            out,
            "## rwkv-bench: suite `{}`\n",
            results.suite.config.name
        );
        let _ = writeln!(
            out,
            "{} ({} cores, {:.0} GB RAM, {}), {} threads, {}, commit `{}`, {:.0} s.\n",
            m.cpu_model,
            m.logical_cores,
            m.ram_bytes as f64 / (1u64 << 30) as f64,
            m.os,
            results
                .settings
                .threads_used
                .map_or("?".into(), |t| t.to_string()),
            results.settings.dtype,
            results.tool.git_commit,
            results.duration_s
        );
        let _ = writeln!(
            out,
            "| model | implementation | params | weights |\n|---|---|---:|---|"
        );
        for info in &results.models {
            let _ = writeln!(
                out,
                "| `{}` | {} | {:.1} M | {} |",
                info.spec,
                info.description,
                info.params as f64 / 1e6,
                info.weights
            );
        }
        let lens = lengths(results);
        for metric in SHOWN {
            metric_table(&mut out, results, metric, &lens);
        }
        analysis(&mut out, results);
        if !results.failures.is_empty() {
            let _ = writeln!(out, "\n### Failed cells\n");
            for f in &results.failures {
                let _ = writeln!(
                    out,
                    "- `{}` at {}: {}",
                    f.model,
                    format::length(f.seq_len),
                    f.error
                );
            }
        }
        out.into_bytes()
    }
}
