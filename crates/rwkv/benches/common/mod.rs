//! Random weights for benchmarks: speed does not depend on weight values, only on
//! shapes, as long as activations stay in a realistic range (no overflow, no
//! denormals). The ranges follow the harness's `synthetic.rs`.

#![allow(dead_code)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rwkv::{Config, Model};

/// A seeded uniform generator (a 64-bit LCG), so benchmarks see the same weights.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(6364136223846793005).wrapping_add(1))
    }

    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (hi - lo) * ((self.0 >> 40) as f32 / (1u64 << 24) as f32)
    }

    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

fn range(key: &str, shape: &[usize]) -> (f32, f32) {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let fan_in = *shape.last().unwrap_or(&1) as f32;
    let std = |s: f32| (-s * 3f32.sqrt(), s * 3f32.sqrt());
    if key.ends_with("ln0.weight") || key.contains(".ln") && leaf == "weight" {
        return (1.0, 1.0);
    }
    match leaf {
        "bias" => (0.0, 0.0),
        "w0" => (-6.0, -1.0),
        "a0" => (-1.0, 1.0),
        "v0" => (0.5, 1.5),
        "k_k" => (0.7, 1.0),
        "k_a" => (0.8, 1.2),
        "r_k" => std(0.1),
        "x_r" | "x_w" | "x_k" | "x_v" | "x_a" | "x_g" => (0.0, 1.0),
        "w1" | "a1" | "v1" | "g1" => std(0.1 / (shape[0] as f32).sqrt()),
        "w2" | "a2" | "v2" | "g2" => std(0.1 / (shape[0] as f32).sqrt()),
        _ if key == "emb.weight" => std(0.02),
        _ => std(1.0 / fan_in.sqrt()),
    }
}

/// Random tensors with the official keys and shapes of `cfg`.
pub fn random_tensors(cfg: &Config, seed: u64) -> HashMap<String, Tensor> {
    let mut rng = Lcg::new(seed);
    cfg.tensor_shapes()
        .into_iter()
        .map(|(key, shape)| {
            let (lo, hi) = range(&key, &shape);
            let n = shape.iter().product();
            let data = if lo == hi {
                vec![lo; n]
            } else {
                rng.vec(n, lo, hi)
            };
            let t = Tensor::from_vec(data, shape.as_slice(), &Device::Cpu).unwrap();
            (key, t)
        })
        .collect()
}

/// A model of `cfg` with random weights.
pub fn random_model(cfg: &Config, seed: u64) -> Model {
    let vb = VarBuilder::from_tensors(random_tensors(cfg, seed), DType::F32, &Device::Cpu);
    Model::new(cfg, vb).unwrap()
}
