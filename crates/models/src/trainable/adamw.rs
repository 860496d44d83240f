//! AdamW with decoupled weight decay, the update of candle-nn's `AdamW` (same formula,
//! same defaults), written as one fused pass per tensor and with its moments and step
//! count exposed: candle-nn keeps them private, so a run resumed from a checkpoint
//! would restart its moments from zero.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::ParamsAdamW;
use rayon::prelude::*;

use crate::{Error, Result};

struct Slot {
    key: String,
    var: Var,
    m: Vec<f32>,
    v: Vec<f32>,
    /// Weight decay applies to matrices only (squeezed rank >= 2), as RWKV-LM and
    /// nanoGPT do: never to norms, biases, mixing vectors or decay offsets.
    decay: bool,
}

pub struct AdamW {
    slots: Vec<Slot>,
    step: u64,
    params: ParamsAdamW,
}

/// The optimizer's state, for a checkpoint: the step count and per parameter the
/// first and second moments, in the parameter's shape.
pub struct State {
    pub step: u64,
    pub moments: Vec<(String, Tensor, Tensor)>,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, params: ParamsAdamW) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(key, var)| {
                if var.dtype() != DType::F32 {
                    return Err(Error::Unsupported(format!(
                        "AdamW: parameter `{key}` is {:?}; training runs in f32",
                        var.dtype()
                    )));
                }
                let n = var.elem_count();
                let decay = var.dims().iter().filter(|&&d| d > 1).count() >= 2;
                Ok(Slot {
                    key,
                    var,
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                    decay,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            step: 0,
            params,
        })
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// One update; parameters without a gradient in `grads` are left as they are.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let p = &self.params;
        let (b1, b2, eps, lr) = (p.beta1, p.beta2, p.eps, p.lr);
        let scale_m = 1.0 / (1.0 - b1.powi(self.step as i32));
        let scale_v = 1.0 / (1.0 - b2.powi(self.step as i32));
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            let mut theta = slot.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let shrink = if slot.decay {
                1.0 - lr * p.weight_decay
            } else {
                1.0
            };
            theta
                .par_iter_mut()
                .zip(slot.m.par_iter_mut())
                .zip(slot.v.par_iter_mut())
                .zip(g.par_iter())
                .with_min_len(4096)
                .for_each(|(((t, m), v), &g)| {
                    let g = g as f64;
                    let nm = b1 * *m as f64 + (1.0 - b1) * g;
                    let nv = b2 * *v as f64 + (1.0 - b2) * g * g;
                    *m = nm as f32;
                    *v = nv as f32;
                    let update = (nm * scale_m) / ((nv * scale_v).sqrt() + eps);
                    *t = (*t as f64 * shrink - lr * update) as f32;
                });
            let t = Tensor::from_vec(theta, slot.var.shape(), slot.var.device())?;
            slot.var.set(&t)?;
        }
        Ok(())
    }

    pub fn state(&self) -> Result<State> {
        let moments = self
            .slots
            .iter()
            .map(|s| {
                let (shape, dev) = (s.var.shape(), s.var.device());
                Ok((
                    s.key.clone(),
                    Tensor::from_slice(&s.m, shape, dev)?,
                    Tensor::from_slice(&s.v, shape, dev)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(State {
            step: self.step,
            moments,
        })
    }

    /// Restores a state taken from an optimizer over the same parameters.
    pub fn load_state(&mut self, state: State) -> Result<()> {
        let mut by_key: std::collections::HashMap<String, (Tensor, Tensor)> = state
            .moments
            .into_iter()
            .map(|(k, m, v)| (k, (m, v)))
            .collect();
        for slot in &mut self.slots {
            let (m, v) = by_key.remove(&slot.key).ok_or_else(|| {
                Error::Unsupported(format!("optimizer state has no moments for `{}`", slot.key))
            })?;
            if m.dims() != slot.var.dims() || v.dims() != slot.var.dims() {
                return Err(Error::Unsupported(format!(
                    "optimizer state for `{}` has shape {:?}, the parameter {:?}",
                    slot.key,
                    m.dims(),
                    slot.var.dims()
                )));
            }
            slot.m = m.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            slot.v = v.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        }
        if let Some(extra) = by_key.keys().next() {
            return Err(Error::Unsupported(format!(
                "optimizer state has moments for `{extra}`, which the model does not have"
            )));
        }
        self.step = state.step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::Optimizer;

    fn quadratic_grads(var: &Var) -> GradStore {
        let loss = (var.as_tensor() - 0.5)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        loss.backward().unwrap()
    }

    /// The same update as candle-nn's AdamW, step for step, where both decay.
    #[test]
    fn matches_candle_nn_adamw() {
        let dev = Device::Cpu;
        let init: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        let params = ParamsAdamW {
            lr: 0.05,
            weight_decay: 0.1,
            ..Default::default()
        };
        let a = Var::from_vec(init.clone(), (4, 6), &dev).unwrap();
        let b = Var::from_vec(init, (4, 6), &dev).unwrap();
        let mut ours = AdamW::new(vec![("w".into(), a.clone())], params.clone()).unwrap();
        let mut theirs = candle_nn::AdamW::new(vec![b.clone()], params).unwrap();
        for _ in 0..20 {
            ours.step(&quadratic_grads(&a)).unwrap();
            theirs.step(&quadratic_grads(&b)).unwrap();
        }
        let d = (a.as_tensor() - b.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "max |Δ| {d}");
    }

    /// Twenty steps equal ten, a state round trip into a new optimizer, and ten more.
    #[test]
    fn resumes_exactly_from_its_state() {
        let dev = Device::Cpu;
        let params = ParamsAdamW {
            lr: 0.03,
            ..Default::default()
        };
        let init: Vec<f32> = (0..10).map(|i| i as f32 * 0.1).collect();
        let a = Var::from_vec(init.clone(), (2, 5), &dev).unwrap();
        let mut one = AdamW::new(vec![("w".into(), a.clone())], params.clone()).unwrap();
        for _ in 0..20 {
            one.step(&quadratic_grads(&a)).unwrap();
        }
        let b = Var::from_vec(init, (2, 5), &dev).unwrap();
        let mut first = AdamW::new(vec![("w".into(), b.clone())], params.clone()).unwrap();
        for _ in 0..10 {
            first.step(&quadratic_grads(&b)).unwrap();
        }
        let state = first.state().unwrap();
        let mut second = AdamW::new(vec![("w".into(), b.clone())], params).unwrap();
        second.load_state(state).unwrap();
        for _ in 0..10 {
            second.step(&quadratic_grads(&b)).unwrap();
        }
        assert_eq!(
            a.as_tensor().to_vec2::<f32>().unwrap(),
            b.as_tensor().to_vec2::<f32>().unwrap()
        );
    }
}
