//! Full-model benchmarks of the 0.1B preset (random weights, f32):
//!
//! - `prefill/rwkv7/2048`: a 2048-token prompt, logits of the last position.
//! - `prefill/matmuls_only/2048`: only the matrix products that prompt performs, same
//!   shapes, same candle calls. The ratio of the two times is the share of candle's
//!   matmul GFLOP/s the model reaches (the goal: at least 60 %).
//! - `decode/rwkv7`: one decode step (logits included) after a 128-token prompt.
//!
//! `cargo bench -p rwkv-bench-rwkv --bench prefill` takes a few minutes on 2 cores.

mod common;

use std::time::Duration;

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rwkv::{Config, Logits, State};

const PROMPT: usize = 2048;

fn tokens(n: usize, vocab: usize) -> Tensor {
    let mut rng = common::Lcg::new(11);
    let ids: Vec<u32> = (0..n)
        .map(|_| rng.uniform(0.0, vocab as f32 - 1.0) as u32)
        .collect();
    Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

/// Weight-matrix shapes `(rows, cols)` of one layer's products, each applied as
/// `x [chunk, cols] @ [rows, cols]ᵀ` (`nn.Linear` layout) or `x @ [rows, cols]` (LoRA).
fn layer_products(cfg: &Config) -> (Vec<(usize, usize)>, Vec<(usize, usize)>) {
    let (c, f, l) = (cfg.width, cfg.ffn, cfg.lora);
    let linear = vec![(c, c), (c, c), (c, c), (c, c), (f, c), (c, f)];
    let mut lora = Vec::new();
    for d in [l.decay, l.iclr, l.value, l.gate] {
        lora.push((c, d));
        lora.push((d, c));
    }
    (linear, lora)
}

fn bench(c: &mut Criterion) {
    let cfg = Config::preset("0.1b").unwrap();
    let mut model = common::random_model(&cfg, 0);
    let prompt = tokens(PROMPT, cfg.vocab);

    let mut group = c.benchmark_group("prefill");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(PROMPT as u64));
    group.bench_function(BenchmarkId::new("rwkv7", PROMPT), |b| {
        b.iter(|| {
            let mut state = State::new(&cfg, 1, &Device::Cpu).unwrap();
            model.forward(&prompt, &mut state, Logits::Last).unwrap()
        })
    });

    let chunk = model.chunk_len().min(PROMPT);
    let (linear, lora) = layer_products(&cfg);
    let mut rng = common::Lcg::new(5);
    let mut weight = |(r, k): (usize, usize)| {
        Tensor::from_vec(rng.vec(r * k, -0.03, 0.03), (r, k), &Device::Cpu).unwrap()
    };
    let linear: Vec<Tensor> = linear.into_iter().map(&mut weight).collect();
    let lora: Vec<Tensor> = lora.into_iter().map(&mut weight).collect();
    let x =
        |cols: usize| Tensor::ones((chunk, cols), candle_core::DType::F32, &Device::Cpu).unwrap();
    let inputs: Vec<Tensor> = linear.iter().map(|w| x(w.dim(1).unwrap())).collect();
    let lora_inputs: Vec<Tensor> = lora.iter().map(|w| x(w.dim(0).unwrap())).collect();
    group.bench_function(BenchmarkId::new("matmuls_only", PROMPT), |b| {
        b.iter(|| {
            for _ in 0..PROMPT / chunk * cfg.layers {
                for (x, w) in inputs.iter().zip(&linear) {
                    x.matmul(&w.t().unwrap()).unwrap();
                }
                for (x, w) in lora_inputs.iter().zip(&lora) {
                    x.matmul(w).unwrap();
                }
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("decode");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    let mut state = State::new(&cfg, 1, &Device::Cpu).unwrap();
    model.set_chunk_len(128);
    model
        .forward(&tokens(128, cfg.vocab), &mut state, Logits::Last)
        .unwrap();
    let next = tokens(1, cfg.vocab);
    group.bench_function("rwkv7", |b| {
        b.iter(|| model.forward(&next, &mut state, Logits::Last).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
