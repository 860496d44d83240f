//! Checkpoint errors name the file and the tensor to fix.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::fixture;
use transformer::{load_dir, Error};

/// Copies a fixture directory (without its golden logits) into a temporary one.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap();
        if file != "golden.safetensors" {
            std::fs::copy(&path, dir.path().join(file)).unwrap();
        }
    }
    dir
}

fn edit_tensors(file: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let mut tensors = candle_core::safetensors::load(file, &Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, file).unwrap();
}

fn load_error(dir: &Path) -> Error {
    match load_dir(dir, DType::F32, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    }
}

fn assert_names(e: &Error, file: &Path, tensor: &str) {
    assert!(
        matches!(e, Error::Checkpoint { .. }),
        "not a checkpoint error: {e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(&file.display().to_string()),
        "no file in: {text}"
    );
    assert!(
        text.contains(&format!("`{tensor}`")),
        "no tensor in: {text}"
    );
}

#[test]
fn missing_tensor_names_file_and_tensor() {
    let dir = copy_fixture("llama_gqa");
    let file = dir.path().join("model.safetensors");
    let name = "model.layers.1.mlp.up_proj.weight";
    edit_tensors(&file, |t| {
        t.remove(name);
    });
    assert_names(&load_error(dir.path()), &file, name);
}

#[test]
fn wrong_shape_names_file_tensor_and_shapes() {
    let dir = copy_fixture("llama_gqa");
    let file = dir.path().join("model.safetensors");
    let name = "model.layers.0.self_attn.k_proj.weight";
    edit_tensors(&file, |t| {
        t.insert(
            name.into(),
            Tensor::zeros((64, 64), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = load_error(dir.path());
    assert_names(&e, &file, name);
    assert!(
        e.to_string().contains("[64, 64]") && e.to_string().contains("[32, 64]"),
        "{e}"
    );
}

#[test]
fn missing_head_of_an_untied_model_is_named() {
    let dir = copy_fixture("qwen2_tied");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "\"tie_word_embeddings\": true",
            "\"tie_word_embeddings\": false",
        ),
    )
    .unwrap();
    assert_names(
        &load_error(dir.path()),
        &dir.path().join("model.safetensors"),
        "lm_head.weight",
    );
}

#[test]
fn missing_shard_names_the_index_the_shard_and_a_tensor() {
    let dir = copy_fixture("llama_sharded");
    let shard = dir.path().join("model-00002-of-00003.safetensors");
    std::fs::remove_file(&shard).unwrap();
    let e = load_error(dir.path());
    let text = e.to_string();
    assert!(text.contains("model.safetensors.index.json"), "{text}");
    assert!(text.contains(&shard.display().to_string()), "{text}");
    assert!(text.contains("`model."), "no tensor in: {text}");
}

#[test]
fn tensor_absent_from_the_shard_its_index_names_is_reported_there() {
    let dir = copy_fixture("llama_sharded");
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let name = "model.norm.weight";
    let shard = dir.path().join(index["weight_map"][name].as_str().unwrap());
    edit_tensors(&shard, |t| {
        t.remove(name);
    });
    assert_names(&load_error(dir.path()), &shard, name);
}

#[test]
fn tensor_missing_from_a_sharded_index_names_the_index() {
    let dir = copy_fixture("llama_sharded");
    let path = dir.path().join("model.safetensors.index.json");
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let name = "model.layers.1.input_layernorm.weight";
    index["weight_map"].as_object_mut().unwrap().remove(name);
    std::fs::write(&path, index.to_string()).unwrap();
    assert_names(&load_error(dir.path()), &path, name);
}

#[test]
fn a_directory_without_weights_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("llama_gqa").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let e = load_error(dir.path()).to_string();
    assert!(
        e.contains(&dir.path().display().to_string()) && e.contains("model.safetensors"),
        "{e}"
    );
}

#[test]
fn f16_checkpoints_load_and_upcast() {
    // Not an error case, but the same machinery: a checkpoint stored as f16, computed in f32.
    let dir = copy_fixture("llama_gqa");
    let file = dir.path().join("model.safetensors");
    edit_tensors(&file, |t| {
        for v in t.values_mut() {
            *v = v.to_dtype(DType::F16).unwrap();
        }
    });
    let (_, model) = load_dir(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let g = common::golden("llama_gqa");
    let mut cache = model.new_cache(1).unwrap();
    let got = model
        .forward(
            &common::row(&g.tokens),
            &mut cache,
            transformer::Logits::All,
        )
        .unwrap()
        .squeeze(0)
        .unwrap();
    let diff = common::max_abs_diff(&got, &g.seq);
    // f16 weights (relative rounding 5e-4) move the logits by about 1e-2; a weight read
    // with the wrong dtype or byte order moves them by order 1 or more.
    let tol = 100.0 * common::tolerance(&g.seq);
    assert!(diff <= tol, "max |Δlogits| {diff:.3e} > {tol:.3e}");
}
