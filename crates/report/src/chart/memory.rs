//! Peak RSS of each isolated cell vs prompt length.

use results::{Metric, Results};

use super::{metric_series, Chart, PlotData, XAxis};

pub fn chart(results: &Results) -> Option<Chart> {
    let mib = 1.0 / (1u64 << 20) as f64;
    let series = metric_series(results, Metric::PeakRss, mib, false);
    (!series.is_empty()).then(|| Chart {
        name: "peak_rss",
        data: PlotData {
            y_axis: super::YAxis::Log,
            x_axis: XAxis::Lengths,
            title: "Peak memory vs prompt length".into(),
            x_label: "prompt length (tokens)".into(),
            y_label: "peak RSS of the cell process (MB)".into(),
            series,
            reference_y: None,
            markers: Vec::new(),
        },
    })
}
