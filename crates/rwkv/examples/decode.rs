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
    let umodel = if std::env::var("OURS_ONLY").is_ok() {
        None
    } else {
        Some(
            up::Model::new(
                &ucfg,
                VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
            )
            .unwrap(),
        )
    };
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(30);
    for _ in 0..3 {
        let mut st = State::new(&cfg, 1, &Device::Cpu).unwrap();
        let t = Instant::now();
        for i in 0..n {
            let x = Tensor::new(&[[(i * 7919 % 65536) as u32]], &Device::Cpu).unwrap();
            model.forward(&x, &mut st, Logits::Last).unwrap();
        }
        let ours = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        let Some(umodel) = &umodel else {
            println!("ours {ours:.2}");
            continue;
        };
        let mut ust = up::State::new(&ucfg, &Device::Cpu).unwrap();
        let t = Instant::now();
        for i in 0..n {
            let tok = (i * 7919 % 65536) as u32;
            let x = Tensor::new(&[[tok]], &Device::Cpu).unwrap();
            umodel.forward(&x, &mut ust, &[tok]).unwrap();
        }
        let theirs = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        println!(
            "decode ms/token: ours {ours:.2}  upstream {theirs:.2}  ratio {:.2}",
            ours / theirs
        );
    }
}
