//! Parity with the official `rwkv` 0.8.32 package (golden fixtures made by
//! `scripts/golden/rwkv7_golden.py`) and with candle-transformers' `rwkv_v7` run on the
//! same weights in the same test.
//!
//! Tolerances are the ones `scripts/golden/README.md` derives: max |Δlogits| ≤ 1e-4 and
//! max |Δstate| ≤ 1e-4 (absolute); an f64 re-implementation lands at 3e-6 to 1.3e-5.
//! The fixtures' logits have a spread of 1.6 to 2.9, so a wrong sign, norm or decay
//! shows up as errors of 0.1 and more.

mod common;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::rwkv_v7 as upstream;
use common::{max_abs_diff, pth, raw_tensors, Golden, FIXTURES};
use rwkv::{Checkpoint, Logits, Model, State};

const TOL: f32 = 1e-4;

fn load(name: &str) -> Model {
    let ckpt = Checkpoint::load(pth(name), &Device::Cpu).unwrap();
    let cfg = ckpt.config;
    Model::new(&cfg, ckpt.into_var_builder(&Device::Cpu)).unwrap()
}

fn row(tokens: &[u32]) -> Tensor {
    Tensor::new(tokens, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

/// Compares our state with the package's state list (`state.{3i+k}`).
fn assert_state(name: &str, what: &str, state: &State, golden: &Golden, prefix: &str) {
    for (i, l) in state.layers.iter().enumerate() {
        for (k, ours) in [&l.att_shift, &l.wkv, &l.ffn_shift].into_iter().enumerate() {
            let key = format!("{prefix}.{}", 3 * i + k);
            let d = max_abs_diff(&ours.squeeze(0).unwrap(), golden.get(&key));
            assert!(d <= TOL, "{name} {what}: {key} max |Δ| {d:e} > {TOL:e}");
        }
    }
}

#[test]
fn whole_sequence_matches_logits_seq_and_final_state() {
    for name in FIXTURES {
        let (model, golden) = (load(name), Golden::load(name));
        let mut state = State::new(model.config(), 1, &Device::Cpu).unwrap();
        let logits = model
            .forward(&row(&golden.tokens), &mut state, Logits::All)
            .unwrap();
        let d = max_abs_diff(&logits, golden.get("logits_seq"));
        assert!(d <= TOL, "{name}: logits_seq max |Δ| {d:e} > {TOL:e}");
        assert_state(name, "seq", &state, &golden, "state");

        // Logits::Last is the last row of the same computation, one row per sequence.
        let mut state = State::new(model.config(), 1, &Device::Cpu).unwrap();
        let last = model
            .forward(&row(&golden.tokens), &mut state, Logits::Last)
            .unwrap();
        assert_eq!(last.dims(), &[1, model.config().vocab]);
        let want = golden.get("logits_seq").narrow(0, 15, 1).unwrap();
        let d = max_abs_diff(&last, &want);
        assert!(d <= TOL, "{name}: last position max |Δ| {d:e}");
    }
}

#[test]
fn token_by_token_matches_logits_step_and_final_state() {
    for name in FIXTURES {
        let (model, golden) = (load(name), Golden::load(name));
        let mut state = State::new(model.config(), 1, &Device::Cpu).unwrap();
        let rows: Vec<Tensor> = golden
            .tokens
            .iter()
            .map(|&t| model.forward(&row(&[t]), &mut state, Logits::Last).unwrap())
            .collect();
        // (1, V) per step -> (1, T, V).
        let logits = Tensor::stack(&rows, 1).unwrap();
        let d = max_abs_diff(&logits, golden.get("logits_step"));
        assert!(d <= TOL, "{name}: logits_step max |Δ| {d:e} > {TOL:e}");
        assert_state(name, "step", &state, &golden, "state_step");
    }
}

#[test]
fn chunks_carry_the_state() {
    for name in FIXTURES {
        let (mut model, golden) = (load(name), Golden::load(name));
        // The fixture's own split: 5 then 11 tokens, in two calls.
        let mut state = State::new(model.config(), 1, &Device::Cpu).unwrap();
        let (a, b) = golden.tokens.split_at(5);
        let first = model.forward(&row(a), &mut state, Logits::All).unwrap();
        let second = model.forward(&row(b), &mut state, Logits::All).unwrap();
        let logits = Tensor::cat(&[first, second], 1).unwrap();
        let d = max_abs_diff(&logits, golden.get("logits_chunked"));
        assert!(d <= TOL, "{name}: logits_chunked max |Δ| {d:e} > {TOL:e}");

        // The model's internal chunking (3 + 3 + ... + 1 tokens) in one call.
        model.set_chunk_len(3);
        let mut state = State::new(model.config(), 1, &Device::Cpu).unwrap();
        let logits = model
            .forward(&row(&golden.tokens), &mut state, Logits::All)
            .unwrap();
        let d = max_abs_diff(&logits, golden.get("logits_seq"));
        assert!(
            d <= TOL,
            "{name}: internally chunked max |Δ| {d:e} > {TOL:e}"
        );
        assert_state(name, "internally chunked", &state, &golden, "state");
    }
}

#[test]
fn candle_transformers_rwkv_v7_agrees_on_the_same_weights() {
    for name in FIXTURES {
        let golden = Golden::load(name);
        let ours = load(name);
        let cfg = *ours.config();
        let up_cfg = upstream::Config {
            version: upstream::ModelVersion::V7,
            vocab_size: cfg.vocab,
            hidden_size: cfg.width,
            num_hidden_layers: cfg.layers,
            head_size: cfg.head_size,
            intermediate_size: Some(cfg.ffn),
            rescale_every: 0,
        };
        let dev = Device::Cpu;
        let vb = VarBuilder::from_tensors(raw_tensors(name), candle_core::DType::F32, &dev);
        let up = upstream::Model::new(&up_cfg, vb).unwrap();
        let mut up_state = upstream::State::new(&up_cfg, &dev).unwrap();
        let up_rows: Vec<Tensor> = golden
            .tokens
            .iter()
            .map(|&t| up.forward(&row(&[t]), &mut up_state, &[t]).unwrap())
            .collect();
        let up_logits = Tensor::stack(&up_rows, 0).unwrap();

        let mut state = State::new(&cfg, 1, &dev).unwrap();
        let our_logits = ours
            .forward(&row(&golden.tokens), &mut state, Logits::All)
            .unwrap();
        let d_gold = max_abs_diff(&up_logits, golden.get("logits_step"));
        let d_ours = max_abs_diff(&up_logits, &our_logits);
        assert!(
            d_gold <= TOL,
            "{name}: upstream vs official max |Δ| {d_gold:e}"
        );
        assert!(d_ours <= TOL, "{name}: upstream vs ours max |Δ| {d_ours:e}");
        for (i, (l, u)) in state.layers.iter().zip(&up_state.per_layer).enumerate() {
            let d = max_abs_diff(&l.wkv, &u.att_kv);
            assert!(
                d <= TOL,
                "{name}: layer {i} WKV state vs upstream max |Δ| {d:e}"
            );
        }
    }
}

#[test]
fn a_batch_of_two_equals_two_single_runs() {
    let (model, golden) = (load("tiny"), Golden::load("tiny"));
    let a = golden.tokens.clone();
    let b: Vec<u32> = a.iter().rev().copied().collect();
    let dev = Device::Cpu;
    let both = Tensor::from_vec([a.clone(), b.clone()].concat(), (2, a.len()), &dev).unwrap();
    let mut state = State::new(model.config(), 2, &dev).unwrap();
    let batched = model.forward(&both, &mut state, Logits::All).unwrap();
    // Logits::Last gives one row per sequence: the last position of each.
    let mut last_state = State::new(model.config(), 2, &dev).unwrap();
    let last = model.forward(&both, &mut last_state, Logits::Last).unwrap();
    assert_eq!(last.dims(), &[2, model.config().vocab]);
    let want = batched
        .narrow(1, a.len() - 1, 1)
        .unwrap()
        .squeeze(1)
        .unwrap();
    // The head of two rows runs as a gemv, of all rows as a matmul: rounding differs.
    let d = max_abs_diff(&last, &want);
    assert!(d <= 1e-5, "last positions: max |Δ| {d:e}");
    for (i, seq) in [a, b].iter().enumerate() {
        let mut single_state = State::new(model.config(), 1, &dev).unwrap();
        let single = model
            .forward(&row(seq), &mut single_state, Logits::All)
            .unwrap();
        // The same kernels on the same rows; only matmul blocking may differ.
        let d = max_abs_diff(&batched.narrow(0, i, 1).unwrap(), &single);
        assert!(d <= 1e-5, "row {i}: max |Δ| {d:e}");
        let d = max_abs_diff(
            &state.layers[1].wkv.narrow(0, i, 1).unwrap(),
            &single_state.layers[1].wkv,
        );
        assert!(d <= 1e-5, "row {i}: state max |Δ| {d:e}");
    }
}

#[test]
fn a_saved_state_resumes_exactly() {
    let (model, golden) = (load("tiny_bf16"), Golden::load("tiny_bf16"));
    let dev = Device::Cpu;
    let (prefix, rest) = golden.tokens.split_at(7);
    let mut state = State::new(model.config(), 1, &dev).unwrap();
    model
        .forward(&row(prefix), &mut state, Logits::Last)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prefix.state.safetensors");
    state.save(&path).unwrap();
    let mut resumed = State::load(&path, model.config(), &dev).unwrap();
    assert_eq!(resumed.bytes(), state.bytes());
    let want = model.forward(&row(rest), &mut state, Logits::All).unwrap();
    let got = model
        .forward(&row(rest), &mut resumed, Logits::All)
        .unwrap();
    assert_eq!(max_abs_diff(&want, &got), 0.0);

    // A state of another model is refused, naming the file.
    let other = rwkv::Config::tiny();
    let e = State::load(&path, &other, &dev).unwrap_err().to_string();
    assert!(e.contains("prefix.state.safetensors"), "{e}");
}

#[test]
fn a_cloned_state_is_independent() {
    let (model, golden) = (load("tiny"), Golden::load("tiny"));
    let (prefix, rest) = golden.tokens.split_at(4);
    let mut state = State::new(model.config(), 1, &Device::Cpu).unwrap();
    model
        .forward(&row(prefix), &mut state, Logits::Last)
        .unwrap();
    let copy = state.try_clone().unwrap();
    let before = copy.layers[0]
        .wkv
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    model.forward(&row(rest), &mut state, Logits::Last).unwrap();
    let after = copy.layers[0]
        .wkv
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(
        before, after,
        "the WKV state is updated in place; clones must not share it"
    );
}

#[test]
fn state_bytes_are_the_analytic_size() {
    let model = load("tiny");
    let c = model.config();
    let state = State::new(c, 3, &Device::Cpu).unwrap();
    let per_layer = 3 * (2 * c.width + c.heads * c.head_size * c.head_size) * 4;
    assert_eq!(state.bytes(), c.layers * per_layer);
}
