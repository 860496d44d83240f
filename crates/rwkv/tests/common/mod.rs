//! Shared helpers for the golden-fixture tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

pub const FIXTURES: [&str; 2] = ["tiny", "tiny_bf16"];

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/golden/rwkv7"
    ))
}

pub fn pth(name: &str) -> PathBuf {
    fixture_dir().join(format!("{name}.pth"))
}

/// The reference outputs of the official package for one fixture.
pub struct Golden {
    pub tokens: Vec<u32>,
    pub tensors: HashMap<String, Tensor>,
}

impl Golden {
    pub fn load(name: &str) -> Self {
        let path = fixture_dir().join(format!("{name}.golden.safetensors"));
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        let tokens = tensors["tokens"]
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        Self { tokens, tensors }
    }

    pub fn get(&self, key: &str) -> &Tensor {
        &self.tensors[key]
    }
}

/// Every tensor of a `.pth` file (including ones our model does not use), as f32.
pub fn raw_tensors(name: &str) -> HashMap<String, Tensor> {
    candle_core::pickle::read_all(pth(name))
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.to_dtype(DType::F32).unwrap()))
        .collect()
}

/// max |a - b| over all elements, after flattening both (shapes must hold equally many).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(
        a.elem_count(),
        b.elem_count(),
        "{:?} vs {:?}",
        a.dims(),
        b.dims()
    );
    let a = a.flatten_all().unwrap().to_dtype(DType::F32).unwrap();
    let b = b.flatten_all().unwrap().to_dtype(DType::F32).unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
