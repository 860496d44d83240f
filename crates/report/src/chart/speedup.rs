//! Speed-up (transformer time / RWKV time) vs length with 95 % intervals, and the
//! crossover marked where the intervals confirm it.

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
                    lo: s.ci.map_or(s.ratio, |ci| ci.lo),
                    hi: s.ci.map_or(s.ratio, |ci| ci.hi),
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
            // Marked only where every later ratio's interval stays above 1: at the
            // medians' crossing when the intervals confirm it from the next length,
            // else at the length they confirm it from.
            let Some(c) = crossing else { continue };
            match (c.at, c.confirmed_from) {
                (CrossoverAt::Crosses { length, between }, Some(from)) if from <= between.1 => {
                    markers.push(Marker {
                        x: length,
                        label: format!("{name} crossover ≈ {length:.0} tokens"),
                    })
                }
                // Cheaper by the medians throughout, but by the intervals only from a
                // later length: that length is the finding.
                (CrossoverAt::CheaperThroughout { from: first }, Some(from)) if first == from => {}
                (
                    CrossoverAt::Crosses { .. } | CrossoverAt::CheaperThroughout { .. },
                    Some(from),
                ) => markers.push(Marker {
                    x: from as f64,
                    label: format!("{name}: cheaper from {from} tokens (95 % intervals)"),
                }),
                _ => {}
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
