//! Inputs and error measures the kernel tests share.

use candle_core::{Device, Tensor};

/// A `(rows, cols)` matrix of smooth values `f(i * step)`.
pub fn matrix(rows: usize, cols: usize, f: fn(f32) -> f32, step: f32) -> Tensor {
    let v: Vec<f32> = (0..rows * cols).map(|i| f(i as f32 * step)).collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

/// max |got - want| / max |want|.
pub fn relative_error(got: &Tensor, want: &Tensor) -> f32 {
    let max = |t: Tensor| {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    max((got - want).unwrap()) / max(want.clone())
}
