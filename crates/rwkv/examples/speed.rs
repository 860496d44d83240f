#[path = "../benches/common/mod.rs"]
mod common;
use candle_core::{Device, Tensor};
use rwkv::{Config, Logits, State};
use std::time::Instant;
fn main() {
    let cfg = Config::preset("0.1b").unwrap();
    let model = common::random_model(&cfg, 0);
    let t_len: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(2048);
    let mut rng = common::Lcg::new(3);
    let toks: Vec<u32> = (0..t_len)
        .map(|_| rng.uniform(0.0, 65535.0) as u32)
        .collect();
    let input = Tensor::new(toks.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    for _ in 0..2 {
        let mut st = State::new(&cfg, 1, &Device::Cpu).unwrap();
        let t = Instant::now();
        model.forward(&input, &mut st, Logits::Last).unwrap();
        let s = t.elapsed().as_secs_f64();
        println!(
            "prefill T={t_len}: {:.3}s  {:.1} tok/s",
            s,
            t_len as f64 / s
        );
        let t = Instant::now();
        for i in 0..10 {
            let x = Tensor::new(&[[toks[i]]], &Device::Cpu).unwrap();
            model.forward(&x, &mut st, Logits::Last).unwrap();
        }
        println!("decode: {:.2} ms/token", t.elapsed().as_secs_f64() * 100.0);
    }
}
