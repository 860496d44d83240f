//! Parity with Hugging Face transformers (golden logits of scripts/golden/) and with
//! candle-transformers' `llama` on the same weights, for full-sequence and incremental
//! (KV-cache) forwards.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use common::{fixture, golden, max_abs_diff, row, tolerance};
use transformer::{load_dir, KvCache, Logits, Model};

const FIXTURES: [&str; 3] = ["llama_gqa", "qwen2_tied", "llama_sharded"];

fn load(name: &str) -> Model {
    load_dir(&fixture(name), DType::F32, &Device::Cpu)
        .unwrap()
        .1
}

/// Logits at every position from one forward over the whole sequence, `(T, vocab)`.
fn full_sequence(model: &Model, tokens: &[u32]) -> Tensor {
    let mut cache = model.new_cache(1).unwrap();
    let out = model
        .forward(&row(tokens), &mut cache, Logits::All)
        .unwrap();
    assert_eq!(cache.len(), tokens.len());
    out.squeeze(0).unwrap()
}

/// Prefill of `prefill` tokens, then one token per forward, on `cache`; `(T, vocab)`.
fn incremental(model: &Model, tokens: &[u32], prefill: usize, cache: &mut KvCache) -> Tensor {
    let mut rows = vec![model
        .forward(&row(&tokens[..prefill]), cache, Logits::All)
        .unwrap()
        .squeeze(0)
        .unwrap()];
    for &t in &tokens[prefill..] {
        rows.push(model.forward(&row(&[t]), cache, Logits::Last).unwrap());
    }
    Tensor::cat(&rows, 0).unwrap()
}

#[test]
fn full_sequence_logits_match_transformers() {
    for name in FIXTURES {
        let g = golden(name);
        let model = load(name);
        let got = full_sequence(&model, &g.tokens);
        let (diff, tol) = (max_abs_diff(&got, &g.seq), tolerance(&g.seq));
        // Tolerance: 1e-4 * max(1, max|logits|), scripts/golden/README.md.
        assert!(diff <= tol, "{name}: max |Δlogits| {diff:.3e} > {tol:.3e}");
    }
}

#[test]
fn incremental_logits_match_transformers() {
    for name in FIXTURES {
        let g = golden(name);
        let model = load(name);
        let mut cache = model.new_cache(1).unwrap();
        // The fixtures prefill 5 tokens, then feed one token per call.
        let got = incremental(&model, &g.tokens, 5, &mut cache);
        let (diff, tol) = (max_abs_diff(&got, &g.incremental), tolerance(&g.seq));
        // Tolerance: 1e-4 * max(1, max|logits|), scripts/golden/README.md.
        assert!(diff <= tol, "{name}: max |Δlogits| {diff:.3e} > {tol:.3e}");
    }
}

#[test]
fn chunked_prompts_match_transformers() {
    // Chunks of 3 positions: every layer sees a cache that already holds earlier chunks.
    for name in FIXTURES {
        let g = golden(name);
        let mut model = load(name);
        model.set_chunk_len(3);
        let got = full_sequence(&model, &g.tokens);
        let (diff, tol) = (max_abs_diff(&got, &g.seq), tolerance(&g.seq));
        // Tolerance: 1e-4 * max(1, max|logits|), scripts/golden/README.md.
        assert!(diff <= tol, "{name}: max |Δlogits| {diff:.3e} > {tol:.3e}");
        let mut cache = model.new_cache(1).unwrap();
        let last = model
            .forward(&row(&g.tokens), &mut cache, Logits::Last)
            .unwrap();
        let want = g.seq.narrow(0, g.tokens.len() - 1, 1).unwrap();
        assert!(max_abs_diff(&last, &want) <= tol, "{name}: Logits::Last");
    }
}

#[test]
fn cache_growth_past_capacity_gives_identical_logits() {
    let g = golden("llama_gqa");
    let model = load("llama_gqa");
    let cfg = model.config().clone();
    let mut roomy = KvCache::new(&cfg, 1, 64, DType::F32, &Device::Cpu).unwrap();
    let mut tight = KvCache::new(&cfg, 1, 1, DType::F32, &Device::Cpu).unwrap();
    let a = incremental(&model, &g.tokens, 5, &mut roomy);
    let b = incremental(&model, &g.tokens, 5, &mut tight);
    assert!(tight.capacity() > 1, "the tight cache did not grow");
    assert_eq!(roomy.capacity(), 64, "the roomy cache grew");
    // Growth copies the cache exactly, so the arithmetic is the same: bitwise equal.
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    assert_eq!(roomy.bytes(), tight.bytes());
    assert_eq!(
        tight.bytes(),
        2 * cfg.num_hidden_layers * cfg.num_key_value_heads * g.tokens.len() * cfg.head_dim * 4
    );
}

#[test]
fn batched_sequences_match_single_ones() {
    let g = golden("qwen2_tied");
    let model = load("qwen2_tied");
    let reversed: Vec<u32> = g.tokens.iter().rev().copied().collect();
    let both = Tensor::stack(
        &[
            row(&g.tokens).squeeze(0).unwrap(),
            row(&reversed).squeeze(0).unwrap(),
        ],
        0,
    )
    .unwrap();
    let mut cache = model.new_cache(2).unwrap();
    let out = model.forward(&both, &mut cache, Logits::All).unwrap();
    let tol = tolerance(&g.seq);
    for (i, toks) in [&g.tokens, &reversed].into_iter().enumerate() {
        let single = full_sequence(&model, toks);
        let diff = max_abs_diff(&out.get(i).unwrap(), &single);
        // Same arithmetic up to summation order in the batched products.
        assert!(diff <= tol, "sequence {i}: {diff:.3e}");
    }
}

#[test]
fn f16_compute_uses_the_portable_attention_and_stays_close() {
    let g = golden("llama_gqa");
    let (_, model) = load_dir(&fixture("llama_gqa"), DType::F16, &Device::Cpu).unwrap();
    let got = full_sequence(&model, &g.tokens);
    let diff = max_abs_diff(&got, &g.seq);
    // f16 weights and activations: errors of order 1e-2 (README); a wrong mask or
    // rope gives errors of order 1.
    let tol = 100.0 * tolerance(&g.seq);
    assert!(diff <= tol, "max |Δlogits| {diff:.3e} > {tol:.3e}");
}

/// candle-transformers' llama on the fixture's weights, read without this crate's
/// loader.
fn upstream(
    name: &str,
) -> (
    candle_transformers::models::llama::Llama,
    candle_transformers::models::llama::Config,
) {
    use candle_transformers::models::llama::{Llama, LlamaConfig};
    let dir = fixture(name);
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg = serde_json::from_str::<LlamaConfig>(&text)
        .unwrap()
        .into_config(false);
    let mut tensors = HashMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        if file.starts_with("model") && file.ends_with(".safetensors") {
            for (k, v) in candle_core::safetensors::load(&path, &Device::Cpu).unwrap() {
                tensors.insert(k, v.to_dtype(DType::F32).unwrap());
            }
        }
    }
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    (Llama::load(vb, &cfg).unwrap(), cfg)
}

#[test]
fn agrees_with_candle_transformers_llama() {
    use candle_transformers::models::llama::Cache;
    // Upstream has no q/k/v bias, so the Qwen2 fixture is left out.
    for name in ["llama_gqa", "llama_sharded"] {
        let g = golden(name);
        let (theirs, cfg) = upstream(name);
        let mut cache = Cache::new(true, DType::F32, &cfg, &Device::Cpu).unwrap();
        // Upstream returns only the last position's logits: step one token at a time.
        let rows: Vec<Tensor> = g
            .tokens
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                theirs
                    .forward(&row(&[t]), i, &mut cache)
                    .unwrap()
                    .squeeze(0)
                    .unwrap()
            })
            .collect();
        let upstream_logits = Tensor::stack(&rows, 0).unwrap();
        let ours = full_sequence(&load(name), &g.tokens);
        let tol = tolerance(&g.seq);
        let diff = max_abs_diff(&ours, &upstream_logits);
        // Tolerance: 1e-4 * max(1, max|logits|), as against transformers.
        assert!(
            diff <= tol,
            "{name}: ours vs upstream {diff:.3e} > {tol:.3e}"
        );
        // And upstream itself agrees with transformers, so the three are consistent.
        assert!(
            max_abs_diff(&upstream_logits, &g.seq) <= tol,
            "{name}: upstream vs golden"
        );
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let model = load("llama_gqa");
    let mut cache = model.new_cache(1).unwrap();
    let vocab = model.config().vocab_size as u32;
    assert!(model
        .forward(&row(&[1, vocab]), &mut cache, Logits::Last)
        .is_err());
    assert!(model.forward(&row(&[]), &mut cache, Logits::Last).is_err());
    let mut two = model.new_cache(2).unwrap();
    assert!(model
        .forward(&row(&[1, 2]), &mut two, Logits::Last)
        .is_err());
    let other = load("qwen2_tied");
    let mut foreign = other.new_cache(1).unwrap();
    assert!(model
        .forward(&row(&[1, 2]), &mut foreign, Logits::Last)
        .is_err());
    // Nothing was committed by the failed forwards.
    assert_eq!((cache.len(), two.len(), foreign.len()), (0, 0, 0));
}
