//! The trend of a history file: one chart per metric, the figure of every cell (model,
//! length, and task and depth for accuracy) against the run number.

use results::history::{Entry, Point as HistoryPoint};
use results::Metric;

use super::{Chart, PlotData, Point, Series, XAxis, YAxis};
use crate::format;

/// (metric, chart name, y label, scale, y axis)
const METRICS: [(Metric, &str, &str, f64, YAxis); 4] = [
    (
        Metric::PrefillTime,
        "prefill_trend",
        "prefill time (ms)",
        1.0,
        YAxis::Log,
    ),
    (
        Metric::DecodeLatency,
        "decode_trend",
        "ms per token",
        1.0,
        YAxis::Log,
    ),
    (
        Metric::PeakRss,
        "peak_rss_trend",
        "peak RSS (MB)",
        1.0 / (1u64 << 20) as f64,
        YAxis::Log,
    ),
    (
        Metric::Accuracy,
        "accuracy_trend",
        "accuracy",
        1.0,
        YAxis::Linear { lo: 0.0, hi: 1.0 },
    ),
];

/// A series label: the model, the task and depth where there are, the length.
fn label(p: &HistoryPoint) -> String {
    let mut l = p.model.to_string();
    if let Some(t) = &p.task {
        l.push(' ');
        l.push_str(t);
    }
    l.push_str(&format!(" @ {}", format::length(p.seq_len)));
    if let Some(d) = p.depth {
        l.push_str(&format!(" depth {d}"));
    }
    l
}

/// One chart per metric present in the history.
pub fn charts(history: &[Entry]) -> Vec<Chart> {
    METRICS
        .iter()
        .filter_map(|&(metric, name, y_label, scale, y_axis)| {
            // Every cell of this metric, in order of first appearance.
            let mut cells: Vec<&HistoryPoint> = Vec::new();
            for p in history.iter().flat_map(|e| e.points.iter()) {
                if p.metric == metric && !cells.iter().any(|c| c.key() == p.key()) {
                    cells.push(p);
                }
            }
            let series: Vec<Series> = cells
                .into_iter()
                .map(|cell| Series {
                    label: label(cell),
                    points: history
                        .iter()
                        .enumerate()
                        .filter_map(|(i, e)| {
                            let p = e.points.iter().find(|p| p.key() == cell.key())?;
                            let y = p.value() * scale;
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
                    y_axis,
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
