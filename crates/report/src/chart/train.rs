//! Training throughput vs sequence length at fixed tokens per step: a linear-time
//! model stays level; attention's quadratic term bends a transformer's down.

use results::{Metric, Results};

use super::{metric_series, Chart, PlotData, XAxis};

pub fn chart(results: &Results) -> Option<Chart> {
    let series = metric_series(results, Metric::TrainThroughput, 1.0, false);
    let tokens = results.suite.config.train.tokens_per_step;
    (!series.is_empty()).then(|| Chart {
        name: "train_throughput",
        data: PlotData {
            y_axis: super::YAxis::Log,
            x_axis: XAxis::Lengths,
            title: format!("Training throughput vs sequence length ({tokens} tokens per step)"),
            x_label: "sequence length (tokens)".into(),
            y_label: "training tokens/s (forward + backward + AdamW)".into(),
            series,
            reference_y: None,
            markers: Vec::new(),
        },
    })
}
