//! Recurrent state or KV cache bytes vs prompt length.

use results::{Metric, Results};

use super::{metric_series, Chart, PlotData, XAxis};

pub fn chart(results: &Results) -> Option<Chart> {
    let mib = 1.0 / (1u64 << 20) as f64;
    let series = metric_series(results, Metric::StateBytes, mib, true);
    (!series.is_empty()).then(|| Chart {
        name: "state_bytes",
        data: PlotData {
            y_axis: super::YAxis::Log,
            x_axis: XAxis::Lengths,
            title: "State / KV cache size vs prompt length".into(),
            x_label: "prompt length (tokens)".into(),
            y_label: "state or KV cache (MB)".into(),
            series,
            reference_y: None,
            markers: Vec::new(),
        },
    })
}
