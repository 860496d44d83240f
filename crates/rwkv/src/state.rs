//! The recurrent state: all an RWKV-7 model remembers of the tokens it has seen.
//!
//! Its size depends only on the model, never on the sequence length. Users cache
//! the state of a long prefix ([`State::save`]) and resume from it ([`State::load`]).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::config::Config;
use crate::{Error, Result};

/// One layer's state. Matches the official package's state list
/// (`state[3i]`, `state[3i+1]`, `state[3i+2]`) with a leading batch dimension.
#[derive(Debug)]
pub struct LayerState {
    /// Time-mix token shift: the ln1 output of the last token seen, shape `(B, C)`, f32.
    pub att_shift: Tensor,
    /// WKV matrices, shape `(B, H, N, N)` indexed `[batch, head, value i, key j]`, f32.
    /// [`crate::Model::forward`] updates it in place, so it must not share storage
    /// with another tensor (copy it, or use [`State::try_clone`]).
    pub wkv: Tensor,
    /// Channel-mix token shift: the ln2 output of the last token seen, shape `(B, C)`, f32.
    pub ffn_shift: Tensor,
}

/// The state of every layer, for a batch of `B` independent sequences.
#[derive(Debug)]
pub struct State {
    pub layers: Vec<LayerState>,
    batch: usize,
}

const FORMAT: &str = "rwkv7-state";

impl State {
    /// The zero state (no tokens seen) for `batch` sequences.
    pub fn new(cfg: &Config, batch: usize, device: &Device) -> Result<Self> {
        let (c, h, n) = (cfg.width, cfg.heads, cfg.head_size);
        let layers = (0..cfg.layers)
            .map(|_| {
                Ok(LayerState {
                    att_shift: Tensor::zeros((batch, c), DType::F32, device)?,
                    wkv: Tensor::zeros((batch, h, n, n), DType::F32, device)?,
                    ffn_shift: Tensor::zeros((batch, c), DType::F32, device)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers, batch })
    }

    /// A deep copy: the WKV matrices are updated in place, so a shallow clone would
    /// share them.
    pub fn try_clone(&self) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(LayerState {
                    att_shift: l.att_shift.force_contiguous()?,
                    wkv: l.wkv.force_contiguous()?,
                    ffn_shift: l.ffn_shift.force_contiguous()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            layers,
            batch: self.batch,
        })
    }

    /// Number of sequences B.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Bytes held by the state: `L * B * (2C + H*N*N) * 4`.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| [&l.att_shift, &l.wkv, &l.ffn_shift])
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum()
    }

    fn key(layer: usize, part: &str) -> String {
        format!("blocks.{layer}.{part}")
    }

    /// Writes the state to a safetensors file, with the model shape in its metadata.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut tensors = Vec::with_capacity(3 * self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            tensors.push((Self::key(i, "att_shift"), &l.att_shift));
            tensors.push((Self::key(i, "wkv"), &l.wkv));
            tensors.push((Self::key(i, "ffn_shift"), &l.ffn_shift));
        }
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("layers".to_string(), self.layers.len().to_string()),
            ("batch".to_string(), self.batch.to_string()),
        ]);
        safetensors::serialize_to_file(tensors, Some(metadata), path).map_err(|e| {
            Error::StateFile {
                path: path.to_path_buf(),
                message: format!("cannot write: {e}"),
            }
        })
    }

    /// Reads a state written by [`State::save`] and checks it fits `cfg`.
    pub fn load(path: impl AsRef<Path>, cfg: &Config, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let fail = |message: String| Error::StateFile {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| fail(format!("not a readable safetensors file: {e}")))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| fail(format!("not a readable safetensors file: {e}")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(fail(format!(
                "not an {FORMAT} file (metadata `format` is missing)"
            )));
        }
        let batch: usize = meta
            .get("batch")
            .and_then(|b| b.parse().ok())
            .ok_or_else(|| fail("metadata `batch` is missing".into()))?;
        let (c, h, n) = (cfg.width, cfg.heads, cfg.head_size);
        let read = |key: String, shape: &[usize]| -> Result<Tensor> {
            let view = file.tensor(&key).map_err(|_| {
                fail(format!(
                    "tensor `{key}` is missing; is this a state of another model?"
                ))
            })?;
            if view.shape() != shape || view.dtype() != safetensors::Dtype::F32 {
                return Err(fail(format!(
                    "tensor `{key}` is {:?} {:?}, this model needs f32 {shape:?}",
                    view.dtype(),
                    view.shape()
                )));
            }
            Ok(Tensor::from_raw_buffer(
                view.data(),
                DType::F32,
                shape,
                device,
            )?)
        };
        let layers = (0..cfg.layers)
            .map(|i| {
                Ok(LayerState {
                    att_shift: read(Self::key(i, "att_shift"), &[batch, c])?,
                    wkv: read(Self::key(i, "wkv"), &[batch, h, n, n])?,
                    ffn_shift: read(Self::key(i, "ffn_shift"), &[batch, c])?,
                })
            })
            .collect::<Result<_>>()?;
        if file.names().len() != 3 * cfg.layers {
            return Err(fail(format!(
                "holds {} tensors, a state of this {}-layer model has {}",
                file.names().len(),
                cfg.layers,
                3 * cfg.layers
            )));
        }
        Ok(Self { layers, batch })
    }
}
