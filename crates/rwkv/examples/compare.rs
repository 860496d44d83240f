#[path = "../benches/common/mod.rs"]
mod common;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::rwkv_v7 as up;
use rwkv::{Config, Logits, State};
use std::time::Instant;
fn main() {
    let cfg = Config::preset("0.1b").unwrap();
    let tensors = common::random_tensors(&cfg, 0);
    let model = rwkv::Model::new(
        &cfg,
        VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu),
    )
    .unwrap();
    let ucfg = up::Config {
        version: up::ModelVersion::V7,
        vocab_size: cfg.vocab,
        hidden_size: cfg.width,
        num_hidden_layers: cfg.layers,
        head_size: 64,
        intermediate_size: Some(cfg.ffn),
        rescale_every: 0,
    };
    let umodel = up::Model::new(
        &ucfg,
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let mut rng = common::Lcg::new(3);
    let toks: Vec<u32> = (0..2048)
        .map(|_| rng.uniform(0.0, 65535.0) as u32)
        .collect();
    let up_n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(128);
    for _ in 0..2 {
        let input = Tensor::new(toks.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let mut st = State::new(&cfg, 1, &Device::Cpu).unwrap();
        let t = Instant::now();
        model.forward(&input, &mut st, Logits::Last).unwrap();
        let ours = 2048.0 / t.elapsed().as_secs_f64();
        let mut ust = up::State::new(&ucfg, &Device::Cpu).unwrap();
        let t = Instant::now();
        umodel.forward_seq(&toks[..up_n], &mut ust).unwrap();
        let theirs = up_n as f64 / t.elapsed().as_secs_f64();
        println!(
            "prefill tok/s: ours (T=2048) {ours:.1}  upstream (T={up_n}) {theirs:.1}  ratio {:.1}",
            ours / theirs
        );
    }
}
