//! The roofline calibration, run in a child process like a cell (so it gets the cells'
//! threads): candle's matmul GFLOP/s at the suite models' prefill shapes, and the
//! memory read bandwidth over a buffer far larger than the caches.

use std::time::Instant;

use candle_core::{Device, Tensor};
use models::Result;
use results::roofline::{MatmulPoint, Roofline};
use results::suite::Dtype;
use serde::{Deserialize, Serialize};

/// What to calibrate: the widths of the suite's models (`dtype` is recorded; the
/// products are f32, as the models compute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationPlan {
    pub widths: Vec<usize>,
    pub dtype: Dtype,
}

/// Rows of a calibrated product: the prefill chunk both model crates multiply by.
const ROWS: usize = 512;
/// Inner widths per model width: the attention/time-mix projections (`d x d`) and the
/// MLP/channel-mix ones (`d x 4d`).
const FANOUT: [usize; 2] = [1, 4];
const MATMUL_REPS: usize = 5;
/// 512 MiB: beyond any last-level cache, and an f32 0.1B model's size.
const READ_BUFFER_BYTES: usize = 512 << 20;
const READ_REPS: usize = 4;

fn best_seconds(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn matmul_point(m: usize, k: usize, n: usize) -> Result<MatmulPoint> {
    let dev = Device::Cpu;
    // Our models multiply in f32 whatever their weights are stored in (16-bit weights
    // are widened, quantised ones run candle's integer kernels): f32 is the peak a
    // prefill is compared with.
    let a = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
    let b = Tensor::randn(0f32, 1.0, (k, n), &dev)?;
    let s = best_seconds(MATMUL_REPS, || {
        a.matmul(&b)?;
        Ok(())
    })?;
    Ok(MatmulPoint {
        m,
        k,
        n,
        gflops: 2.0 * (m * k * n) as f64 / s / 1e9,
    })
}

#[inline(always)]
fn sum_body(xs: &[f32], out: &mut f32) {
    *out = kernels::sum(xs);
}

kernels::dispatch!(
    /// The sum compiled for the widest vectors the CPU has, as the models' decode
    /// kernels are: a baseline SSE2 loop issues too few loads per cycle to keep a
    /// core's share of the memory bus busy, and understated the bandwidth (decode
    /// steps read "more than 100 %" of it).
    fn sum_into(xs: &[f32], out: &mut f32) => sum_body
);

/// Read bandwidth with `threads` threads, each summing its own slice (a sum touches
/// every byte once and is cheap enough to be memory-bound).
fn read_gb_s(threads: usize) -> f64 {
    let buf = vec![1.0f32; READ_BUFFER_BYTES / 4];
    let chunk = buf.len().div_ceil(threads.max(1));
    let sum_all = || -> f32 {
        std::thread::scope(|s| {
            let parts: Vec<_> = buf
                .chunks(chunk)
                .map(|c| {
                    s.spawn(move || {
                        let mut total = 0.0;
                        sum_into(c, &mut total);
                        total
                    })
                })
                .collect();
            parts.into_iter().map(|p| p.join().unwrap_or(0.0)).sum()
        })
    };
    let seconds = best_seconds(READ_REPS, || {
        std::hint::black_box(sum_all());
        Ok(())
    })
    .unwrap_or(f64::INFINITY);
    READ_BUFFER_BYTES as f64 / seconds / 1e9
}

/// Measures the roofline; takes about a second on two cores.
pub fn calibrate(plan: &CalibrationPlan) -> Result<Roofline> {
    let started = Instant::now();
    let threads = candle_core::utils::get_num_threads();
    let mut widths = plan.widths.clone();
    widths.sort_unstable();
    widths.dedup();
    let mut matmul = Vec::new();
    for &d in &widths {
        for f in FANOUT {
            matmul.push(matmul_point(ROWS, d, f * d)?);
        }
    }
    let matmul_gflops = matmul.iter().map(|p| p.gflops).fold(0.0, f64::max);
    Ok(Roofline {
        matmul_gflops,
        matmul,
        read_gb_s: read_gb_s(threads),
        read_buffer_bytes: READ_BUFFER_BYTES as u64,
        threads,
        dtype: plan.dtype.name().into(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
