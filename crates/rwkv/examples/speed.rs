#[path = "../benches/common/mod.rs"]
mod common;
use candle_core::{Device, Tensor};
use rwkv::{Config, Logits, State};
use std::time::Instant;
fn main() {
    let cfg = Config::preset("0.1b").unwrap();
    let mut model = common::random_model(&cfg, 0);
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
    for _ in 0..3 {
        for chunk in [64, 128, 256, 512, 1024] {
            model.set_chunk_len(chunk);
            let mut st = State::new(&cfg, 1, &Device::Cpu).unwrap();
            let t = Instant::now();
            model.forward(&input, &mut st, Logits::Last).unwrap();
            let s = t.elapsed().as_secs_f64();
            print!("chunk {chunk}: {:.0} tok/s  ", t_len as f64 / s);
        }
        println!();
    }
}
