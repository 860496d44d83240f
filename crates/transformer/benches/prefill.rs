//! Prompt processing of the whole 0.1b model (random weights, f32 CPU) at 128 and 512
//! tokens, and one decode step after a 1k prompt.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use transformer::{Config, Logits, Model};

/// Random weights for whatever the model asks for: unit norms, `1/sqrt(fan_in)` linears.
struct Random;

impl SimpleBackend for Random {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if name.ends_with("norm.weight") {
            return Tensor::ones(s, dtype, dev);
        }
        // Uniform on +-sqrt(3 / fan_in): unit-variance outputs, cheaper to draw than normals.
        let a = (3.0 / *s.dims().last().unwrap_or(&1) as f64).sqrt();
        Tensor::rand(-1f32, 1f32, s, dev)?
            .affine(a, 0.0)?
            .to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("no shape for {name}")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

fn model() -> Model {
    let cfg = Config::preset("0.1b").unwrap();
    let vb = VarBuilder::from_backend(Box::new(Random), DType::F32, Device::Cpu);
    Model::new(&cfg, vb).unwrap()
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
