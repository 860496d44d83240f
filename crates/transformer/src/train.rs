//! The Llama-family decoder for training: the forward of [`crate::Model`] in
//! differentiable candle ops over whole sequences, attention through the O(T)-memory
//! op of [`crate::attention_grad`], every parameter a [`Var`] under its Hugging Face
//! key (tied embeddings: one `model.embed_tokens.weight` used twice).

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::VarBuilder;

use crate::attention_grad::causal_attention_train;
use crate::config::Config;
use crate::load::Checkpoint;
use crate::rope::Rope;
use crate::{Error, Result};

pub struct Trainable {
    cfg: Config,
    /// In checkpoint order (embeddings, layers, final norm, head).
    vars: Vec<(String, Var)>,
    rope: Rope,
}

impl Trainable {
    /// Every tensor of a checkpoint of this config, with its shape.
    pub fn tensor_shapes(cfg: &Config) -> Vec<(String, Vec<usize>)> {
        let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
        let (q, kv) = (
            cfg.num_attention_heads * cfg.head_dim,
            cfg.num_key_value_heads * cfg.head_dim,
        );
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            vec![cfg.vocab_size, d],
        )];
        for i in 0..cfg.num_hidden_layers {
            let l = format!("model.layers.{i}");
            let mut push = |k: &str, s: Vec<usize>| out.push((format!("{l}.{k}"), s));
            push("input_layernorm.weight", vec![d]);
            for (name, rows, bias) in [
                ("q_proj", q, cfg.qkv_bias),
                ("k_proj", kv, cfg.qkv_bias),
                ("v_proj", kv, cfg.qkv_bias),
            ] {
                push(&format!("self_attn.{name}.weight"), vec![rows, d]);
                if bias {
                    push(&format!("self_attn.{name}.bias"), vec![rows]);
                }
            }
            push("self_attn.o_proj.weight", vec![d, q]);
            if cfg.o_bias {
                push("self_attn.o_proj.bias", vec![d]);
            }
            push("post_attention_layernorm.weight", vec![d]);
            for (name, shape, bias) in [
                ("gate_proj", vec![f, d], f),
                ("up_proj", vec![f, d], f),
                ("down_proj", vec![d, f], d),
            ] {
                push(&format!("mlp.{name}.weight"), shape);
                if cfg.mlp_bias {
                    push(&format!("mlp.{name}.bias"), vec![bias]);
                }
            }
        }
        out.push(("model.norm.weight".into(), vec![d]));
        if !cfg.tie_word_embeddings {
            out.push(("lm_head.weight".into(), vec![cfg.vocab_size, d]));
        }
        out
    }

    /// Reads every parameter through `vb` (which checks shapes) as f32.
    pub fn new(cfg: &Config, vb: &VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vars = Self::tensor_shapes(cfg)
            .into_iter()
            .map(|(k, s)| {
                let t = vb.get(s.as_slice(), &k)?.to_dtype(DType::F32)?;
                Ok((k, Var::from_tensor(&t)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            vars,
            rope: Rope::new(cfg),
        })
    }

    /// From a Hugging Face directory (`config.json` and safetensors).
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let cfg = Config::from_file(&dir.join("config.json"))?;
        let vb = Checkpoint::open(dir)?.into_var_builder(DType::F32, device);
        Self::new(&cfg, &vb)
    }

    /// Writes `config.json` and `model.safetensors` (f32, Hugging Face keys; no
    /// `lm_head.weight` when tied) into `dir`, a directory [`Trainable::load_dir`] and
    /// transformers' `from_pretrained` read back.
    pub fn save_dir(&self, dir: &Path) -> Result<()> {
        let cfg = serde_json::to_string_pretty(&self.cfg.to_hf_json())
            .map_err(|e| Error::Unsupported(format!("config.json: {e}")))?;
        let path = dir.join("config.json");
        std::fs::write(&path, cfg + "\n").map_err(|e| Error::io(&path, e))?;
        let tensors: std::collections::HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    fn p(&self, key: &str) -> Result<&Tensor> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_tensor())
            .ok_or_else(|| Error::Unsupported(format!("no parameter `{key}`")))
    }

    fn linear(&self, x: &Tensor, prefix: &str) -> Result<Tensor> {
        let y = x.matmul(&self.p(&format!("{prefix}.weight"))?.t()?)?;
        match self.p(&format!("{prefix}.bias")) {
            Ok(b) => Ok(y.broadcast_add(b)?),
            Err(_) => Ok(y),
        }
    }

    fn rms_norm(&self, x: &Tensor, key: &str) -> Result<Tensor> {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        let x = x.broadcast_div(&(ms + self.cfg.rms_norm_eps)?.sqrt()?)?;
        Ok(x.broadcast_mul(self.p(key)?)?)
    }

    /// The final norm's output, before the head.
    ///
    /// # Shapes
    /// `tokens (B, T)` u32 -> `(B, T, D)`.
    pub fn hidden(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let c = &self.cfg;
        let (h, hkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let max = tokens.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if b == 0 || t == 0 || max as usize >= c.vocab_size {
            return Err(Error::Unsupported(format!(
                "tokens of shape {:?} (largest {max}) for a vocabulary of {}",
                tokens.dims(),
                c.vocab_size
            )));
        }
        let rope = self.rope.tables(0, t, DType::F32, tokens.device())?;
        let (cos, sin) = (
            rope.cos.reshape((1, t, 1, hd / 2))?,
            rope.sin.reshape((1, t, 1, hd / 2))?,
        );
        // rotate_half: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin).
        let rotate = |x: Tensor| -> Result<Tensor> {
            let (x1, x2) = (x.narrow(3, 0, hd / 2)?, x.narrow(3, hd / 2, hd / 2)?);
            let a = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
            let bb = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
            Ok(Tensor::cat(&[a, bb], 3)?)
        };
        let mut x = self
            .p("model.embed_tokens.weight")?
            .embedding(&tokens.flatten_all()?)?;
        for i in 0..c.num_hidden_layers {
            let l = format!("model.layers.{i}");
            let xn = self.rms_norm(&x, &format!("{l}.input_layernorm.weight"))?;
            let proj = |name: &str, heads: usize| -> Result<Tensor> {
                Ok(self
                    .linear(&xn, &format!("{l}.self_attn.{name}"))?
                    .reshape((b, t, heads, hd))?)
            };
            let q = rotate(proj("q_proj", h)?)?;
            let k = rotate(proj("k_proj", hkv)?)?;
            let v = proj("v_proj", hkv)?;
            let y = causal_attention_train(&q, &k, &v)?.reshape((b * t, h * hd))?;
            x = (x + self.linear(&y, &format!("{l}.self_attn.o_proj"))?)?;
            let xn = self.rms_norm(&x, &format!("{l}.post_attention_layernorm.weight"))?;
            let gate = candle_nn::ops::silu(&self.linear(&xn, &format!("{l}.mlp.gate_proj"))?)?;
            let up = self.linear(&xn, &format!("{l}.mlp.up_proj"))?;
            x = (x + self.linear(&(gate * up)?, &format!("{l}.mlp.down_proj"))?)?;
        }
        let x = self.rms_norm(&x, "model.norm.weight")?;
        Ok(x.reshape((b, t, c.hidden_size))?)
    }

    /// The output head, `[V, D]`: `lm_head.weight`, or the embeddings when tied.
    pub fn head(&self) -> Result<&Tensor> {
        self.p(if self.cfg.tie_word_embeddings {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        })
    }

    /// # Shapes
    /// `tokens (B, T)` u32 -> logits `(B, T, V)`.
    pub fn logits(&self, tokens: &Tensor) -> Result<Tensor> {
        let hidden = self.hidden(tokens)?;
        Ok(hidden.broadcast_matmul(&self.head()?.t()?)?)
    }
}
