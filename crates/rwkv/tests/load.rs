//! Checkpoint loading: safetensors with the official keys, and one clear error naming
//! the file and the key for every way a checkpoint can be wrong.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::{max_abs_diff, pth, raw_tensors, Golden};
use rwkv::{Checkpoint, Logits, Model, State};

fn save(dir: &Path, file: &str, tensors: &HashMap<String, Tensor>) -> PathBuf {
    let path = dir.join(file);
    candle_core::safetensors::save(tensors, &path).unwrap();
    path
}

fn load_error(path: &Path) -> String {
    Checkpoint::load(path, &Device::Cpu)
        .unwrap_err()
        .to_string()
}

/// Asserts the message names the file and every one of `words`.
fn assert_names(e: &str, path: &Path, words: &[&str]) {
    let file = path.file_name().unwrap().to_string_lossy();
    assert!(
        e.contains(&*file),
        "error does not name the file {file}: {e}"
    );
    for w in words {
        assert!(e.contains(w), "error does not mention {w}: {e}");
    }
}

#[test]
fn safetensors_with_official_keys_and_bf16_data_match_the_pth() {
    let dir = tempfile::tempdir().unwrap();
    let tensors: HashMap<String, Tensor> = candle_core::pickle::read_all(pth("tiny_bf16"))
        .unwrap()
        .into_iter()
        .collect();
    assert!(tensors.values().all(|t| t.dtype() == DType::BF16));
    let path = save(dir.path(), "tiny_bf16.safetensors", &tensors);
    let ckpt = Checkpoint::load(&path, &Device::Cpu).unwrap();
    let cfg = ckpt.config;
    let model = Model::new(&cfg, ckpt.into_var_builder(&Device::Cpu)).unwrap();
    let golden = Golden::load("tiny_bf16");
    let tokens = Tensor::new(golden.tokens.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut state = State::new(&cfg, 1, &Device::Cpu).unwrap();
    let logits = model.forward(&tokens, &mut state, Logits::All).unwrap();
    // Same tolerance as the .pth parity tests: bf16 upcasts to f32 exactly.
    let d = max_abs_diff(&logits, golden.get("logits_seq"));
    assert!(d <= 1e-4, "max |Δ| {d:e}");
}

#[test]
fn config_comes_from_the_shapes_of_both_fixtures() {
    let tiny = Checkpoint::load(pth("tiny"), &Device::Cpu).unwrap().config;
    assert_eq!(
        (
            tiny.vocab,
            tiny.width,
            tiny.layers,
            tiny.heads,
            tiny.head_size,
            tiny.ffn
        ),
        (131, 64, 2, 2, 32, 224)
    );
    assert_eq!(
        [
            tiny.lora.decay,
            tiny.lora.iclr,
            tiny.lora.value,
            tiny.lora.gate
        ],
        [8, 12, 6, 16]
    );
    let bf16 = Checkpoint::load(pth("tiny_bf16"), &Device::Cpu)
        .unwrap()
        .config;
    assert_eq!(
        (bf16.vocab, bf16.width, bf16.heads, bf16.head_size, bf16.ffn),
        (113, 128, 2, 64, 320)
    );
    assert_eq!(
        [
            bf16.lora.decay,
            bf16.lora.iclr,
            bf16.lora.value,
            bf16.lora.gate
        ],
        [16, 24, 8, 32]
    );
}

#[test]
fn an_older_generation_checkpoint_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = raw_tensors("tiny");
    tensors.insert(
        "blocks.0.att.time_decay".into(),
        Tensor::zeros(64, DType::F32, &Device::Cpu).unwrap(),
    );
    let path = save(dir.path(), "x060.safetensors", &tensors);
    let e = load_error(&path);
    assert_names(&e, &path, &["blocks.0.att.time_decay", "x060", "x070"]);
}

#[test]
fn a_missing_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = raw_tensors("tiny");
    tensors.remove("blocks.1.ffn.value.weight");
    let path = save(dir.path(), "missing.safetensors", &tensors);
    let e = load_error(&path);
    assert_names(&e, &path, &["blocks.1.ffn.value.weight", "missing"]);
}

#[test]
fn a_mis_shaped_key_is_named_with_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = raw_tensors("tiny");
    tensors.insert(
        "blocks.1.att.k_k".into(),
        Tensor::zeros((1, 1, 7), DType::F32, &Device::Cpu).unwrap(),
    );
    let path = save(dir.path(), "misshaped.safetensors", &tensors);
    let e = load_error(&path);
    assert_names(&e, &path, &["blocks.1.att.k_k", "[1, 1, 64]", "[1, 1, 7]"]);
}

#[test]
fn a_truncated_pth_names_the_first_lost_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(pth("tiny")).unwrap();
    let path = dir.path().join("cut.pth");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_error(&path);
    assert_names(&e, &path, &["truncated", "tensor `blocks."]);

    // Cut inside the pickled index itself.
    std::fs::write(&path, &bytes[..300]).unwrap();
    let e = load_error(&path);
    assert_names(&e, &path, &["truncated", "data.pkl"]);
}

#[test]
fn a_truncated_safetensors_names_the_first_lost_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), "whole.safetensors", &raw_tensors("tiny"));
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 5]).unwrap();
    let e = load_error(&cut);
    assert_names(&e, &cut, &["truncated", "tensor `"]);
}

#[test]
fn other_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.pth");
    std::fs::write(&path, "these are not weights, just some text").unwrap();
    let e = load_error(&path);
    assert_names(&e, &path, &["not a checkpoint"]);

    let path = dir.path().join("absent.pth");
    let e = load_error(&path);
    assert_names(&e, &path, &[]);
}
