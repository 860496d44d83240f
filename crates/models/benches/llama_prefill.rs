//! Prompt processing of the whole 0.1b model (random weights, f32 CPU) at 128 and 512
//! tokens, and one decode step after a 1k prompt.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use models::presets::preset;
use models::synthetic::{llama_specs, materialise};
use transformer::{Logits, Model};

/// The 0.1b preset with the harness's synthetic weights, as `llama:preset=0.1b` gets.
fn model() -> Model {
    let p = preset("0.1b").unwrap();
    let tensors = materialise(&llama_specs(p), 0, DType::F32, &Device::Cpu).unwrap();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    Model::new(&p.llama_config(), vb).unwrap()
}

fn tokens(n: usize) -> Tensor {
    let ids: Vec<u32> = (0..n as u32).map(|i| (i * 7919) % 65536).collect();
    Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

fn prefill(c: &mut Criterion) {
    let model = model();
    let mut g = c.benchmark_group("prefill_0.1b");
    g.sample_size(10);
    for t in [128, 512] {
        let input = tokens(t);
        let mut cache = model.new_cache(1).unwrap();
        g.throughput(criterion::Throughput::Elements(t as u64));
        g.bench_with_input(BenchmarkId::from_parameter(t), &t, |b, _| {
            b.iter(|| {
                cache.reset();
                model.forward(&input, &mut cache, Logits::Last).unwrap()
            })
        });
    }
    g.finish();
}

fn decode_step(c: &mut Criterion) {
    let model = model();
    let mut g = c.benchmark_group("decode_step_0.1b");
    g.sample_size(20);
    let depth = 1024;
    let mut cache = model.new_cache(1).unwrap();
    model
        .forward(&tokens(depth), &mut cache, Logits::Last)
        .unwrap();
    let next = tokens(1);
    g.bench_function(BenchmarkId::new("depth", depth), |b| {
        b.iter(|| {
            // Drop the step's position again, so every sample runs at the same depth.
            cache.truncate(depth);
            model.forward(&next, &mut cache, Logits::Last).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, prefill, decode_step);
criterion_main!(benches);
