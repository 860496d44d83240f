//! Accuracy vs length: one series per model and task (and MQAR key-value count), pooled
//! over depths, with the 95 % Wilson interval as error bars, on a linear 0–1 axis.

use results::stats::{wilson_interval, CONFIDENCE};
use results::{Metric, ModelSpec, Results};

use super::{Chart, PlotData, Point, Series, XAxis, YAxis};

/// `(length, hits, trials)` of one model and task.
type Cells = Vec<(usize, usize, usize)>;

/// `(model, task, cells)`, lengths ascending.
fn pooled(results: &Results) -> Vec<(ModelSpec, String, Cells)> {
    let mut out: Vec<(ModelSpec, String, Cells)> = Vec::new();
    for r in results
        .records
        .iter()
        .filter(|r| r.metric == Metric::Accuracy)
    {
        let name = r.task.task.clone().unwrap_or_default();
        let task = match r.task.pairs {
            Some(k) => format!("{name} ({k} pairs)"),
            None => name,
        };
        let i = match out.iter().position(|(m, t, _)| *m == r.model && *t == task) {
            Some(i) => i,
            None => {
                out.push((r.model.clone(), task, Vec::new()));
                out.len() - 1
            }
        };
        let hits = r.samples.iter().filter(|&&x| x > 0.5).count();
        let cells = &mut out[i].2;
        match cells.iter_mut().find(|c| c.0 == r.seq_len) {
            Some(c) => {
                c.1 += hits;
                c.2 += r.samples.len();
            }
            None => cells.push((r.seq_len, hits, r.samples.len())),
        }
    }
    for (_, _, cells) in &mut out {
        cells.sort_unstable();
    }
    out
}

pub fn chart(results: &Results) -> Option<Chart> {
    let series: Vec<Series> = pooled(results)
        .into_iter()
        .map(|(model, task, cells)| Series {
            label: format!("{model} {task}"),
            points: cells
                .into_iter()
                .map(|(len, k, n)| {
                    let w = wilson_interval(k, n, CONFIDENCE);
                    Point {
                        x: len as f64,
                        y: k as f64 / n.max(1) as f64,
                        lo: w.lo,
                        hi: w.hi,
                    }
                })
                .collect(),
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    let random = results.models.iter().any(|m| m.weights.is_random());
    Some(Chart {
        name: "accuracy",
        data: PlotData {
            title: if random {
                "Accuracy vs length (random weights: chance level, not a finding)".into()
            } else {
                "Accuracy vs length".into()
            },
            x_axis: XAxis::Lengths,
            x_label: "context length (tokens)".into(),
            y_label: "exact-match accuracy (95 % Wilson interval)".into(),
            series,
            reference_y: None,
            markers: Vec::new(),
            y_axis: YAxis::Linear { lo: 0.0, hi: 1.0 },
        },
    })
}
