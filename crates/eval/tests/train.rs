//! The training loop on the `tiny` presets of both architectures: the loss falls, a
//! run stopped and resumed equals the uninterrupted run bit for bit, checkpoints load
//! through the registry as inference models with the same logits, and a diverging run
//! stops with an error naming the step while its last good checkpoint stays.

use std::path::Path;

use candle_core::{Device, Tensor};
use eval::train::{self, checkpoint, Mix, Source, TrainConfig};
use models::tokenizer::bytes::ByteTokenizer;
use models::tokenizer::Tokenizer;
use models::{registry, BuildOptions, Differentiable};
use results::task::{TaskKind, TaskParams};
use results::ModelSpec;
use testkit::max_abs_diff;

const ARCHS: [&str; 2] = ["rwkv7", "llama"];

fn spec(raw: &str) -> ModelSpec {
    raw.parse().unwrap()
}

fn config(model: &str, steps: u64, lr: f64) -> TrainConfig {
    TrainConfig {
        model: model.into(),
        data: "task copy".into(),
        steps,
        batch: 8,
        seq_len: 48,
        lr,
        warmup: 2,
        min_lr_ratio: 0.1,
        weight_decay: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        clip: 1.0,
        seed: 5,
        checkpoint_every: 4,
    }
}

fn copy_task(vocab: usize) -> Source {
    Source::Task {
        kind: TaskKind::Copy,
        mix: vec![Mix {
            seq_len: 48,
            params: TaskParams {
                copy_answer: 8,
                token_vocab: 64,
                ..TaskParams::default()
            },
        }],
        tokenizer: Box::new(ByteTokenizer),
        vocab,
    }
}

fn build(raw: &str) -> Box<dyn Differentiable> {
    registry::build_trainable(&spec(raw), &BuildOptions::default()).unwrap()
}

fn losses(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<train::StepLog>(l).unwrap().loss)
        .collect()
}

/// Trains a whole run; the mean loss of its first and of its last `n` steps.
fn first_and_last(
    model: &dyn Differentiable,
    source: &Source,
    cfg: &TrainConfig,
    n: usize,
) -> (f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    train::train(model, source, cfg, tmp.path(), None, None, |_| {}).unwrap();
    let l = losses(tmp.path());
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    (mean(&l[..n]), mean(&l[l.len() - n..]))
}

#[test]
fn the_loss_falls_on_a_copy_task() {
    for arch in ARCHS {
        let raw = format!("{arch}:preset=tiny");
        let model = build(&raw);
        let cfg = config(&raw, 30, 3e-3);
        let source = copy_task(model.vocab());
        let (first, last) = first_and_last(model.as_ref(), &source, &cfg, 5);
        assert!(last < 0.8 * first, "{arch}: loss {first:.3} -> {last:.3}");
    }
}

/// The recall pair's recipe in miniature: the smallest recall preset of both
/// architectures on a two-entry MQAR mixture (as `rwkv-bench train --mix`). A few steps
/// must leave the uniform guess over every id behind.
#[test]
fn a_micro_recall_pair_lowers_its_loss_on_an_mqar_mixture() {
    for arch in ARCHS {
        let raw = format!("{arch}:preset=recall-64");
        let model = build(&raw);
        let mix = |seq_len, pairs| Mix {
            seq_len,
            params: TaskParams {
                mqar_pairs: pairs,
                token_vocab: 64,
                ..TaskParams::default()
            },
        };
        let source = Source::Task {
            kind: TaskKind::Mqar,
            mix: vec![mix(32, 4), mix(64, 8)],
            tokenizer: Box::new(ByteTokenizer),
            vocab: model.vocab(),
        };
        let cfg = TrainConfig {
            data: "task mqar".into(),
            seq_len: 64,
            ..config(&raw, 16, 1e-2)
        };
        let (first, last) = first_and_last(model.as_ref(), &source, &cfg, 4);
        // Values come from 32 of the 1024 ids: ln 1024 = 6.9 falls towards ln 32 = 3.5.
        assert!(last < first - 1.0, "{arch}: loss {first:.3} -> {last:.3}");
    }
}

#[test]
fn a_resumed_run_equals_the_uninterrupted_one_and_loads_everywhere() {
    for arch in ARCHS {
        let raw = format!("{arch}:preset=tiny");
        let cfg = config(&raw, 8, 2e-3);
        let whole = tempfile::tempdir().unwrap();
        let model = build(&raw);
        let source = copy_task(model.vocab());
        let done = train::train(
            model.as_ref(),
            &source,
            &cfg,
            whole.path(),
            None,
            None,
            |_| {},
        )
        .unwrap();
        assert_eq!(done.last.step, 8);

        let split = tempfile::tempdir().unwrap();
        let first = build(&raw);
        let half = train::train(
            first.as_ref(),
            &source,
            &cfg,
            split.path(),
            None,
            Some(5),
            |_| {},
        )
        .unwrap();
        assert_eq!(half.last.step, 5);
        let saved = checkpoint::latest(split.path()).unwrap().unwrap();
        let again = build(&format!("{arch}:{}", saved.model.display()));
        train::train(
            again.as_ref(),
            &source,
            &cfg,
            split.path(),
            Some(&saved),
            None,
            |_| {},
        )
        .unwrap();
        assert_eq!(losses(whole.path()), losses(split.path()), "{arch}");
        for ((key, x), (_, y)) in model.params().iter().zip(again.params().iter()) {
            assert_eq!(
                max_abs_diff(x.as_tensor(), y.as_tensor()),
                0.0,
                "{arch} {key}"
            );
        }

        // The checkpoint is an inference model with the trained logits.
        let path = checkpoint::latest(whole.path()).unwrap().unwrap().model;
        let lm_spec = spec(&format!("{arch}:{}", path.display()));
        let mut lm = registry::build(&lm_spec, &BuildOptions::default()).unwrap();
        let tokens = [3u32, 17, 4, 9, 40, 2];
        let got = lm.prefill(&tokens).unwrap().flatten_all().unwrap();
        let t = Tensor::new(&tokens[..], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let want = model
            .logits(&t)
            .unwrap()
            .get(0)
            .unwrap()
            .get(tokens.len() - 1)
            .unwrap();
        let d = max_abs_diff(&got, &want);
        assert!(d < 1e-4, "{arch}: inference vs training logits {d}");
    }
}

#[test]
fn a_diverging_run_names_the_step_and_keeps_its_last_good_checkpoint() {
    let raw = "llama:preset=tiny";
    let model = build(raw);
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(raw, 10, 1e30);
    cfg.warmup = 0;
    cfg.checkpoint_every = 1;
    let source = copy_task(model.vocab());
    let err = train::train(
        model.as_ref(),
        &source,
        &cfg,
        tmp.path(),
        None,
        None,
        |_| {},
    )
    .err()
    .expect("a learning rate of 1e30 diverges");
    let msg = err.to_string();
    assert!(msg.starts_with("step "), "{msg}");
    assert!(
        msg.contains("not finite") && msg.contains("last good checkpoint"),
        "{msg}"
    );
    let saved = checkpoint::latest(tmp.path()).unwrap().unwrap();
    assert!(msg.contains(&format!("(step {})", saved.step)), "{msg}");
    let lm_spec = spec(&format!("llama:{}", saved.model.display()));
    assert!(
        registry::build(&lm_spec, &BuildOptions::default()).is_ok(),
        "the last good checkpoint loads"
    );
}

#[test]
fn text_batches_are_windows_of_the_corpus_fixed_by_seed_and_step() {
    let tmp = tempfile::tempdir().unwrap();
    let text: String = (0..400)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    std::fs::write(tmp.path().join("a.txt"), &text).unwrap();
    let source = Source::text(tmp.path(), &ByteTokenizer, 32).unwrap();
    let batch = |step| {
        source
            .batch(step, 4, 32, 9)
            .unwrap()
            .tokens
            .to_vec2::<u32>()
            .unwrap()
    };
    let corpus = ByteTokenizer.encode(&text).unwrap();
    for row in batch(1) {
        assert!(corpus.windows(32).any(|w| w == row.as_slice()), "{row:?}");
    }
    assert_eq!(batch(1), batch(1));
    assert_ne!(batch(1), batch(2));
    assert!(source.batch(1, 4, 32, 9).unwrap().weights.is_none());

    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "too short").unwrap();
    let err = Source::text(&short, &ByteTokenizer, 32)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("short.txt") && err.contains("too short for one window"),
        "{err}"
    );
}
