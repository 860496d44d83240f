//! The multi-machine report's tables and notes, built once and rendered by both the
//! HTML and the Markdown exporter (as the single-run report's [`Table`]s are).

use results::analysis::{CrossoverAt, Speedup};

use super::group::threads_text;
use super::wins::{interval, rows, WinRow};
use results::fit::thousands;

use super::{MachineRuns, Machines};
use crate::tables::Table;

/// Bytes in GiB, as the machine labels count memory.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// `1.52× [1.31, 1.70] at 4,096`.
fn speedup(s: &Speedup) -> String {
    let ci = interval(s);
    format!(
        "{:.2}× [{:.2}, {:.2}] at {}",
        s.ratio,
        ci.lo,
        ci.hi,
        thousands(s.seq_len)
    )
}

/// Where the medians cross, worded as the single-run Crossovers table words it.
fn crossing(at: CrossoverAt) -> String {
    match at {
        CrossoverAt::CheaperThroughout { from } => {
            format!("cheaper at every length from {}", thousands(from))
        }
        CrossoverAt::Crosses { length, between } => format!(
            "≈ {} tokens (between {} and {})",
            thousands(length.round() as usize),
            thousands(between.0),
            thousands(between.1)
        ),
        CrossoverAt::Never { up_to } => format!("not cheaper up to {}", thousands(up_to)),
    }
}

fn win_row(r: &WinRow) -> Vec<String> {
    let first = r.speedups.first().map_or("–".into(), speedup);
    let last = r.speedups.last().map_or("–".into(), speedup);
    vec![
        r.machine.clone(),
        r.threads.clone(),
        r.metric.label().into(),
        r.pair.clone(),
        first,
        last,
        crossing(r.crossover.at),
        r.crossover
            .confirmed_from
            .map_or("not confirmed".into(), thousands),
        r.verdict(),
    ]
}

/// "Where RWKV wins, on which hardware": a row per machine, time metric and pair.
pub fn wins(machines: &Machines) -> Table {
    Table {
        title: "Where RWKV wins, on which hardware".into(),
        note: "Speed-up = transformer time / RWKV time (above 1: RWKV faster), with its 95 % \
               bootstrap interval, at the shortest and the longest length each machine \
               measured; where the medians cross 1, and the length from which every longer \
               length's interval lies above 1. A side is faster from the shortest length at \
               which every interval up to the longest lies on its side of 1; while the \
               longest length's interval contains 1 the verdict is inconclusive"
            .into(),
        header: [
            "machine",
            "threads",
            "metric",
            "candidate vs baseline",
            "speed-up at the shortest length",
            "at the longest",
            "medians cross",
            "intervals confirm from",
            "verdict",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows(machines).iter().map(win_row).collect(),
    }
}

/// Distinct values in first-seen order.
fn distinct(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn machine_row(m: &MachineRuns) -> Vec<String> {
    // The latest capture describes the machine; captures of one id differ only in what
    // the id leaves out (host name, kernel, roofline).
    let latest = m.runs.last().map(|r| &r.results.machine);
    let cpu = latest.map_or("–".into(), |c| format!("{} ({})", c.cpu_model, c.arch));
    let cores = latest.map_or("–".into(), |c| {
        let physical = c
            .physical_cores
            .map(|p| format!(", {p} physical"))
            .unwrap_or_default();
        format!("{} / {}{physical}", c.cores(), c.logical_cores)
    });
    let memory = latest.map_or("–".into(), |c| match c.memory_limit_bytes {
        Some(limit) if limit < c.ram_bytes => {
            format!("{} (limit {})", gib(c.ram_bytes), gib(limit))
        }
        _ => gib(c.ram_bytes),
    });
    let roofline = distinct(m.runs.iter().filter_map(|r| {
        let roof = r.results.machine.roofline.as_ref()?;
        Some(format!(
            "{:.0} GFLOP/s, {:.1} GB/s ({}, {})",
            roof.matmul_gflops,
            roof.read_gb_s,
            super::group::threads_text(&[Some(roof.threads)]),
            roof.dtype
        ))
    }));
    let tool = distinct(m.runs.iter().map(|r| {
        let t = &r.results.tool;
        let commit: String = t.git_commit.chars().take(12).collect();
        format!("{} {} ({commit})", t.name, t.version)
    }));
    let files = m.runs.iter().map(|r| r.file.clone()).collect::<Vec<_>>();
    vec![
        m.label.clone(),
        cpu,
        cores,
        memory,
        m.id.cpu_features.join(", "),
        if roofline.is_empty() {
            "not calibrated".into()
        } else {
            roofline.join("; ")
        },
        threads_text(&m.threads),
        tool.join("; "),
        files.join(", "),
    ]
}

/// What each machine is, and which files its runs came from.
pub fn machines(machines: &Machines) -> Table {
    Table {
        title: "Machines".into(),
        note: "Told apart by the recorded capture (CPU model, usable cores, memory, CPU \
               features, architecture), not by file name or host name; the threads are the \
               runs' setting. The roofline is candle's f32 matmul and the memory read \
               bandwidth, calibrated at the start of a run"
            .into(),
        header: [
            "machine",
            "CPU",
            "cores (usable / logical)",
            "memory",
            "CPU features",
            "roofline",
            "threads",
            "tool",
            "files",
        ]
        .map(String::from)
        .to_vec(),
        rows: machines.machines.iter().map(machine_row).collect(),
    }
}

/// At most `n` items, then how many more.
fn some_of(items: &[String], n: usize) -> String {
    let mut text = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        text.push_str(&format!(" and {} more", items.len() - n));
    }
    text
}

/// What the reader must know to read the tables right: threads that differ within a
/// machine, cells measured twice, machines with nothing to compare, random weights.
pub fn notes(machines: &Machines) -> Vec<String> {
    let mut notes = Vec::new();
    for m in &machines.machines {
        if m.threads.iter().flatten().count() > 1 {
            let per_file: Vec<String> = m
                .runs
                .iter()
                .map(|r| {
                    let t = r.results.settings.threads_used;
                    format!("{}: {}", r.file, t.map_or("?".into(), |t| t.to_string()))
                })
                .collect();
            notes.push(format!(
                "{}: its runs used different threads ({}). Threads are a setting, not a \
                 machine, so the runs are combined as one machine; a speed-up whose two \
                 sides come from runs with different threads compares the settings as well \
                 as the architectures",
                m.id,
                per_file.join(", ")
            ));
        }
        for r in &m.replaced {
            notes.push(format!(
                "{}: {} cell{} measured both in {} (finished {}) and in {} (finished {}); \
                 the later run's records are kept: {}",
                m.label,
                r.cells.len(),
                if r.cells.len() == 1 { "" } else { "s" },
                r.dropped.0,
                r.dropped.1,
                r.kept.0,
                r.kept.1,
                some_of(&r.cells, 6)
            ));
        }
        if m.analysis.speedups.is_empty() {
            notes.push(format!(
                "{}: no RWKV and transformer model were measured at a common length in its \
                 runs, so it has no row in the table and no line in the charts",
                m.label
            ));
        }
    }
    let random = machines
        .machines
        .iter()
        .flat_map(|m| &m.models)
        .any(|m| m.weights.is_random());
    if random {
        notes
            .push("Random-weight presets: speed and memory are meaningful, accuracy is not".into());
    }
    notes
}
