//! Implementations of one architecture side by side: ours against a peer (another
//! engine running the same architecture at the same shapes: candle-transformers,
//! the official `rwkv` package, Hugging Face transformers, llama.cpp), as the ratio of
//! their times measured in the same run. The architecture comparison is only as fair
//! as each side's implementation; this is the table that says how good each side is.

use results::stats::{ratio_interval, CONFIDENCE};
use results::{Metric, ModelInfo, Results};

use super::{lengths, Table};
use crate::format;

/// Whether two models have one shape: layers, width, vocabulary, and parameters within
/// 1 % (implementations count a few tensors differently). Speed depends on the shape,
/// not on the weight values, so a peer's own file of our preset's shape (llama.cpp's
/// GGUF) compares as well as the same random weights.
fn same_shape(a: &ModelInfo, b: &ModelInfo) -> bool {
    a.arch == b.arch
        && (a.layers, a.width, a.vocab) == (b.layers, b.width, b.vocab)
        && (a.params as f64 - b.params as f64).abs() <= 0.01 * a.params.max(b.params) as f64
}

/// The model a peer is compared with: the first model of the run with its shape and
/// weight dtype.
fn reference<'a>(results: &'a Results, peer: &ModelInfo) -> Option<&'a ModelInfo> {
    results
        .models
        .iter()
        .find(|m| same_shape(m, peer) && m.dtype == peer.dtype)
        .filter(|m| m.spec != peer.spec)
}

/// Two decimals, or two significant digits below 0.1 (a peer 30× slower is 0.033×,
/// not 0.03×).
fn ratio_text(r: f64) -> String {
    if r.abs() >= 0.1 || r == 0.0 {
        format!("{r:.2}")
    } else {
        let digits = (1 - r.abs().log10().floor() as i32).max(0) as usize;
        format!("{r:.digits$}")
    }
}

/// `reference / peer` time per length, prefill and decode, with 95 % intervals:
/// below 1, the reference (listed first in the suite: ours, by convention) is faster.
pub fn implementations(results: &Results) -> Option<Table> {
    let lens = lengths(results);
    let mut rows = Vec::new();
    for peer in &results.models {
        let Some(ours) = reference(results, peer) else {
            continue;
        };
        for (metric, what) in [
            (Metric::PrefillTime, "prefill time"),
            (Metric::DecodeLatency, "decode ms/token"),
            (Metric::TrainStepTime, "training step"),
        ] {
            let (a, b) = (
                results.series(&ours.spec, metric),
                results.series(&peer.spec, metric),
            );
            let cells: Vec<String> = lens
                .iter()
                .map(|&l| {
                    let (Some(x), Some(y)) = (
                        a.iter().find(|r| r.seq_len == l),
                        b.iter().find(|r| r.seq_len == l),
                    ) else {
                        return "–".into();
                    };
                    let (ratio, ci) =
                        ratio_interval(&x.clusters(), &y.clusters(), CONFIDENCE, l as u64);
                    format!(
                        "{}× [{}, {}]",
                        ratio_text(ratio),
                        ratio_text(ci.lo),
                        ratio_text(ci.hi)
                    )
                })
                .collect();
            if cells.iter().all(|c| c == "–") {
                continue;
            }
            let mut row = vec![
                format!(
                    "{} / {}",
                    ours.implementation_label(),
                    peer.implementation_label()
                ),
                ours.arch.to_string(),
                what.to_string(),
            ];
            row.extend(cells);
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return None;
    }
    let mut header: Vec<String> = ["ours / peer", "architecture", "measure"]
        .map(String::from)
        .to_vec();
    header.extend(lens.iter().map(|&l| format::length(l)));
    Some(Table {
        title: "Implementations of one architecture".into(),
        note: "Time of the first model of a shape in the run (layers, width, vocabulary, \
               parameters within 1 %, weight dtype) over another implementation of that \
               shape, median ratio with its 95 % bootstrap interval: below 1, the first is \
               faster. Each implementation is described in the models table"
            .into(),
        header,
        rows,
    })
}
