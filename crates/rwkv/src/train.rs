//! RWKV-7 for training: the forward of [`crate::Model`] written in differentiable candle
//! ops over whole sequences (zero initial state), with the recurrence as the custom op
//! of [`crate::wkv_grad`], and every parameter a [`Var`] under its official key.
//!
//! The numerics are the inference path's, formula for formula (the decay
//! `exp(-0.606531·sigmoid(w0 + ..))`, the key normalisation's `1e-12`, GroupNorm's
//! `64e-5`, layer norms' `1e-5`); only the order of floating-point sums differs.

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var, D};

use crate::config::Config;
use crate::load::Checkpoint;
use crate::wkv_grad::wkv7_train;
use crate::{Error, Result};

/// Same constants as the inference kernels (see `wkv.rs`).
const DECAY_SCALE: f64 = 0.606_531;
const GROUP_NORM_EPS: f64 = 64e-5;
const NORMALIZE_EPS: f64 = 1e-12;
const LAYER_NORM_EPS: f64 = 1e-5;

/// An RWKV-7 model whose parameters are trainable variables.
pub struct Trainable {
    cfg: Config,
    /// In [`Config::tensor_shapes`] order, f32, checkpoint shapes; layer 0's unused
    /// `v0`/`v1`/`v2` are not among them.
    vars: Vec<(String, Var)>,
    index: HashMap<String, usize>,
    /// Tensors of the checkpoint the loss does not use (layer 0's `v0`/`v1`/`v2`),
    /// kept so that a saved checkpoint has every key the original had.
    unused: Vec<(String, Tensor)>,
}

impl Trainable {
    /// Takes the checkpoint's tensors as the initial values.
    pub fn from_checkpoint(ckpt: Checkpoint) -> Result<Self> {
        let Checkpoint {
            config,
            mut tensors,
            path,
        } = ckpt;
        let mut vars = Vec::new();
        let mut unused = Vec::new();
        for (key, _) in config.tensor_shapes() {
            if let Some(t) = tensors.remove(&key) {
                let t = t.to_dtype(DType::F32)?;
                if Config::is_optional(&key) {
                    unused.push((key, t));
                } else {
                    vars.push((key, Var::from_tensor(&t)?));
                }
            } else if !Config::is_optional(&key) {
                return Err(Error::checkpoint(
                    &path,
                    format!("tensor `{key}` is missing"),
                ));
            }
        }
        let index = vars
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        Ok(Self {
            cfg: config,
            vars,
            index,
            unused,
        })
    }

    /// Writes every tensor under its official key, f32, as a safetensors file that
    /// [`Checkpoint::load`] reads back.
    pub fn save_safetensors(&self, path: &std::path::Path) -> Result<()> {
        let mut all: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        all.extend(self.unused.iter().cloned());
        candle_core::safetensors::save(&all, path)?;
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The parameters, under their official keys.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    fn p(&self, key: &str) -> Result<&Tensor> {
        self.index
            .get(key)
            .map(|&i| self.vars[i].1.as_tensor())
            .ok_or_else(|| Error::Input(format!("no parameter `{key}`")))
    }

    /// A `[1, 1, C]` or `[C]` parameter as `[C]`.
    fn vector(&self, key: &str) -> Result<Tensor> {
        Ok(self.p(key)?.flatten_all()?)
    }

    /// The final layer norm's output, before the head.
    ///
    /// # Shapes
    /// `tokens (B, T)` u32 -> `(B, T, C)`.
    pub fn hidden(&self, tokens: &Tensor) -> Result<Tensor> {
        let (batch, seq) = tokens.dims2()?;
        let max = tokens.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if batch == 0 || seq == 0 || max as usize >= self.cfg.vocab {
            return Err(Error::Input(format!(
                "tokens of shape {:?} (largest {max}) for a vocabulary of {}",
                tokens.dims(),
                self.cfg.vocab
            )));
        }
        let emb = self.p("emb.weight")?;
        let x = emb.embedding(&tokens.flatten_all()?)?;
        let mut x = self.layer_norm(&x, "blocks.0.ln0")?;
        let mut v_first = None;
        for i in 0..self.cfg.layers {
            let b = format!("blocks.{i}");
            let att = self.time_mix(
                &self.layer_norm(&x, &format!("{b}.ln1"))?,
                i,
                batch,
                &mut v_first,
            )?;
            x = (x + att)?;
            let ffn = self.channel_mix(&self.layer_norm(&x, &format!("{b}.ln2"))?, i, batch)?;
            x = (x + ffn)?;
        }
        let x = self.layer_norm(&x, "ln_out")?;
        Ok(x.reshape((batch, seq, self.cfg.width))?)
    }

    /// The output head `head.weight`, `[V, C]`.
    pub fn head(&self) -> Result<&Tensor> {
        self.p("head.weight")
    }

    /// # Shapes
    /// `tokens (B, T)` u32 -> logits `(B, T, V)`.
    pub fn logits(&self, tokens: &Tensor) -> Result<Tensor> {
        let hidden = self.hidden(tokens)?;
        Ok(hidden.broadcast_matmul(&self.head()?.t()?)?)
    }

    /// `(x - mean) / sqrt(var + eps) · weight + bias` over the last dimension.
    fn layer_norm(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let (w, b) = (
            self.p(&format!("{name}.weight"))?,
            self.p(&format!("{name}.bias"))?,
        );
        normalize_last(x, LAYER_NORM_EPS)?
            .broadcast_mul(w)?
            .broadcast_add(b)
            .map_err(Error::from)
    }

    /// `x + (x_prev - x) · mix` for each row of a `[B*T, C]` input, `x_prev` the
    /// previous token of the same sequence (zero before the first).
    fn shift_mix(&self, x: &Tensor, batch: usize, mix: &str) -> Result<Tensor> {
        let (rows, c) = x.dims2()?;
        let seq = rows / batch;
        let x3 = x.reshape((batch, seq, c))?;
        let prev = x3.pad_with_zeros(1, 1, 0)?.narrow(1, 0, seq)?;
        let xx = (prev - &x3)?.reshape((rows, c))?;
        Ok((x + xx.broadcast_mul(&self.vector(mix)?)?)?)
    }

    fn linear(&self, x: &Tensor, key: &str) -> Result<Tensor> {
        Ok(x.matmul(&self.p(key)?.t()?)?)
    }

    /// `x @ w1 @ w2` with the LoRA pair stored `[C, D]`, `[D, C]`.
    fn lora(
        &self,
        x: &Tensor,
        prefix: &str,
        inner: impl Fn(Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let h = inner(x.matmul(self.p(&format!("{prefix}1"))?)?)?;
        Ok(h.matmul(self.p(&format!("{prefix}2"))?)?)
    }

    fn time_mix(
        &self,
        x: &Tensor,
        layer: usize,
        batch: usize,
        v_first: &mut Option<Tensor>,
    ) -> Result<Tensor> {
        let (rows, c) = x.dims2()?;
        let (h, n) = (self.cfg.heads, self.cfg.head_size);
        let a = format!("blocks.{layer}.att");
        let key = |s: &str| format!("{a}.{s}");
        let mixed = |m: &str| self.shift_mix(x, batch, &key(m));
        let r = self.linear(&mixed("x_r")?, &key("receptance.weight"))?;
        let k = self.linear(&mixed("x_k")?, &key("key.weight"))?;
        let mut v = self.linear(&mixed("x_v")?, &key("value.weight"))?;
        let decay = self.lora(&mixed("x_w")?, &key("w"), |t| Ok(t.tanh()?))?;
        let iclr = self.lora(&mixed("x_a")?, &key("a"), Ok)?;
        let gate = self.lora(&mixed("x_g")?, &key("g"), |t| {
            Ok(candle_nn::ops::sigmoid(&t)?)
        })?;
        let w = (candle_nn::ops::sigmoid(&decay.broadcast_add(&self.vector(&key("w0"))?)?)?
            * -DECAY_SCALE)?
            .exp()?;
        let iclr = candle_nn::ops::sigmoid(&iclr.broadcast_add(&self.vector(&key("a0"))?)?)?;
        let per_head = |t: &Tensor| t.reshape((rows, h, n));
        let kk = per_head(&k.broadcast_mul(&self.vector(&key("k_k"))?)?)?;
        let norm = kk
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .maximum(NORMALIZE_EPS)?;
        let kk = kk.broadcast_div(&norm)?.reshape((rows, c))?;
        let k_a = self.vector(&key("k_a"))?;
        let k = (&k * ((iclr.clone() - 1.0)?.broadcast_mul(&k_a)? + 1.0)?)?;
        match v_first {
            None => *v_first = Some(v.clone()),
            Some(first) => {
                let mix = self.lora(&mixed("x_v")?, &key("v"), Ok)?;
                let mix = candle_nn::ops::sigmoid(&mix.broadcast_add(&self.vector(&key("v0"))?)?)?;
                v = (&v + ((first.clone() - &v)? * mix)?)?;
            }
        }
        let seq = rows / batch;
        let bt = |t: &Tensor| t.reshape((batch, seq, c));
        let y = wkv7_train(
            [
                &bt(&r)?,
                &bt(&w)?,
                &bt(&k)?,
                &bt(&v)?,
                &bt(&kk.neg()?)?,
                &bt(&(&kk * &iclr)?)?,
            ],
            h,
            n,
        )?
        .reshape((rows, h, n))?;
        let y = normalize_last(&y, GROUP_NORM_EPS)?
            .reshape((rows, c))?
            .broadcast_mul(self.p(&key("ln_x.weight"))?)?
            .broadcast_add(self.p(&key("ln_x.bias"))?)?;
        let r_k = self.vector(&key("r_k"))?;
        let bonus = per_head(&(&r * &k)?.broadcast_mul(&r_k)?)?.sum_keepdim(D::Minus1)?;
        let bonus = per_head(&v)?.broadcast_mul(&bonus)?.reshape((rows, c))?;
        self.linear(&((y + bonus)? * gate)?, &key("output.weight"))
    }

    fn channel_mix(&self, x: &Tensor, layer: usize, batch: usize) -> Result<Tensor> {
        let f = format!("blocks.{layer}.ffn");
        let k = self.linear(
            &self.shift_mix(x, batch, &format!("{f}.x_k"))?,
            &format!("{f}.key.weight"),
        )?;
        self.linear(&k.relu()?.sqr()?, &format!("{f}.value.weight"))
    }
}

/// `(x - mean) / sqrt(var + eps)` over the last dimension (biased variance).
fn normalize_last(x: &Tensor, eps: f64) -> Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(centred.broadcast_div(&(var + eps)?.sqrt()?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Logits, Model, State};
    use candle_core::Device;
    use candle_nn::VarBuilder;

    /// The differentiable forward computes what the inference forward computes.
    #[test]
    fn logits_match_the_inference_model() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = Config::tiny();
        let mut seed = 3u64;
        let tensors: HashMap<String, Tensor> = cfg
            .tensor_shapes()
            .into_iter()
            .map(|(k, s)| {
                let n: usize = s.iter().product();
                let data: Vec<f32> = (0..n)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.6
                    })
                    .collect();
                Ok((k, Tensor::from_vec(data, s, &dev)?))
            })
            .collect::<Result<_>>()?;
        let model = Model::new(
            &cfg,
            VarBuilder::from_tensors(tensors.clone(), DType::F32, &dev),
        )?;
        let trainable = Trainable::from_checkpoint(Checkpoint {
            path: "random".into(),
            config: cfg,
            tensors,
        })?;
        let tokens = Tensor::new(
            &[[1u32, 5, 2, 7, 3, 3, 0, 9, 4], [2, 2, 8, 1, 0, 6, 5, 4, 3]],
            &dev,
        )?;
        let want = model.forward(&tokens, &mut State::new(&cfg, 2, &dev)?, Logits::All)?;
        let got = trainable.logits(&tokens)?;
        let diff: f32 = (got - want)?.abs()?.flatten_all()?.max(0)?.to_scalar()?;
        assert!(diff < 1e-4, "max |Δlogits| {diff}");
        Ok(())
    }
}
