//! Model configuration, read from a checkpoint's tensor shapes.
//!
//! Official RWKV-7 checkpoints carry no config file, and released sizes differ in
//! every dimension (0.1B uses LoRA widths 64/64/32/128, 1.5B 96/96/64/256; the FFN
//! need not be 4·C; head size is usually but not always 64). So nothing is assumed:
//! [`CheckpointShapes`] mirrors what a file says and [`CheckpointShapes::into_config`]
//! resolves it into a [`Config`] with every value known, checking every key.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Ranks of the four low-rank (LoRA) projections of the time mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoraDims {
    /// Decay `w1`/`w2`.
    pub decay: usize,
    /// In-context learning rate `a1`/`a2`.
    pub iclr: usize,
    /// Value residual `v1`/`v2` (used from layer 1 on).
    pub value: usize,
    /// Output gate `g1`/`g2`.
    pub gate: usize,
}

/// Everything needed to build an RWKV-7 (x070) model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub vocab: usize,
    /// Embedding width C.
    pub width: usize,
    pub layers: usize,
    /// Number of WKV heads H; `heads * head_size == width`.
    pub heads: usize,
    /// Head size N (64 in every released model).
    pub head_size: usize,
    /// Channel-mix hidden width.
    pub ffn: usize,
    pub lora: LoraDims,
}

/// Keys that only checkpoints of RWKV-4/5/6 have; they identify a wrong generation.
const OLDER_GENERATION_KEYS: &[&str] = &["time_decay", "time_faaaa", "time_first", "time_mix_"];

impl Config {
    /// A small model for tests (L4, D128, vocab 512).
    pub fn tiny() -> Self {
        Self::sized(4, 128, 512, 512, [16, 16, 8, 32])
    }

    fn sized(layers: usize, width: usize, vocab: usize, ffn: usize, lora: [usize; 4]) -> Self {
        Self {
            vocab,
            width,
            layers,
            heads: width / 64,
            head_size: 64,
            ffn,
            lora: LoraDims {
                decay: lora[0],
                iclr: lora[1],
                value: lora[2],
                gate: lora[3],
            },
        }
    }

    /// Every tensor of an official checkpoint of this shape, with its raw shape
    /// (`[1, 1, C]` vectors, `nn.Linear` weights as `[out, in]`). Layer 0's
    /// `v0`/`v1`/`v2` are listed although the model never uses them.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (c, l) = (self.width, self.lora);
        let vec3 = vec![1, 1, c];
        let mut out = vec![("emb.weight".to_string(), vec![self.vocab, c])];
        let mut push = |k: String, s: Vec<usize>| out.push((k, s));
        for i in 0..self.layers {
            let b = format!("blocks.{i}");
            if i == 0 {
                push(format!("{b}.ln0.weight"), vec![c]);
                push(format!("{b}.ln0.bias"), vec![c]);
            }
            for ln in ["ln1", "ln2"] {
                push(format!("{b}.{ln}.weight"), vec![c]);
                push(format!("{b}.{ln}.bias"), vec![c]);
            }
            let a = format!("{b}.att");
            for v in [
                "x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "a0", "v0", "k_k", "k_a",
            ] {
                push(format!("{a}.{v}"), vec3.clone());
            }
            for (name, rank) in [("w", l.decay), ("a", l.iclr), ("v", l.value), ("g", l.gate)] {
                push(format!("{a}.{name}1"), vec![c, rank]);
                push(format!("{a}.{name}2"), vec![rank, c]);
            }
            push(format!("{a}.r_k"), vec![self.heads, self.head_size]);
            for proj in ["receptance", "key", "value", "output"] {
                push(format!("{a}.{proj}.weight"), vec![c, c]);
            }
            push(format!("{a}.ln_x.weight"), vec![c]);
            push(format!("{a}.ln_x.bias"), vec![c]);
            let f = format!("{b}.ffn");
            push(format!("{f}.x_k"), vec3.clone());
            push(format!("{f}.key.weight"), vec![self.ffn, c]);
            push(format!("{f}.value.weight"), vec![c, self.ffn]);
        }
        push("ln_out.weight".into(), vec![c]);
        push("ln_out.bias".into(), vec![c]);
        push("head.weight".into(), vec![self.vocab, c]);
        out
    }

    /// Whether the model can run without this key (layer 0's unused value-residual
    /// tensors, which some exporters drop).
    pub fn is_optional(key: &str) -> bool {
        matches!(
            key,
            "blocks.0.att.v0" | "blocks.0.att.v1" | "blocks.0.att.v2"
        )
    }

    /// Number of parameters of a full official checkpoint of this shape.
    pub fn param_count(&self) -> u64 {
        self.tensor_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum()
    }
}

/// The tensor shapes of a checkpoint, by key: what an official `.pth` says about its
/// model.
#[derive(Debug, Clone, Default)]
pub struct CheckpointShapes {
    shapes: BTreeMap<String, Vec<usize>>,
}

impl<K: Into<String>> FromIterator<(K, Vec<usize>)> for CheckpointShapes {
    fn from_iter<I: IntoIterator<Item = (K, Vec<usize>)>>(iter: I) -> Self {
        Self {
            shapes: iter.into_iter().map(|(k, s)| (k.into(), s)).collect(),
        }
    }
}

impl CheckpointShapes {
    /// The shape of a key, if present.
    pub fn get(&self, key: &str) -> Option<&[usize]> {
        self.shapes.get(key).map(Vec::as_slice)
    }

    fn require(&self, key: &str) -> Result<&[usize]> {
        self.get(key).ok_or_else(|| {
            Error::shape(
                key,
                "missing (not an RWKV-7 x070 checkpoint, or an incomplete one)",
            )
        })
    }

    fn require_2d(&self, key: &str) -> Result<(usize, usize)> {
        match self.require(key)? {
            &[a, b] => Ok((a, b)),
            other => Err(Error::shape(
                key,
                format!("expected 2 dimensions, found {other:?}"),
            )),
        }
    }

    /// Infers the config from the shapes and checks every tensor the model needs
    /// against it.
    ///
    /// C and V come from `emb.weight`, H and N from `blocks.0.att.r_k`, the FFN width
    /// and LoRA ranks from `ffn.key.weight`, `w1`, `a1`, `v1`, `g1` (the value rank
    /// from layer 1 when there is one, since layer 0's copy is unused and optional).
    pub fn into_config(&self) -> Result<Config> {
        if let Some(key) = self
            .shapes
            .keys()
            .find(|k| OLDER_GENERATION_KEYS.iter().any(|old| k.contains(old)))
        {
            return Err(Error::shape(
                key.clone(),
                "this key belongs to an RWKV-4/5/6 (x060 or older) checkpoint; this model \
                 needs RWKV-7 (x070) keys such as `blocks.0.att.r_k`",
            ));
        }
        let (vocab, width) = self.require_2d("emb.weight")?;
        let (heads, head_size) = self.require_2d("blocks.0.att.r_k")?;
        if heads * head_size != width || heads == 0 {
            return Err(Error::shape(
                "blocks.0.att.r_k",
                format!(
                    "{heads} heads x head size {head_size} does not match the width {width} of \
                     `emb.weight`"
                ),
            ));
        }
        let layers = self
            .shapes
            .keys()
            .filter_map(|k| {
                k.strip_prefix("blocks.")?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .map_or(0, |m| m + 1);
        let ffn = self.require_2d("blocks.0.ffn.key.weight")?.0;
        let rank = |key: &str| self.require_2d(key).map(|(_, r)| r);
        let value_key = if layers > 1 {
            "blocks.1.att.v1"
        } else {
            "blocks.0.att.v1"
        };
        let value = match self.get(value_key) {
            Some(_) => rank(value_key)?,
            // A single-layer model never uses the value residual.
            None if layers == 1 => 0,
            None => return Err(Error::shape(value_key, "missing")),
        };
        let cfg = Config {
            vocab,
            width,
            layers,
            heads,
            head_size,
            ffn,
            lora: LoraDims {
                decay: rank("blocks.0.att.w1")?,
                iclr: rank("blocks.0.att.a1")?,
                value,
                gate: rank("blocks.0.att.g1")?,
            },
        };
        self.check(&cfg)?;
        Ok(cfg)
    }

    /// Checks that every tensor `cfg` needs is present with its expected shape, and
    /// that there are no others (a variant such as DeepEmbed adds tensors this model
    /// would silently ignore).
    pub fn check(&self, cfg: &Config) -> Result<()> {
        let expected = cfg.tensor_shapes();
        if let Some(extra) = self
            .shapes
            .keys()
            .find(|k| !expected.iter().any(|(e, _)| e == *k))
        {
            return Err(Error::shape(
                extra.clone(),
                "unexpected: not part of an RWKV-7 x070 model of this shape (a variant such \
                 as DeepEmbed, or a layer beyond the others?)",
            ));
        }
        for (key, expected) in expected {
            match self.get(&key) {
                None if Config::is_optional(&key) => {}
                // Layer 0's value-residual tensors are unused, so any rank is fine.
                Some(_) if Config::is_optional(&key) => {}
                None => return Err(Error::shape(key, "missing")),
                Some(found) if found != expected.as_slice() => {
                    return Err(Error::shape(
                        key,
                        format!("expected shape {expected:?}, found {found:?}"),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes_of(cfg: &Config) -> CheckpointShapes {
        cfg.tensor_shapes().into_iter().collect()
    }

    #[test]
    fn inference_recovers_every_dimension_of_odd_shapes() {
        let cfg = Config {
            vocab: 131,
            width: 64,
            layers: 3,
            heads: 2,
            head_size: 32,
            ffn: 224,
            lora: LoraDims {
                decay: 8,
                iclr: 12,
                value: 6,
                gate: 16,
            },
        };
        assert_eq!(shapes_of(&cfg).into_config().unwrap(), cfg);
    }

    #[test]
    fn tiny_round_trips_through_its_shapes() {
        let cfg = Config::tiny();
        assert_eq!(shapes_of(&cfg).into_config().unwrap(), cfg);
    }

    #[test]
    fn errors_name_the_key() {
        let cfg = Config::tiny();
        let mut s = shapes_of(&cfg);
        s.shapes.remove("blocks.2.ffn.value.weight");
        let e = s.into_config().unwrap_err().to_string();
        assert!(
            e.contains("blocks.2.ffn.value.weight") && e.contains("missing"),
            "{e}"
        );

        let mut s = shapes_of(&cfg);
        s.shapes.insert("blocks.1.att.k_k".into(), vec![1, 1, 7]);
        let e = s.into_config().unwrap_err().to_string();
        assert!(
            e.contains("blocks.1.att.k_k") && e.contains("[1, 1, 7]"),
            "{e}"
        );

        let mut s = shapes_of(&cfg);
        s.shapes.insert("blocks.0.att.time_decay".into(), vec![128]);
        let e = s.into_config().unwrap_err().to_string();
        assert!(
            e.contains("blocks.0.att.time_decay") && e.contains("x060"),
            "{e}"
        );

        let mut s = shapes_of(&cfg);
        s.shapes
            .insert("blocks.3.ffn.s_emb.weight".into(), vec![512, 1024]);
        let e = s.into_config().unwrap_err().to_string();
        assert!(
            e.contains("blocks.3.ffn.s_emb.weight") && e.contains("unexpected"),
            "{e}"
        );

        let mut s = shapes_of(&cfg);
        for k in ["blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"] {
            s.shapes.remove(k);
        }
        assert_eq!(
            s.into_config().unwrap(),
            cfg,
            "layer 0's v0/v1/v2 are optional"
        );
    }
}
