#[path = "../benches/common/mod.rs"]
mod common;
use candle_core::{Device, Tensor};
use rwkv::{Config, Logits, State};
fn main() {
    let cfg = Config::preset("0.1b").unwrap();
    let mut model = common::random_model(&cfg, 0);
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(2048);
    let chunk: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(512);
    model.set_chunk_len(chunk);
    let toks: Vec<u32> = (0..n).map(|i| (i * 7919 % 65536) as u32).collect();
    let input = Tensor::new(toks.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    for _ in 0..3 {
        let mut st = State::new(&cfg, 1, &Device::Cpu).unwrap();
        model.forward(&input, &mut st, Logits::Last).unwrap();
    }
}
