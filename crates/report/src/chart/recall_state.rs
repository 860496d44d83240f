//! Recall vs state size, Zoology's figure: x = the recurrent state or KV cache a model
//! holds after the context, y = its MQAR accuracy there. A transformer's cache grows
//! with the context, so its points move right with length; a recurrent model's state
//! does not, so its points stack: the chart shows what each byte of memory buys. One
//! line per model, pooled over key-value counts when the series would crowd the
//! legend (the accuracy chart has them one by one).

use results::stats::{wilson_interval, CONFIDENCE};
use results::{Metric, Record, Results};

use super::{Chart, PlotData, Point, Series, XAxis, YAxis};

const TASK: &str = "mqar";

fn is_mqar(r: &Record) -> bool {
    r.task.task.as_deref() == Some(TASK)
}

/// Legend rows the chart keeps before pooling key-value counts.
const MAX_SERIES: usize = 6;

pub fn chart(results: &Results) -> Option<Chart> {
    let counts = |m: &results::ModelSpec| {
        let mut pairs: Vec<Option<usize>> = results
            .records
            .iter()
            .filter(|r| r.model == *m && r.metric == Metric::Accuracy && is_mqar(r))
            .map(|r| r.task.pairs)
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    };
    let total: usize = results.models.iter().map(|m| counts(&m.spec).len()).sum();
    let pool = total > MAX_SERIES;
    let mut series: Vec<Series> = Vec::new();
    for m in &results.models {
        // `None` in `groups` stands for "every count" when pooling.
        let groups: Vec<Option<Option<usize>>> = if pool {
            vec![None]
        } else {
            counts(&m.spec).into_iter().map(Some).collect()
        };
        for k in groups {
            let mut points: Vec<Point> = Vec::new();
            let accuracy = results.records.iter().filter(|r| {
                r.model == m.spec
                    && r.metric == Metric::Accuracy
                    && is_mqar(r)
                    && k.is_none_or(|k| r.task.pairs == k)
            });
            // Depths and repeated cells of one length pool into one proportion.
            let mut cells: Vec<(usize, usize, usize)> = Vec::new();
            for r in accuracy {
                let hits = r.samples.iter().filter(|&&x| x > 0.5).count();
                match cells.iter_mut().find(|c| c.0 == r.seq_len) {
                    Some(c) => (c.1, c.2) = (c.1 + hits, c.2 + r.samples.len()),
                    None => cells.push((r.seq_len, hits, r.samples.len())),
                }
            }
            for (len, hits, n) in cells {
                let state = results.records.iter().find(|r| {
                    r.model == m.spec
                        && r.metric == Metric::StateBytes
                        && is_mqar(r)
                        && r.seq_len == len
                        && !r.samples.is_empty()
                });
                let (Some(state), true) = (state, n > 0) else {
                    continue;
                };
                let w = wilson_interval(hits, n, CONFIDENCE);
                points.push(Point {
                    x: state.summary.median / 1024.0,
                    y: hits as f64 / n as f64,
                    lo: w.lo,
                    hi: w.hi,
                });
            }
            if points.is_empty() {
                continue;
            }
            points.sort_by(|a, b| a.x.total_cmp(&b.x).then(b.y.total_cmp(&a.y)));
            let label = match k {
                Some(Some(k)) => format!("{} ({k} pairs)", m.spec),
                Some(None) => m.spec.to_string(),
                None => format!("{} (all key-value counts)", m.spec),
            };
            series.push(Series { label, points });
        }
    }
    if series.is_empty() {
        return None;
    }
    let random = results.models.iter().any(|m| m.weights.is_random());
    Some(Chart {
        name: "recall_state",
        data: PlotData {
            title: if random {
                "MQAR accuracy vs state size (random weights: chance level)".into()
            } else {
                "MQAR accuracy vs state size".into()
            },
            x_axis: XAxis::Log,
            x_label: "recurrent state or KV cache after the context (KiB)".into(),
            y_label: "MQAR accuracy (95 % Wilson interval)".into(),
            series,
            reference_y: None,
            markers: Vec::new(),
            y_axis: YAxis::Linear { lo: 0.0, hi: 1.0 },
        },
    })
}
