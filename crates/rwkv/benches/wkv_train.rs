//! The differentiable WKV-7 op alone at the 0.1B shape (12 heads of 64) over one
//! 2048-token sequence: forward only, and forward + backward. Twelve times the second
//! against the step time of `suites/train.toml` at 2048 is the recurrence's share of
//! an RWKV-7 training step.

mod common;

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rwkv::wkv_grad::wkv7_train;

fn bench(c: &mut Criterion) {
    let (h, n, t) = (12, 64, 2048);
    let width = h * n;
    let mut rng = common::Lcg::new(11);
    let mut input = |lo: f32, hi: f32| {
        Var::from_tensor(
            &Tensor::from_vec(rng.vec(t * width, lo, hi), (1, t, width), &Device::Cpu).unwrap(),
        )
        .unwrap()
    };
    // r, w (decay factor in (0, 1)), k, v, a = -kk, b = kk * iclr
    let vars = [
        input(-1.0, 1.0),
        input(0.6, 0.99),
        input(-1.0, 1.0),
        input(-1.0, 1.0),
        input(-0.1, 0.0),
        input(0.0, 0.1),
    ];
    let tensors: Vec<&Tensor> = vars.iter().map(|v| v.as_tensor()).collect();
    let inputs: [&Tensor; 6] = tensors.try_into().unwrap();
    let mut group = c.benchmark_group("wkv7_train");
    group.sample_size(10);
    group.throughput(Throughput::Elements(t as u64));
    group.bench_function("forward_2048", |b| {
        b.iter(|| wkv7_train(inputs, h, n).unwrap())
    });
    group.bench_function("forward_backward_2048", |b| {
        b.iter(|| {
            let y = wkv7_train(inputs, h, n).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
