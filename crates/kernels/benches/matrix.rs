//! One weight matrix of the 0.1B shape (the channel mix's `3072 x 768` key and the
//! `65536 x 768` head) in every storage type: a decode step's product (1 row, bound by
//! the bytes of weights read) and a prompt chunk's (512 rows, bound by arithmetic).
//!
//! `cargo bench --workspace --bench matrix -- --noplot`

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kernels::{Matrix, WeightDtype};

fn values(n: usize, salt: u64) -> Vec<f32> {
    let mut s = salt.wrapping_mul(6364136223846793005) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut group = c.benchmark_group("matrix");
    group.sample_size(20);
    for (name, out, k) in [("ffn_key", 3072, 768), ("head", 65536, 768)] {
        let w = Tensor::from_vec(values(out * k, 1), (out, k), &dev).unwrap();
        for dtype in WeightDtype::ALL {
            let m = Matrix::new(&w, dtype).unwrap();
            for rows in [1usize, 512] {
                if name == "head" && rows > 1 {
                    continue;
                }
                let x = Tensor::from_vec(values(rows * k, 2), (rows, k), &dev).unwrap();
                group.throughput(Throughput::Bytes(m.bytes() as u64));
                group.bench_with_input(
                    BenchmarkId::new(format!("{name}/{dtype}"), rows),
                    &x,
                    |b, x| b.iter(|| m.forward(x).unwrap()),
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
