//! Gradient clipping by global norm (PyTorch's `clip_grad_norm_`).

use candle_core::backprop::GradStore;
use candle_core::Var;

use crate::Result;

/// The global L2 norm of the gradients of `vars`; where it exceeds `max_norm`, scales
/// every gradient by `max_norm / norm`. Returns the norm before clipping (non-finite
/// when some gradient is).
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut sum = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sum += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = sum.sqrt();
    if norm.is_finite() && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn scales_to_the_max_norm_and_leaves_small_gradients() {
        let dev = Device::Cpu;
        let a = Var::from_vec(vec![3f32, 0.0], 2, &dev).unwrap();
        let b = Var::from_vec(vec![4f32], 1, &dev).unwrap();
        // loss = a·(1,0)·x + b·y with gradients (3, 0) and (4,): norm 5.
        let loss = ((a.as_tensor() * Tensor::new(&[3f32, 0.0], &dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            + (b.as_tensor() * 4.0).unwrap().sum_all().unwrap())
        .unwrap();
        let vars = [a.clone(), b.clone()];
        let mut grads = loss.backward().unwrap();
        let norm = clip_grad_norm(&mut grads, &vars, 10.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        assert_eq!(
            grads.get(b.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            vec![4.0]
        );
        let norm = clip_grad_norm(&mut grads, &vars, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let gb = grads.get(b.as_tensor()).unwrap().to_vec1::<f32>().unwrap()[0];
        assert!((gb - 0.8).abs() < 1e-5, "{gb}");
    }
}
