//! The fused WKV-7 kernel alone, at the 0.1B shape (12 heads of 64): a prompt chunk
//! and a decode step, for a layer with and without the value residual.

mod common;

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rwkv::wkv::{slot, wkv7, Wkv7, WkvParams};

fn bench(c: &mut Criterion) {
    let (h, n) = (12, 64);
    let width = h * n;
    let mut rng = common::Lcg::new(7);
    let mut params = WkvParams {
        w0: rng.vec(width, -6.0, -1.0),
        a0: rng.vec(width, -1.0, 1.0),
        v0: Some(rng.vec(width, 0.5, 1.5)),
        k_k: rng.vec(width, 0.7, 1.0),
        k_a: rng.vec(width, 0.8, 1.2),
        r_k: rng.vec(width, -0.2, 0.2),
        ln_w: vec![1.0; width],
        ln_b: vec![0.0; width],
    };
    let mut group = c.benchmark_group("wkv7");
    for residual in [true, false] {
        if !residual {
            params.v0 = None;
        }
        let slots = if residual {
            slot::LATER_LAYER
        } else {
            slot::FIRST_LAYER
        };
        for t in [1usize, 512] {
            let inputs = Tensor::from_vec(
                rng.vec(slots * t * width, -1.0, 1.0),
                (slots, 1, t, width),
                &Device::Cpu,
            )
            .unwrap();
            let state = Tensor::from_vec(rng.vec(h * n * n, -0.1, 0.1), (1, h, n, n), &Device::Cpu)
                .unwrap();
            let op = Wkv7::new(h, n, &params);
            group.throughput(Throughput::Elements(t as u64));
            let name = if residual { "later_layer" } else { "layer_0" };
            group.bench_with_input(BenchmarkId::new(name, t), &t, |b, _| {
                b.iter(|| wkv7(&state, &inputs, &op).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
