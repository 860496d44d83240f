//! Loading Hugging Face checkpoints: `config.json` plus one `model.safetensors` or the
//! shards listed in `model.safetensors.index.json`, stored as f32, bf16 or f16 and
//! converted to the compute dtype tensor by tensor.
//!
//! Every error names the file and the tensor: a missing tensor names the file (or
//! index) that should hold it, a wrong shape names the file that holds it, a missing
//! shard names the index and a tensor it should hold.

use kernels::WeightDtype;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::{Load, MmapedSafetensors};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::config::Config;
use crate::model::Model;
use crate::{Error, Result};

/// The index file of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The file of a single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";

/// The safetensors files of a checkpoint, memory-mapped, with the file each tensor is
/// read from. Usable as a [`VarBuilder`] backend that checks shapes.
pub struct Checkpoint {
    files: Vec<(PathBuf, MmapedSafetensors)>,
    /// Tensor name -> index into `files`.
    routing: HashMap<String, usize>,
    /// `model.safetensors.index.json` when sharded.
    index: Option<PathBuf>,
}

fn open_file(path: &Path) -> Result<MmapedSafetensors> {
    if !path.is_file() {
        return Err(Error::checkpoint(path, "no such file"));
    }
    // SAFETY: the mapping is only read, while the model is built; the `Checkpoint`
    // (and with it the mapping) is dropped once the tensors are copied out. As with
    // every memory-mapped loader, truncating the file meanwhile would fault.
    unsafe { MmapedSafetensors::new(path) }.map_err(|e| {
        let message = truncation_report(path).unwrap_or_else(|| {
            // candle repeats the path, which the message already starts with.
            let e = match e {
                candle_core::Error::WithPath { inner, .. } => *inner,
                e => e,
            };
            format!("not a safetensors file: {e}")
        });
        Error::checkpoint(path, message)
    })
}

/// Says what a safetensors file that does not open lacks, when it is shorter than its
/// own header says (the state an interrupted download leaves): the header, or the
/// data of the first tensor it cuts. `None` when the file does not look like that.
fn truncation_report(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut n = [0u8; 8];
    if file.read_exact(&mut n).is_err() {
        return Some(format!("too short for a safetensors header ({len} bytes)"));
    }
    // The safetensors crate's own limit: anything longer is not a header length.
    let n = u64::from_le_bytes(n);
    if n > 100 << 20 {
        return None;
    }
    if 8 + n > len {
        return Some(format!(
            "the file is truncated ({len} bytes) inside its {n}-byte safetensors header"
        ));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).ok()?;
    let (start, end, name) = header
        .iter()
        .filter_map(|(name, info)| {
            let offsets = info.get("data_offsets")?;
            let (a, b) = (offsets.get(0)?.as_u64()?, offsets.get(1)?.as_u64()?);
            let (start, end) = ((8 + n).checked_add(a)?, (8 + n).checked_add(b)?);
            (end > len).then_some((start, end, name))
        })
        .min()?;
    Some(format!(
        "the file is truncated ({len} bytes): tensor `{name}` needs bytes {start}..{end}"
    ))
}

impl Checkpoint {
    /// Opens a directory holding `model.safetensors.index.json` (sharded) or
    /// `model.safetensors`, or one `.safetensors` file.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() {
            return Self::single(path);
        }
        if !path.is_dir() {
            return Err(Error::checkpoint(path, "no such file or directory"));
        }
        let index = path.join(INDEX_FILE);
        if index.is_file() {
            return Self::sharded(path, &index);
        }
        let single = path.join(SINGLE_FILE);
        if single.is_file() {
            return Self::single(&single);
        }
        Err(Error::checkpoint(
            path,
            format!("neither {SINGLE_FILE} nor {INDEX_FILE} in this directory"),
        ))
    }

    fn single(file: &Path) -> Result<Self> {
        let st = open_file(file)?;
        let routing = st
            .tensors()
            .into_iter()
            .map(|(name, _)| (name, 0))
            .collect();
        Ok(Self {
            files: vec![(file.to_path_buf(), st)],
            routing,
            index: None,
        })
    }

    fn sharded(dir: &Path, index: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::checkpoint(index, format!("malformed index: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::checkpoint(index, "missing object `weight_map`"))?;
        let mut files: Vec<(PathBuf, MmapedSafetensors)> = Vec::new();
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        let mut routing = HashMap::with_capacity(map.len());
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        for tensor in names {
            let shard = map[tensor].as_str().ok_or_else(|| {
                Error::checkpoint(index, format!("`weight_map.{tensor}` is not a file name"))
            })?;
            let i = match by_name.get(shard) {
                Some(&i) => i,
                None => {
                    let path = dir.join(shard);
                    if !path.is_file() {
                        return Err(Error::checkpoint(
                            index,
                            format!(
                                "lists shard {} (holding tensor `{tensor}`), which does not exist",
                                path.display()
                            ),
                        ));
                    }
                    files.push((path.clone(), open_file(&path)?));
                    by_name.insert(shard, files.len() - 1);
                    files.len() - 1
                }
            };
            routing.insert(tensor.clone(), i);
        }
        Ok(Self {
            files,
            routing,
            index: Some(index.to_path_buf()),
        })
    }

    /// The files read, in the order first needed.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }

    /// Whether the checkpoint holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.routing.contains_key(name)
    }

    /// A [`VarBuilder`] reading this checkpoint (checking shapes), converting to
    /// `dtype` on `device`. Its errors carry the file and tensor in their text.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        self.var_builder_with_failure(dtype, device).0
    }

    fn var_builder_with_failure(
        self,
        dtype: DType,
        device: &Device,
    ) -> (VarBuilder<'static>, Arc<Mutex<Option<Error>>>) {
        let failure = Arc::new(Mutex::new(None));
        let backend = Backend {
            checkpoint: self,
            failure: failure.clone(),
        };
        (
            VarBuilder::from_backend(Box::new(backend), dtype, device.clone()),
            failure,
        )
    }

    /// Loads `name`, checking its shape when `shape` is given.
    pub fn tensor(
        &self,
        name: &str,
        shape: Option<&Shape>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let Some(&i) = self.routing.get(name) else {
            let (path, what) = match &self.index {
                Some(index) => (index.as_path(), "not in its weight_map"),
                None => (self.files[0].0.as_path(), "not in this file"),
            };
            return Err(Error::checkpoint(
                path,
                format!("missing tensor `{name}` ({what})"),
            ));
        };
        let (path, st) = &self.files[i];
        let view = st.get(name).map_err(|_| match &self.index {
            Some(index) => Error::checkpoint(
                path,
                format!(
                    "missing tensor `{name}`, which {} says this shard holds",
                    index.display()
                ),
            ),
            None => Error::checkpoint(path, format!("missing tensor `{name}`")),
        })?;
        if let Some(shape) = shape {
            if view.shape() != shape.dims() {
                return Err(Error::checkpoint(
                    path,
                    format!(
                        "tensor `{name}` has shape {:?}, expected {:?}",
                        view.shape(),
                        shape.dims()
                    ),
                ));
            }
        }
        let convert = |e: candle_core::Error| {
            Error::checkpoint(path, format!("cannot read tensor `{name}`: {e}"))
        };
        view.load(device)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(convert)
    }
}

/// The [`VarBuilder`] backend over a [`Checkpoint`]. A failure crosses the candle
/// boundary as text; the typed error is kept in `failure` for [`load_weights`].
struct Backend {
    checkpoint: Checkpoint,
    failure: Arc<Mutex<Option<Error>>>,
}

impl Backend {
    fn load(
        &self,
        name: &str,
        shape: Option<&Shape>,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.checkpoint
            .tensor(name, shape, dtype, dev)
            .map_err(|e| {
                let text = e.to_string();
                if let Ok(mut slot) = self.failure.lock() {
                    slot.get_or_insert(e);
                }
                candle_core::Error::Msg(text)
            })
    }
}

impl SimpleBackend for Backend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.load(name, Some(&s), dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.load(name, None, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.checkpoint.contains(name)
    }
}

/// Builds a model from a Hugging Face directory (`config.json` and safetensors),
/// computing in `dtype` on `device`.
pub fn load_dir(dir: &Path, dtype: DType, device: &Device) -> Result<(Config, Model)> {
    let cfg = Config::from_file(&dir.join("config.json"))?;
    let model = load_weights(&cfg, dir, dtype, device)?;
    Ok((cfg, model))
}

/// Builds a model from a Hugging Face directory computing in f32, its matrices stored
/// as `weights` (each tensor is read, converted and dropped in turn).
pub fn load_dir_as(dir: &Path, weights: WeightDtype, device: &Device) -> Result<(Config, Model)> {
    let cfg = Config::from_file(&dir.join("config.json"))?;
    let model = load_stored(&cfg, dir, DType::F32, weights, device)?;
    Ok((cfg, model))
}

/// Builds a model of `cfg` from the safetensors at `path` (see [`Checkpoint::open`]).
/// A missing or misshapen tensor is an [`Error::Checkpoint`] naming file and tensor.
pub fn load_weights(cfg: &Config, path: &Path, dtype: DType, device: &Device) -> Result<Model> {
    load_stored(cfg, path, dtype, WeightDtype::F32, device)
}

fn load_stored(
    cfg: &Config,
    path: &Path,
    dtype: DType,
    weights: WeightDtype,
    device: &Device,
) -> Result<Model> {
    let (vb, failure) = Checkpoint::open(path)?.var_builder_with_failure(dtype, device);
    Model::with_dtype(cfg, vb, weights).map_err(|e| {
        let ours = failure.lock().ok().and_then(|mut slot| slot.take());
        ours.unwrap_or(e)
    })
}
