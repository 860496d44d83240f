//! The weight-dtype table: one model run in several storage types, side by side — the
//! bytes its weights take, its decode and prefill speed (and their ratio to the same
//! model in f32), its peak memory, and how far its logits moved from f32's
//! (`measure.dtype_cost`). Every figure is one of the run's records.

use results::dtype_cost::DtypeCost;
use results::stats::{ratio_interval, CONFIDENCE};
use results::{Metric, ModelInfo, ModelSpec, Record, Results};

use super::{measured, Table};
use crate::format;

/// Storage types from widest to narrowest: the order of a group's rows.
const ORDER: [&str; 5] = ["f32", "bf16", "f16", "q8_0", "q4_k"];

fn rank(dtype: &str) -> usize {
    ORDER
        .iter()
        .position(|d| *d == dtype)
        .unwrap_or(ORDER.len())
}

/// A spec's options other than `dtype=`: a different `kv_dtype=` is another model for
/// this table, since it changes the speed and memory the table lays beside the dtype.
fn other_options(spec: &ModelSpec) -> Vec<&(String, String)> {
    spec.options.iter().filter(|(k, _)| k != "dtype").collect()
}

/// Whether two models differ only in how their weights are stored: one implementation,
/// one weights source (preset and seed, or checkpoint path) and the same other options.
fn same_model(a: &ModelInfo, b: &ModelInfo) -> bool {
    a.implementation == b.implementation
        && a.weights == b.weights
        && other_options(&a.spec) == other_options(&b.spec)
}

/// The run's models grouped by [`same_model`], each group ordered f32 first, then
/// narrower; only groups holding at least two dtypes.
pub fn dtype_groups(results: &Results) -> Vec<Vec<&ModelInfo>> {
    let mut groups: Vec<Vec<&ModelInfo>> = Vec::new();
    for m in &results.models {
        match groups.iter_mut().find(|g| same_model(g[0], m)) {
            Some(g) => g.push(m),
            None => groups.push(vec![m]),
        }
    }
    groups.retain(|g| g.iter().any(|m| m.dtype != g[0].dtype));
    for g in &mut groups {
        g.sort_by_key(|m| rank(&m.dtype));
    }
    groups
}

/// The speed record of `model` for `metric` at `seq_len`.
fn record<'a>(
    results: &'a Results,
    model: &ModelSpec,
    metric: Metric,
    seq_len: usize,
) -> Option<&'a Record> {
    results.records.iter().find(|r| {
        r.model == *model && r.metric == metric && r.seq_len == seq_len && r.task.task.is_none()
    })
}

/// The lengths of `metric`'s speed records of `models`.
fn lengths(results: &Results, models: &[&ModelInfo], metric: Metric) -> Vec<usize> {
    let mut l: Vec<usize> = results
        .records
        .iter()
        .filter(|r| r.metric == metric && r.task.task.is_none())
        .filter(|r| models.iter().any(|m| m.spec == r.model))
        .map(|r| r.seq_len)
        .collect();
    l.sort_unstable();
    l.dedup();
    l
}

/// `row / reference` of two records' medians with its 95 % bootstrap interval (processes
/// drawn first), as the claims write a ratio.
fn ratio(row: &Record, reference: &Record, seed: u64) -> String {
    if reference.summary.median <= 0.0 {
        return "–".into();
    }
    let (r, ci) = ratio_interval(&row.clusters(), &reference.clusters(), CONFIDENCE, seed);
    format!("{r:.2}× [{:.2}, {:.2}]", ci.lo, ci.hi)
}

/// One speed column: what it shows, at which length.
struct Column {
    metric: Metric,
    seq_len: usize,
    /// Whether a ratio to f32 follows it.
    ratio: bool,
}

/// The accuracy cells of a row: min and mean cosine, top-1 agreement, perplexity change.
fn accuracy_cells(cost: Option<&DtypeCost>) -> [String; 4] {
    match cost {
        Some(DtypeCost {
            agreement: Some(a), ..
        }) => [
            format!("{:.6}", a.min_cosine),
            format!("{:.6}", a.mean_cosine),
            format::value(results::Unit::Fraction, a.top1),
            format!("{:+.2} %", 100.0 * a.perplexity_change()),
        ],
        Some(_) => ["failed", "–", "–", "–"].map(String::from),
        None => ["–", "–", "–", "–"].map(String::from),
    }
}

/// One table of every group of [`dtype_groups`]: a row per model, f32 first.
pub fn dtypes(results: &Results) -> Option<Table> {
    let groups = dtype_groups(results);
    if groups.is_empty() {
        return None;
    }
    let all: Vec<&ModelInfo> = groups.iter().flatten().copied().collect();
    // Decode is cheapest to read where the weights dominate (the shortest depth),
    // prefill where its arithmetic does (the longest prompt); peak memory beside decode.
    let columns: Vec<Column> = [
        (Metric::DecodeLatency, false, true),
        (Metric::PrefillThroughput, true, true),
        (Metric::PeakRss, false, false),
    ]
    .into_iter()
    .filter_map(|(metric, longest, ratio)| {
        let l = lengths(results, &all, metric);
        let seq_len = if longest { l.last() } else { l.first() };
        seq_len.map(|&seq_len| Column {
            metric,
            seq_len,
            ratio,
        })
    })
    .collect();
    let mut header: Vec<String> = ["model", "dtype", "weights"].map(String::from).to_vec();
    for c in &columns {
        let what = match c.metric {
            Metric::DecodeLatency => "decode ms/token",
            Metric::PrefillThroughput => "prefill tokens/s",
            _ => "peak RSS",
        };
        header.push(format!("{what} @ {}", format::length(c.seq_len)));
        if c.ratio {
            header.push("× f32".into());
        }
    }
    header.extend(["min cosine", "mean cosine", "top-1", "perplexity Δ"].map(String::from));
    let cost_of = |spec: &ModelSpec| results.dtype_costs.iter().find(|c| c.model == *spec);
    let mut rows = Vec::new();
    for group in &groups {
        let f32_model = group.iter().find(|m| m.dtype == "f32");
        for m in group {
            let mut row = vec![
                m.spec.to_string(),
                m.dtype.clone(),
                m.weight_bytes
                    .map_or("–".into(), |b| format::bytes(b as f64)),
            ];
            for (ci, c) in columns.iter().enumerate() {
                let rec = record(results, &m.spec, c.metric, c.seq_len);
                row.push(rec.map_or("–".into(), measured));
                if !c.ratio {
                    continue;
                }
                let reference =
                    f32_model.and_then(|f| record(results, &f.spec, c.metric, c.seq_len));
                row.push(match (rec, reference) {
                    (Some(_), Some(_)) if m.dtype == "f32" => "1×".into(),
                    (Some(r), Some(f)) => ratio(r, f, c.seq_len as u64 ^ ((ci as u64) << 32)),
                    _ => "–".into(),
                });
            }
            let cost = cost_of(&m.spec).filter(|_| m.dtype != "f32");
            row.extend(accuracy_cells(cost));
            rows.push(row);
        }
    }
    let mut note = "One model (implementation, weights and options other than `dtype=`) in \
        each weight dtype the run measured. Speed as median (n, p10–p90); × f32: this \
        row's median over the f32 row's, with its 95 % bootstrap interval (decode below 1 \
        and prefill above 1 are faster)"
        .to_string();
    match results.dtype_costs.first() {
        Some(c) => note.push_str(&format!(
            ". Accuracy: the logits against the f32 build's on {} random tokens (seed {}): \
             the least and the mean per-position cosine, positions whose top token is \
             f32's, and exp(loss − f32 loss) − 1",
            c.tokens, c.seed
        )),
        None => {
            note.push_str(". Accuracy: not measured in this run (`[measure] dtype_cost = true`)")
        }
    }
    if all.iter().any(|m| m.weights.is_random()) {
        note.push_str(
            "; on random weights the perplexity change only says how far the outputs moved",
        );
    }
    for c in results.dtype_costs.iter() {
        if let Some(e) = &c.error {
            note.push_str(&format!(". The dtype cost of {} failed: {e}", c.model));
        }
    }
    Some(Table {
        title: "Weight dtypes: speed, memory and accuracy".into(),
        note,
        header,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use results::dtype_cost::Agreement;
    use results::{Arch, Weights};

    use super::*;

    fn info(spec: &str, dtype: &str, seed: u64) -> ModelInfo {
        let spec: ModelSpec = spec.parse().unwrap();
        ModelInfo {
            arch: if spec.implementation.starts_with("rwkv") {
                Arch::Rwkv
            } else {
                Arch::Transformer
            },
            implementation: spec.implementation.clone(),
            version: None,
            spec,
            description: String::new(),
            params: 1,
            layers: 1,
            width: 1,
            vocab: 1,
            dtype: dtype.into(),
            device: "cpu".into(),
            weights: Weights::Random {
                preset: "tiny".into(),
                seed,
            },
            max_seq_len: None,
            tokenizer: None,
            tied_embeddings: false,
            weight_bytes: Some(1 << 20),
        }
    }

    fn rec(m: &ModelInfo, metric: Metric, seq_len: usize, samples: &[f64]) -> Record {
        Record::from_samples(
            "t",
            m,
            metric,
            seq_len,
            samples.to_vec(),
            Default::default(),
        )
        .unwrap()
    }

    /// A run of `models` with decode and prefill at two lengths each; `speed(dtype)`
    /// scales a model's times.
    fn run(models: Vec<ModelInfo>, speed: impl Fn(&str) -> f64) -> Results {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/results/ci.json");
        let mut r = Results::load(&path).unwrap();
        r.records.clear();
        r.failures.clear();
        for m in &models {
            let k = speed(&m.dtype);
            for l in [128, 2048] {
                let ms: Vec<f64> = [10.0, 11.0, 12.0].iter().map(|x| x * k).collect();
                r.records.push(rec(m, Metric::DecodeLatency, l, &ms));
                let tps: Vec<f64> = ms.iter().map(|x| 1e5 / x).collect();
                r.records.push(rec(m, Metric::PrefillThroughput, l, &tps));
            }
        }
        r.models = models;
        r
    }

    #[test]
    fn groups_one_model_across_dtypes_and_not_across_seeds_or_kv_dtypes() {
        let r = run(
            vec![
                info("llama:preset=tiny,dtype=q8_0", "q8_0", 0),
                info("rwkv7:preset=tiny", "f32", 0),
                info("llama:preset=tiny", "f32", 0),
                info("llama:preset=tiny,dtype=f16", "f16", 1),
                info("llama:preset=tiny,kv_dtype=f16,dtype=bf16", "bf16", 0),
                info("rwkv7:preset=tiny,dtype=q4_k", "q4_k", 0),
                info("rwkv7:preset=tiny,dtype=bf16", "bf16", 0),
            ],
            |_| 1.0,
        );
        let groups: Vec<Vec<String>> = dtype_groups(&r)
            .iter()
            .map(|g| g.iter().map(|m| m.spec.to_string()).collect())
            .collect();
        assert_eq!(
            groups,
            vec![
                vec!["llama:preset=tiny", "llama:preset=tiny,dtype=q8_0"],
                vec![
                    "rwkv7:preset=tiny",
                    "rwkv7:preset=tiny,dtype=bf16",
                    "rwkv7:preset=tiny,dtype=q4_k"
                ],
            ]
        );
        // One model per dtype: no table.
        let single = run(vec![info("rwkv7:preset=tiny", "f32", 0)], |_| 1.0);
        assert!(dtypes(&single).is_none());
    }

    #[test]
    fn rows_carry_ratios_to_the_f32_row_and_the_dtype_cost() {
        let models = vec![
            info("rwkv7:preset=tiny", "f32", 0),
            info("rwkv7:preset=tiny,dtype=q8_0", "q8_0", 0),
            info("rwkv7:preset=tiny,dtype=bf16", "bf16", 0),
        ];
        // q8_0 decodes in half f32's time, bf16 in 0.8 of it.
        let mut r = run(models, |d| match d {
            "q8_0" => 0.5,
            "bf16" => 0.8,
            _ => 1.0,
        });
        r.dtype_costs.push(DtypeCost {
            model: "rwkv7:preset=tiny,dtype=q8_0".parse().unwrap(),
            reference: "rwkv7:preset=tiny,dtype=f32".parse().unwrap(),
            tokens: 64,
            seed: 3,
            agreement: Some(Agreement {
                dtype: "q8_0".into(),
                weight_bytes: Some(1 << 19),
                positions: 64,
                min_cosine: 0.9991,
                mean_cosine: 0.99975,
                top1: 0.984375,
                loss: 1.0 + 0.0123f64.ln_1p(),
                loss_f32: 1.0,
            }),
            error: None,
        });
        let t = dtypes(&r).unwrap();
        assert_eq!(t.title, "Weight dtypes: speed, memory and accuracy");
        assert_eq!(
            t.header,
            [
                "model",
                "dtype",
                "weights",
                "decode ms/token @ 128",
                "× f32",
                "prefill tokens/s @ 2k",
                "× f32",
                "min cosine",
                "mean cosine",
                "top-1",
                "perplexity Δ"
            ]
        );
        let dtypes_shown: Vec<&str> = t.rows.iter().map(|r| r[1].as_str()).collect();
        assert_eq!(dtypes_shown, ["f32", "bf16", "q8_0"]);
        let (f32_row, bf16, q8) = (&t.rows[0], &t.rows[1], &t.rows[2]);
        assert_eq!(f32_row[3], "11.0 ms (n=3, p10–p90 10.2 ms–11.8 ms)");
        assert_eq!((f32_row[4].as_str(), f32_row[6].as_str()), ("1×", "1×"));
        // The ratio of medians, inside its interval (each side resampled on its own).
        let ratio_of = |cell: &str| -> (f64, f64, f64) {
            let (r, ci) = cell.split_once("× [").unwrap();
            let (lo, hi) = ci.trim_end_matches(']').split_once(", ").unwrap();
            (r.parse().unwrap(), lo.parse().unwrap(), hi.parse().unwrap())
        };
        for (cell, want) in [(&q8[4], 0.5), (&q8[6], 2.0), (&bf16[4], 0.8)] {
            let (r, lo, hi) = ratio_of(cell);
            assert!(r == want && lo <= r && r <= hi && lo < hi, "{cell}");
        }
        assert_eq!(q8[5], "18182 tok/s (n=3, p10–p90 16970 tok/s–19636 tok/s)");
        assert_eq!(
            q8[7..].to_vec(),
            ["0.999100", "0.999750", "98.4 %", "+1.23 %"]
        );
        // No dtype cost for bf16, none shown for f32.
        assert_eq!(bf16[7..].to_vec(), ["–"; 4]);
        assert_eq!(f32_row[7..].to_vec(), ["–"; 4]);
        assert!(t.note.contains("64 random tokens (seed 3)"), "{}", t.note);
    }

    #[test]
    fn without_an_f32_row_there_is_no_ratio_and_a_failed_cost_is_named() {
        let mut r = run(
            vec![
                info("llama:preset=tiny,dtype=bf16", "bf16", 0),
                info("llama:preset=tiny,dtype=q4_k", "q4_k", 0),
            ],
            |_| 1.0,
        );
        r.dtype_costs.push(DtypeCost {
            model: "llama:preset=tiny,dtype=q4_k".parse().unwrap(),
            reference: "llama:preset=tiny,dtype=f32".parse().unwrap(),
            tokens: 64,
            seed: 0,
            agreement: None,
            error: Some("out of memory".into()),
        });
        let t = dtypes(&r).unwrap();
        assert!(t.rows.iter().all(|row| row[4] == "–" && row[6] == "–"));
        assert_eq!(t.rows[1][7], "failed");
        assert!(
            t.note
                .contains("dtype cost of llama:preset=tiny,dtype=q4_k failed: out of memory"),
            "{}",
            t.note
        );
    }
}
