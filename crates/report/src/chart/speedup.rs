//! Speed-up (transformer time / RWKV time) vs length, with the crossover marked.

use results::analysis::CrossoverAt;
use results::{Metric, ModelSpec, Results};

use super::{Chart, Marker, PlotData, Point, Series, XAxis};

const METRICS: [(Metric, &str); 2] = [
    (Metric::PrefillTime, "prefill"),
    (Metric::DecodeLatency, "decode"),
];

pub fn chart(results: &Results) -> Option<Chart> {
    let a = &results.analysis;
    let mut series = Vec::new();
    let mut markers = Vec::new();
    for (metric, name) in METRICS {
        let mut pairs: Vec<(&ModelSpec, &ModelSpec)> = a
            .speedups
            .iter()
            .filter(|s| s.metric == metric)
            .map(|s| (&s.candidate, &s.baseline))
            .collect();
        pairs.dedup();
        for (r, t) in pairs {
            let points: Vec<Point> = a
                .speedups
                .iter()
                .filter(|s| s.metric == metric && s.candidate == *r && s.baseline == *t)
                .map(|s| Point {
                    x: s.seq_len as f64,
                    y: s.ratio,
                    lo: s.ratio,
                    hi: s.ratio,
                })
                .collect();
            series.push(Series {
                label: format!("{name}: {t} / {r}"),
                points,
            });
            let crossing = a
                .crossovers
                .iter()
                .find(|c| c.metric == metric && c.candidate == *r && c.baseline == *t);
            if let Some(CrossoverAt::Crosses { length, .. }) = crossing.map(|c| c.at) {
                markers.push(Marker {
                    x: length,
                    label: format!("{name} crossover ≈ {length:.0} tokens"),
                });
            }
        }
    }
    (!series.is_empty()).then(|| Chart {
        name: "speedup",
        data: PlotData {
            y_axis: super::YAxis::Log,
            x_axis: XAxis::Lengths,
            title: "RWKV speed-up vs length (above 1: RWKV faster)".into(),
            x_label: "prompt length / context depth (tokens)".into(),
            y_label: "transformer time / RWKV time".into(),
            series,
            reference_y: Some((1.0, "equal speed".into())),
            markers,
        },
    })
}
