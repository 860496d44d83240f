//! Speed-up vs length with one line per machine, prefill and decode apart: the
//! single-run speed-up chart ([`crate::chart::speedup`]) with machines for series.
//! Each point carries its 95 % interval as an error bar, and a machine's crossover is
//! marked only where its intervals confirm it, as there.

use results::analysis::CrossoverAt;
use results::Metric;

use super::wins::{interval, rows, WinRow};
use results::fit::thousands;

use super::Machines;
use crate::chart::{Chart, Marker, PlotData, Point, Series, XAxis, YAxis};

/// `(metric, file stem, what the x axis is)` of each chart.
const CHARTS: [(Metric, &str, &str); 2] = [
    (
        Metric::PrefillTime,
        "machines_prefill_speedup",
        "prompt length (tokens)",
    ),
    (
        Metric::DecodeLatency,
        "machines_decode_speedup",
        "context depth (tokens)",
    ),
];

/// Where a row's crossover is marked, if its intervals confirm one: at the medians'
/// crossing when every interval from the next measured length on lies above 1, else at
/// the length from which they do (also when the medians favour RWKV throughout but the
/// intervals only from a later length).
fn marker(row: &WinRow, name: &str) -> Option<Marker> {
    let from = row.crossover.confirmed_from?;
    match row.crossover.at {
        CrossoverAt::Crosses { length, between } if from <= between.1 => Some(Marker {
            x: length,
            label: format!(
                "{name}: crossover ≈ {} tokens",
                thousands(length.round() as usize)
            ),
        }),
        // Cheaper by the medians throughout, but by the intervals only from a later
        // length: that length is the finding.
        CrossoverAt::CheaperThroughout { from: first } if first == from => None,
        CrossoverAt::Crosses { .. } | CrossoverAt::CheaperThroughout { .. } => Some(Marker {
            x: from as f64,
            label: format!(
                "{name}: RWKV faster from {} tokens (95 % intervals)",
                thousands(from)
            ),
        }),
        CrossoverAt::Never { .. } => None,
    }
}

/// The speed-up charts the machines support (a metric no machine compared has none).
pub fn charts(machines: &Machines) -> Vec<Chart> {
    let rows = rows(machines);
    CHARTS
        .into_iter()
        .filter_map(|(metric, name, x_label)| {
            let of_metric: Vec<&WinRow> = rows.iter().filter(|r| r.metric == metric).collect();
            let mut series = Vec::new();
            let mut markers = Vec::new();
            for r in &of_metric {
                // A machine that compared several pairs names the pair in its legend.
                let pairs = of_metric.iter().filter(|o| o.machine == r.machine).count();
                let label = if pairs > 1 {
                    format!("{} — {}", r.machine, r.pair)
                } else {
                    r.machine.clone()
                };
                markers.extend(marker(r, &label));
                series.push(Series {
                    label,
                    points: r
                        .speedups
                        .iter()
                        .map(|s| {
                            let ci = interval(s);
                            Point {
                                x: s.seq_len as f64,
                                y: s.ratio,
                                lo: ci.lo,
                                hi: ci.hi,
                            }
                        })
                        .collect(),
                });
            }
            let what = match metric {
                Metric::PrefillTime => "prefill",
                _ => "decode",
            };
            (!series.is_empty()).then(|| Chart {
                name,
                data: PlotData {
                    title: format!(
                        "RWKV {what} speed-up vs length by machine (above 1: RWKV faster)"
                    ),
                    x_axis: XAxis::Lengths,
                    x_label: x_label.into(),
                    y_label: "transformer time / RWKV time".into(),
                    series,
                    reference_y: Some((1.0, "equal speed".into())),
                    markers,
                    y_axis: YAxis::Log,
                },
            })
        })
        .collect()
}
