//! Shared helpers of the integration tests: fixture paths, golden tensors, comparisons.
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

pub const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/golden");

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(GOLDEN).join(name)
}

/// `tokens`, `logits_seq` and `logits_incremental` of a fixture.
pub struct Golden {
    pub tokens: Vec<u32>,
    /// `(T, vocab)` f32.
    pub seq: Tensor,
    /// `(T, vocab)` f32: prefill of the first 5 tokens, then one token per call.
    pub incremental: Tensor,
}

pub fn golden(name: &str) -> Golden {
    let path = fixture(name).join("golden.safetensors");
    let t = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let tokens = t["tokens"]
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap();
    Golden {
        tokens: tokens.into_iter().map(|x| x as u32).collect(),
        seq: t["logits_seq"].clone(),
        incremental: t["logits_incremental"].clone(),
    }
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The tolerance of scripts/golden/README.md: `1e-4 * max(1, max |logits|)`.
pub fn tolerance(reference: &Tensor) -> f32 {
    let scale = reference
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    1e-4 * scale.max(1.0)
}

pub fn row(tokens: &[u32]) -> Tensor {
    Tensor::new(tokens, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}
