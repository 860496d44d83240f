//! The differentiable causal attention op alone at the 0.1B shape (12 heads of 64)
//! over one 2048-token sequence: forward, and forward + backward. Twelve times the
//! second against the step time of `suites/train.toml` at 2048 is attention's share of
//! a Llama training step.

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use transformer::attention_grad::causal_attention_train;

fn bench(c: &mut Criterion) {
    let (t, h, d) = (2048, 12, 64);
    let var = || {
        Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, t, h, d), &Device::Cpu).unwrap()).unwrap()
    };
    let (q, k, v) = (var(), var(), var());
    let mut g = c.benchmark_group("attention_train");
    g.sample_size(10);
    g.throughput(Throughput::Elements(t as u64));
    g.bench_function("forward_2048", |b| {
        b.iter(|| causal_attention_train(q.as_tensor(), k.as_tensor(), v.as_tensor()).unwrap())
    });
    g.bench_function("forward_backward_2048", |b| {
        b.iter(|| {
            let y = causal_attention_train(q.as_tensor(), k.as_tensor(), v.as_tensor()).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
