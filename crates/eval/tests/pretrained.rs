//! The shipped recall pair (`assets/pretrained/recall-small`, loaded as
//! `rwkv7:pretrained=recall-small` and `llama:pretrained=recall-small`) reproduces,
//! hit for hit, the MQAR accuracy recorded when it was shipped
//! (`recall-small/accuracy.json`, written by scripts/pairs/record_accuracy.py from
//! `rwkv-bench eval suites/recall.toml`), and its transformer recalls at its training
//! length, so a gap between the two is not a training failure.

use eval::score::score_example;
use eval::tasks;
use models::{pretrained, registry, tokenizer, BuildOptions};
use results::task::{TaskKind, TaskParams};
use results::ModelSpec;
use serde::Deserialize;

#[derive(Deserialize)]
struct Recorded {
    seed: u64,
    examples: usize,
    token_vocab: usize,
    training_length: usize,
    cells: Vec<Cell>,
}

#[derive(Deserialize)]
struct Cell {
    arch: String,
    seq_len: usize,
    pairs: usize,
    hits: usize,
    probes: usize,
}

#[test]
fn the_shipped_pair_reproduces_its_recorded_accuracy() {
    let path = pretrained::assets_dir().join("recall-small/accuracy.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let rec: Recorded = serde_json::from_str(&text).unwrap();
    assert!(!rec.cells.is_empty());
    // Llama's hits and probes at the training length, pooled over key-value counts.
    let (mut at_training, mut of) = (0, 0);
    for arch in ["rwkv7", "llama"] {
        let spec: ModelSpec = format!("{arch}:pretrained=recall-small").parse().unwrap();
        let mut model = registry::build(&spec, &BuildOptions::default()).unwrap();
        let tok = tokenizer::load(&tokenizer::for_model(&spec).unwrap()).unwrap();
        let vocab = model.info().vocab;
        for cell in rec.cells.iter().filter(|c| c.arch == arch) {
            let params = TaskParams {
                examples: rec.examples,
                mqar_pairs: cell.pairs,
                token_vocab: rec.token_vocab,
                ..TaskParams::default()
            };
            let examples = tasks::generate(
                TaskKind::Mqar,
                tok.as_ref(),
                vocab,
                cell.seq_len,
                &params,
                rec.seed,
            )
            .unwrap();
            let (mut hits, mut probes) = (0, 0);
            for ex in &examples {
                for s in score_example(model.as_mut(), ex).unwrap() {
                    hits += usize::from(s.correct);
                    probes += 1;
                }
            }
            let at = format!("{arch} at {} tokens, {} pairs", cell.seq_len, cell.pairs);
            assert_eq!((hits, probes), (cell.hits, cell.probes), "{at}");
            if arch == "llama" && cell.seq_len == rec.training_length {
                (at_training, of) = (at_training + hits, of + probes);
            }
        }
    }
    assert!(of > 0, "no Llama cell at the training length");
    assert!(
        at_training as f64 >= 0.9 * of as f64,
        "Llama at its training length: {at_training}/{of}"
    );
}
