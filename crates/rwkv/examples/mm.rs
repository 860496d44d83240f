use candle_core::{Device, Tensor};
use std::time::Instant;
fn time(name: &str, reps: usize, flops: f64, f: &dyn Fn()) {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{name:40} {:9.3} ms  {:7.1} GFLOP/s",
        s * 1e3,
        flops / s / 1e9
    );
}
fn main() {
    let dev = Device::Cpu;
    let m = 512;
    let x = Tensor::randn(0f32, 1.0, (m, 768), &dev).unwrap();
    let w = Tensor::randn(0f32, 1.0, (768, 768), &dev).unwrap();
    time("CxC", 10, 2.0 * (m * 768 * 768) as f64, &|| {
        x.matmul(&w.t().unwrap()).unwrap();
    });
    for d in [32usize, 64, 128] {
        let a = Tensor::randn(0f32, 1.0, (768, d), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, (d, 768), &dev).unwrap();
        let h = Tensor::randn(0f32, 1.0, (m, d), &dev).unwrap();
        time(
            &format!("x@A (768x{d})"),
            20,
            2.0 * (m * 768 * d) as f64,
            &|| {
                x.matmul(&a).unwrap();
            },
        );
        time(
            &format!("h@B ({d}x768)"),
            20,
            2.0 * (m * 768 * d) as f64,
            &|| {
                h.matmul(&b).unwrap();
            },
        );
        let at = a.t().unwrap().contiguous().unwrap();
        time(
            &format!("x@A^T stored (768x{d})"),
            20,
            2.0 * (m * 768 * d) as f64,
            &|| {
                x.matmul(&at.t().unwrap()).unwrap();
            },
        );
    }
}
