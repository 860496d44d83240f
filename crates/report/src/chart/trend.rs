//! The trend of a history file: one chart per metric, the median of every
//! (model, length) cell against the run number.

use harness::history::Entry;
use harness::results::Metric;

use super::{Chart, PlotData, Point, Series, XAxis};
use crate::format;

const METRICS: [(Metric, &str, &str, f64); 3] = [
    (
        Metric::PrefillTime,
        "prefill_trend",
        "prefill time (ms)",
        1.0,
    ),
    (Metric::DecodeLatency, "decode_trend", "ms per token", 1.0),
    (
        Metric::PeakRss,
        "peak_rss_trend",
        "peak RSS (MB)",
        1.0 / (1u64 << 20) as f64,
    ),
];

/// One chart per metric present in the history.
pub fn charts(history: &[Entry]) -> Vec<Chart> {
    METRICS
        .iter()
        .filter_map(|&(metric, name, y_label, scale)| {
            let mut cells: Vec<(&str, usize)> = history
                .iter()
                .flat_map(|e| e.points.iter())
                .filter(|p| p.metric == metric)
                .map(|p| (p.model.as_str(), p.seq_len))
                .collect();
            cells.sort_unstable();
            cells.dedup();
            let series: Vec<Series> = cells
                .into_iter()
                .map(|(model, seq_len)| Series {
                    label: format!("{model} @ {}", format::length(seq_len)),
                    points: history
                        .iter()
                        .enumerate()
                        .filter_map(|(i, e)| {
                            let p = e.points.iter().find(|p| {
                                p.metric == metric && p.model == model && p.seq_len == seq_len
                            })?;
                            let y = p.median * scale;
                            Some(Point {
                                x: (i + 1) as f64,
                                y,
                                lo: y,
                                hi: y,
                            })
                        })
                        .collect(),
                })
                .collect();
            (!series.is_empty()).then(|| Chart {
                name,
                data: PlotData {
                    y_axis: super::YAxis::Log,
                    x_axis: XAxis::Index,
                    title: format!("{} over runs", metric.label()),
                    x_label: "run".into(),
                    y_label: y_label.into(),
                    series,
                    reference_y: None,
                    markers: Vec::new(),
                },
            })
        })
        .collect()
}
