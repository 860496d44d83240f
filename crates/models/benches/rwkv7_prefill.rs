//! Full-model benchmarks of the 0.1B preset (random weights, f32):
//!
//! - `prefill/rwkv7/2048`: a 2048-token prompt, logits of the last position.
//! - `prefill/matmuls_only/2048`: only the matrix products that prompt performs, same
//!   shapes, same candle calls (layer 0's unused value-residual LoRA included, 0.5 %). The ratio of the two times is the share of candle's
//!   matmul GFLOP/s the model reaches (the goal: at least 60 %).
//! - `decode/rwkv7`: one decode step (logits included) after a 128-token prompt.
//!
//! Weights are the harness's synthetic ones for the preset (`models::synthetic`), the
//! same the `rwkv7:preset=0.1b` spec gets.
//!
//! `cargo bench -p rwkv-bench-models --bench rwkv7_prefill` takes a few minutes on 2 cores.

use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use models::presets::preset;
use models::synthetic::{materialise, rwkv7_specs};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use rwkv::{Config, Logits, Model, State};

const PROMPT: usize = 2048;

fn tokens(n: usize, vocab: usize) -> Tensor {
    let mut rng = SmallRng::seed_from_u64(11);
    let ids: Vec<u32> = (0..n).map(|_| rng.random_range(0..vocab as u32)).collect();
    Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

/// The `nn.Linear`-layout shapes `[out, in]` of one layer's weight matrices; the model
/// applies each as `x [chunk, in] @ wᵀ` (LoRA matrices are stored transposed at load).
fn layer_weights(cfg: &Config) -> Vec<(usize, usize)> {
    let (c, f, l) = (cfg.width, cfg.ffn, cfg.lora);
    let mut shapes = vec![(c, c), (c, c), (c, c), (c, c), (f, c), (c, f)];
    for d in [l.decay, l.iclr, l.value, l.gate] {
        shapes.push((d, c));
        shapes.push((c, d));
    }
    shapes
}

fn bench(c: &mut Criterion) {
    let p = preset("0.1b").unwrap();
    let cfg = p.rwkv_config();
    let tensors = materialise(&rwkv7_specs(p), 0, DType::F32, &Device::Cpu).unwrap();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let mut model = Model::new(&cfg, vb).unwrap();
    let prompt = tokens(PROMPT, cfg.vocab);

    let mut group = c.benchmark_group("prefill");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(60))
        .throughput(Throughput::Elements(PROMPT as u64));
    group.bench_function(BenchmarkId::new("rwkv7", PROMPT), |b| {
        b.iter(|| {
            let mut state = State::new(&cfg, 1, &Device::Cpu).unwrap();
            model.forward(&prompt, &mut state, Logits::Last).unwrap()
        })
    });

    let chunk = model.chunk_len().min(PROMPT);
    let weights: Vec<Tensor> = layer_weights(&cfg)
        .into_iter()
        .map(|(out, inp)| Tensor::rand(-0.03f32, 0.03, (out, inp), &Device::Cpu).unwrap())
        .collect();
    let inputs: Vec<Tensor> = weights
        .iter()
        .map(|w| {
            let inp = w.dim(1).unwrap();
            Tensor::ones((chunk, inp), candle_core::DType::F32, &Device::Cpu).unwrap()
        })
        .collect();
    group.bench_function(BenchmarkId::new("matmuls_only", PROMPT), |b| {
        b.iter(|| {
            for _ in 0..PROMPT / chunk * cfg.layers {
                for (x, w) in inputs.iter().zip(&weights) {
                    x.matmul(&w.t().unwrap()).unwrap();
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
