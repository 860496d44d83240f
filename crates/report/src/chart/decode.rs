//! Decode ms/token vs context depth: flat for a fixed-size state, rising with a KV cache.

use results::{Metric, Results};

use super::{metric_series, Chart, PlotData, XAxis};

pub fn chart(results: &Results) -> Option<Chart> {
    let series = metric_series(results, Metric::DecodeLatency, 1.0, true);
    (!series.is_empty()).then(|| Chart {
        name: "decode_latency",
        data: PlotData {
            y_axis: super::YAxis::Log,
            x_axis: XAxis::Lengths,
            title: "Decode latency vs context depth".into(),
            x_label: "context depth (tokens)".into(),
            y_label: "ms per token".into(),
            series,
            reference_y: None,
            markers: Vec::new(),
        },
    })
}
