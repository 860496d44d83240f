//! A comparison against a baseline as Markdown: the gates, then every cell whose change
//! is beyond noise, then the rest folded away.

use std::fmt::Write;

use results::compare::{metric_key, CellChange, Comparison, Verdict};

use crate::format;

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Regressed => "**regressed**",
        Verdict::Improved => "improved",
        Verdict::Unchanged => "unchanged",
        Verdict::Failed => "**failed**",
        Verdict::Missing => "**missing**",
    }
}

fn row(out: &mut String, c: &CellChange) {
    let unit = c.metric.unit();
    let current = c.current.map_or("–".into(), |v| format::value(unit, v));
    let change = match (c.change, c.ci) {
        (Some(ch), Some(ci)) if ci.hi > ci.lo => {
            format!(
                "{:+.1} % [{:+.1}, {:+.1}]",
                ch * 100.0,
                ci.lo * 100.0,
                ci.hi * 100.0
            )
        }
        (Some(ch), _) => format!("{:+.1} %", ch * 100.0),
        _ => c.error.clone().unwrap_or_default(),
    };
    let _ = writeln!(
        out,
        "| `{}` | {} | {} | {} | {} | {change} | {} |",
        c.model,
        c.metric.label(),
        format::length(c.seq_len),
        format::value(unit, c.baseline),
        current,
        verdict(c.verdict)
    );
}

/// Renders a comparison as Markdown.
pub fn markdown(cmp: &Comparison) -> String {
    let mut out = String::new();
    let status = if cmp.regressed() {
        "regression"
    } else {
        "no regression"
    };
    let _ = writeln!(
        out,
        "### Comparison with the baseline: {status}\n\nA cell regresses when the whole 95 % interval of its change is beyond +{:.0} %.\n",
        cmp.max_regression * 100.0
    );
    for w in &cmp.warnings {
        let _ = writeln!(out, "> warning: {w}\n");
    }
    if !cmp.gates.is_empty() {
        let _ = writeln!(
            out,
            "| ratio gate | pair | baseline | current | result |\n|---|---|---:|---:|---|"
        );
        for g in &cmp.gates {
            let _ = writeln!(
                out,
                "| {}@{} may fall ≤ {:.0} % | `{}` / `{}` | {:.2}× | {} | {} |",
                metric_key(g.gate.metric),
                g.gate.seq_len,
                g.gate.max_drop * 100.0,
                g.baseline,
                g.candidate,
                g.baseline_ratio,
                g.current_ratio.map_or("–".into(), |r| format!("{r:.2}×")),
                if g.passed { "pass" } else { "**fail**" }
            );
        }
        out.push('\n');
    }
    let header = "| model | metric | length | baseline | current | change [95 % CI] | verdict |\n|---|---|---:|---:|---:|---:|---|";
    let (notable, rest): (Vec<&CellChange>, Vec<&CellChange>) = cmp
        .cells
        .iter()
        .partition(|c| c.verdict != Verdict::Unchanged);
    if notable.is_empty() {
        let _ = writeln!(out, "No cell changed beyond noise and the threshold.\n");
    } else {
        let _ = writeln!(out, "{header}");
        for c in notable {
            row(&mut out, c);
        }
        out.push('\n');
    }
    if !rest.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{} unchanged cells</summary>\n\n{header}",
            rest.len()
        );
        for c in rest {
            row(&mut out, c);
        }
        let _ = writeln!(out, "\n</details>");
    }
    out
}
