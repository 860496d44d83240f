//! Gradient parity with PyTorch autograd in float64 (`scripts/golden/grads_golden.py`):
//! every fixture of both families, built through the registry exactly as
//! `rwkv-bench grad` builds it. Tolerances (stated in scripts/golden/README.md):
//! |Δloss| ≤ 1e-5·max(1, loss); per tensor max|Δgrad| ≤ 1e-3·max(1, max|grad|).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use models::{registry, trainable, BuildOptions};
use results::ModelSpec;

fn golden(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/golden")
        .join(rel)
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Checks one fixture; returns a line per tensor out of tolerance.
fn check(spec: &str, grads_file: &Path) -> Vec<String> {
    let want: HashMap<String, Tensor> =
        candle_core::safetensors::load(grads_file, &Device::Cpu).unwrap();
    let tokens: Vec<u32> = want["tokens"]
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|t| t as u32)
        .collect();
    let want_loss = want["loss"].to_vec1::<f64>().unwrap()[0];

    let spec: ModelSpec = spec.parse().unwrap();
    let model = registry::build_trainable(&spec, &BuildOptions::default()).unwrap();
    let tokens = Tensor::new(tokens.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let (loss, grads) = trainable::gradients(model.as_ref(), &tokens).unwrap();

    let mut bad = Vec::new();
    let loss = loss.to_scalar::<f32>().unwrap() as f64;
    let d = (loss - want_loss).abs();
    if d > 1e-5 * want_loss.max(1.0) {
        bad.push(format!("loss {loss} vs {want_loss}: |Δ| {d:.2e}"));
    }
    let expected: usize = want.keys().filter(|k| k.starts_with("grad.")).count();
    if grads.len() != expected {
        bad.push(format!(
            "{} gradients, the reference has {expected}",
            grads.len()
        ));
    }
    for (key, got) in &grads {
        let Some(reference) = want.get(&format!("grad.{key}")) else {
            bad.push(format!("{key}: not in the reference"));
            continue;
        };
        let reference = reference.to_dtype(DType::F32).unwrap();
        if got.dims() != reference.dims() {
            bad.push(format!(
                "{key}: shape {:?} vs {:?}",
                got.dims(),
                reference.dims()
            ));
            continue;
        }
        let tol = 1e-3 * max_abs(&reference).max(1.0);
        let d = max_abs(&(got - &reference).unwrap());
        if d > tol {
            bad.push(format!("{key}: max|Δgrad| {d:.2e} > {tol:.2e}"));
        }
    }
    bad
}

fn assert_parity(spec: &str, grads_file: PathBuf) {
    let bad = check(spec, &grads_file);
    assert!(bad.is_empty(), "{spec}:\n{}", bad.join("\n"));
}

#[test]
fn rwkv7_tiny_odd_ffn_and_lora_widths() {
    let dir = golden("rwkv7");
    assert_parity(
        &format!("rwkv7:{}", dir.join("tiny.pth").display()),
        dir.join("tiny.grads.safetensors"),
    );
}

#[test]
fn rwkv7_bf16_head_size_64() {
    let dir = golden("rwkv7");
    assert_parity(
        &format!("rwkv7:{}", dir.join("tiny_bf16.pth").display()),
        dir.join("tiny_bf16.grads.safetensors"),
    );
}

#[test]
fn llama_gqa() {
    let dir = golden("llama_gqa");
    assert_parity(
        &format!("llama:{}", dir.display()),
        dir.join("grads.safetensors"),
    );
}

#[test]
fn qwen2_tied_mqa_with_qkv_bias() {
    let dir = golden("qwen2_tied");
    assert_parity(
        &format!("llama:{}", dir.display()),
        dir.join("grads.safetensors"),
    );
}

#[test]
fn llama_bf16_sharded() {
    let dir = golden("llama_sharded");
    assert_parity(
        &format!("llama:{}", dir.display()),
        dir.join("grads.safetensors"),
    );
}

/// A gradient that is wrong by a little more than the tolerance must fail: the check
/// is not vacuous.
#[test]
fn a_perturbed_reference_fails() {
    let dir = golden("llama_gqa");
    let src = dir.join("grads.safetensors");
    let mut t = candle_core::safetensors::load(&src, &Device::Cpu).unwrap();
    let key = "grad.model.layers.1.mlp.down_proj.weight";
    let g = t[key].to_dtype(DType::F32).unwrap();
    let bump = (2e-3 * max_abs(&g).max(1.0)) as f32;
    let mut v = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[0] += bump;
    t.insert(
        key.into(),
        Tensor::from_vec(v, g.dims(), &Device::Cpu).unwrap(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grads.safetensors");
    candle_core::safetensors::save(&t, &out).unwrap();
    let bad = check(&format!("llama:{}", dir.display()), &out);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("model.layers.1.mlp.down_proj.weight"),
        "{bad:?}"
    );
}
