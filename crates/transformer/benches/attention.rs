//! Attention of one decode step over a KV cache of 1k, 4k and 16k positions, and of a
//! 512-position prompt chunk over 2k, at the 0.1b shape (12 heads of 64), f32 CPU:
//! the fused kernel against the portable tensor-op path.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use transformer::sdpa::{causal_attention, causal_attention_tensor_ops};

const HEADS: usize = 12;
const HEAD_DIM: usize = 64;

fn cache(len: usize) -> (Tensor, Tensor) {
    let dev = Device::Cpu;
    let shape = (1, HEADS, len, HEAD_DIM);
    let k = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
    let v = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
    (k, v)
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention_decode");
    g.sample_size(20);
    for depth in [1024, 4096, 16384] {
        let (k, v) = cache(depth);
        let q = Tensor::randn(0f32, 1.0, (1, 1, HEADS, HEAD_DIM), &Device::Cpu).unwrap();
        g.bench_with_input(BenchmarkId::new("fused", depth), &depth, |b, &d| {
            b.iter(|| causal_attention(&q, &k, &v, d).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("tensor_ops", depth), &depth, |b, &d| {
            b.iter(|| causal_attention_tensor_ops(&q, &k, &v, d).unwrap())
        });
    }
    g.finish();
}

fn prompt_chunk(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention_prefill_chunk");
    g.sample_size(10);
    let (t, depth) = (512, 2048);
    let (k, v) = cache(depth);
    let q = Tensor::randn(0f32, 1.0, (1, t, HEADS, HEAD_DIM), &Device::Cpu).unwrap();
    g.bench_function(BenchmarkId::new("fused", depth), |b| {
        b.iter(|| causal_attention(&q, &k, &v, depth).unwrap())
    });
    g.bench_function(BenchmarkId::new("tensor_ops", depth), |b| {
        b.iter(|| causal_attention_tensor_ops(&q, &k, &v, depth).unwrap())
    });
    g.finish();
}

criterion_group!(benches, decode, prompt_chunk);
criterion_main!(benches);
