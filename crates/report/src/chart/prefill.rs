//! Prefill time vs prompt length, log-log, with each model's fitted slope.

use results::{Metric, Results};

use super::{metric_series, Chart, PlotData, XAxis};

pub fn chart(results: &Results) -> Option<Chart> {
    let series = metric_series(results, Metric::PrefillTime, 1.0, true);
    (!series.is_empty()).then(|| Chart {
        name: "prefill_time",
        data: PlotData {
            y_axis: super::YAxis::Log,
            x_axis: XAxis::Lengths,
            title: "Prefill time vs prompt length".into(),
            x_label: "prompt length (tokens)".into(),
            y_label: "time to first token (ms)".into(),
            series,
            reference_y: None,
            markers: Vec::new(),
        },
    })
}
