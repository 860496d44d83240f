//! One optimizer step over a [`Differentiable`] model.

use candle_core::{Tensor, Var};
use candle_nn::ParamsAdamW;

use super::{clip::clip_grad_norm, AdamW, Differentiable};
use crate::Result;

/// One training step, as `rwkv-bench train` takes it and the training-cost cell
/// times it: forward, backward, clipping by global norm, AdamW.
pub struct Stepper<'a> {
    model: &'a dyn Differentiable,
    vars: Vec<Var>,
    opt: AdamW,
    clip: f64,
}

impl<'a> Stepper<'a> {
    pub fn new(model: &'a dyn Differentiable, params: ParamsAdamW, clip: f64) -> Result<Self> {
        let named = model.params();
        let vars = named.iter().map(|(_, v)| v.clone()).collect();
        Ok(Self {
            model,
            vars,
            opt: AdamW::new(named, params)?,
            clip,
        })
    }

    pub fn optimizer(&self) -> &AdamW {
        &self.opt
    }

    pub fn optimizer_mut(&mut self) -> &mut AdamW {
        &mut self.opt
    }

    /// Forward, backward, clipping and one AdamW update at learning rate `lr`; returns
    /// (loss, gradient norm before clipping). Non-finite values are returned, not
    /// applied: the parameters change only when both are finite.
    pub fn step(
        &mut self,
        tokens: &Tensor,
        weights: Option<&Tensor>,
        lr: f64,
    ) -> Result<(f64, f64)> {
        let loss = self.model.loss_weighted(tokens, weights)?;
        let value = loss.to_scalar::<f32>()? as f64;
        if !value.is_finite() {
            return Ok((value, f64::NAN));
        }
        let mut grads = loss.backward()?;
        let norm = clip_grad_norm(&mut grads, &self.vars, self.clip)?;
        if norm.is_finite() {
            self.opt.set_learning_rate(lr);
            self.opt.step(&grads)?;
        }
        Ok((value, norm))
    }
}
