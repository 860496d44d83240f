//! Reading official RWKV-7 checkpoints: PyTorch `.pth` files (zip + pickle; fp32,
//! bf16 or fp16) through candle's pickle reader, and safetensors files with the same
//! keys.
//!
//! Tensors are read one at a time and converted to f32 at once, so loading a bf16
//! checkpoint peaks at about its f32 size rather than at both sizes together. Every
//! shape is checked before any data is read; every error names the file and, where
//! there is one, the tensor key.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, PthTensors, Stack};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::{CheckpointShapes, Config};
use crate::{Error, Result};

/// A checkpoint's tensors, converted to f32, with the config they describe.
#[derive(Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub config: Config,
    /// Every tensor the model uses, under its official key.
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// Reads and checks a `.pth` or `.safetensors` checkpoint.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut magic = [0u8; 2];
        let is_zip = (&file).read_exact(&mut magic).is_ok() && &magic == b"PK";
        let source: Box<dyn Source> = if is_zip {
            Box::new(PthSource::open(path)?)
        } else {
            Box::new(SafetensorsSource::open(path)?)
        };
        let shapes: CheckpointShapes = source.shapes().into_iter().collect();
        let config = shapes
            .into_config()
            .map_err(|e| Error::checkpoint(path, e.to_string()))?;
        let mut tensors = HashMap::new();
        for (key, _) in config.tensor_shapes() {
            if Config::is_optional(&key) {
                continue;
            }
            let t = source
                .read(&key, device)
                .map_err(|e| Error::checkpoint(path, format!("tensor `{key}`: {e}")))?;
            tensors.insert(key, t.to_dtype(DType::F32)?);
        }
        Ok(Self {
            path: path.to_path_buf(),
            config,
            tensors,
        })
    }

    /// A var builder over the tensors, for [`crate::Model::new`].
    pub fn into_var_builder(self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_tensors(self.tensors, DType::F32, device)
    }
}

/// A checkpoint format: the shapes of its tensors without their data, then one tensor
/// at a time.
trait Source {
    fn shapes(&self) -> Vec<(String, Vec<usize>)>;
    fn read(&self, key: &str, device: &Device) -> std::result::Result<Tensor, String>;
}

struct PthSource {
    pth: PthTensors,
}

impl PthSource {
    fn open(path: &Path) -> Result<Self> {
        match PthTensors::new(path, None) {
            Ok(pth) if !pth.tensor_infos().is_empty() => Ok(Self { pth }),
            Ok(_) => Err(Error::checkpoint(
                path,
                "no tensors found: not a PyTorch state dict (expected a dict of name -> tensor)",
            )),
            Err(e) => Err(Error::checkpoint(
                path,
                match truncation_report(path) {
                    Some(report) => report,
                    None => format!("cannot read as a PyTorch zip checkpoint: {e}"),
                },
            )),
        }
    }
}

impl Source for PthSource {
    fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.pth
            .tensor_infos()
            .iter()
            .map(|(k, info)| (k.clone(), info.layout.dims().to_vec()))
            .collect()
    }

    fn read(&self, key: &str, device: &Device) -> std::result::Result<Tensor, String> {
        match self.pth.get(key) {
            Ok(Some(t)) => t.to_device(device).map_err(|e| e.to_string()),
            Ok(None) => Err("missing".into()),
            Err(e) => Err(format!(
                "cannot read its data (is the file truncated?): {e}"
            )),
        }
    }
}

/// Says which tensor a truncated `.pth` file lost (any PyTorch zip checkpoint, not
/// only RWKV's).
///
/// A zip archive keeps its directory at the end, so a truncated file cannot be opened
/// as a zip at all. Its entries still start with local headers, though, and the first
/// one is the pickled index (`<name>/data.pkl`) that lists every tensor's storage. So
/// this finds the local headers, reads the index, and names the first tensor whose
/// storage is missing or short. `None` when the file does not look like that.
pub fn truncation_report(path: &Path) -> Option<String> {
    const SIGNATURE: &[u8; 4] = b"PK\x03\x04";
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();

    // Offsets of everything that looks like a local header.
    let mut hits = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut base = 0u64;
    let mut carry = 0usize;
    loop {
        let got = file.read(&mut buf[carry..]).ok()?;
        if got == 0 {
            break;
        }
        let end = carry + got;
        for i in 0..end.saturating_sub(3) {
            if &buf[i..i + 4] == SIGNATURE {
                hits.push(base + i as u64);
            }
        }
        let keep = end.min(3);
        buf.copy_within(end - keep..end, 0);
        base += (end - keep) as u64;
        carry = keep;
    }

    // (name, data start) of each plausible entry, in file order.
    let mut entries: Vec<(String, u64, u64)> = Vec::new();
    for &at in &hits {
        let mut header = [0u8; 30];
        file.seek(SeekFrom::Start(at)).ok()?;
        let mut name = Vec::new();
        let complete = file.read_exact(&mut header).is_ok() && {
            name.resize(u16::from_le_bytes([header[26], header[27]]) as usize, 0);
            file.read_exact(&mut name).is_ok()
        };
        if !complete && at == 0 {
            return Some(format!(
                "the file is truncated ({len} bytes) inside its first zip entry header"
            ));
        }
        if !complete {
            continue;
        }
        let name_len = name.len();
        let extra_len = u16::from_le_bytes([header[28], header[29]]) as u64;
        let Ok(name) = String::from_utf8(name) else {
            continue;
        };
        entries.push((name, at, at + 30 + name_len as u64 + extra_len));
    }
    let (index_name, _, index_start) = entries.first()?.clone();
    let dir = index_name.strip_suffix(".pkl")?.to_string();
    // Random tensor bytes can contain the signature; real entries live under `dir`.
    let prefix = format!("{dir}/");
    entries.retain(|(n, _, _)| n == &index_name || n.starts_with(&prefix));

    file.seek(SeekFrom::Start(index_start)).ok()?;
    let mut reader = BufReader::new(file);
    let mut stack = Stack::empty();
    if stack.read_loop(&mut reader).is_err() {
        return Some(format!(
            "the file is truncated ({len} bytes) inside its tensor index `{index_name}`"
        ));
    }
    let Ok(Object::Dict(items)) = stack.finalize() else {
        return None;
    };

    let mut lost: Vec<(u64, String, String)> = Vec::new();
    let n_tensors = items.len();
    for (name, value) in items {
        let Ok(Some(info)) = value.into_tensor_info(name, Path::new(&dir)) else {
            continue;
        };
        let need = (info.storage_size * info.dtype.size_in_bytes()) as u64;
        let pos = entries.iter().position(|(n, _, _)| n == &info.path);
        let (order, detail) = match pos {
            None => (u64::MAX, format!("its storage `{}` is missing", info.path)),
            Some(i) => {
                let start = entries[i].2;
                let end = entries.get(i + 1).map_or(len, |e| e.1);
                let have = end.saturating_sub(start);
                if have >= need {
                    continue;
                }
                (
                    start,
                    format!("its storage `{}` has {have} of {need} bytes", info.path),
                )
            }
        };
        lost.push((order, info.name, detail));
    }
    lost.sort();
    let Some((_, key, detail)) = lost.first() else {
        // Every tensor is whole, yet the archive does not open: what is missing is the
        // zip directory, which comes after all the data.
        return Some(format!(
            "the file is truncated ({len} bytes) after the data of all {n_tensors} tensors: \
             its zip directory is missing"
        ));
    };
    Some(format!(
        "the file is truncated ({len} bytes): tensor `{key}` is cut off ({detail}); {} of {} \
         tensors are incomplete",
        lost.len(),
        n_tensors
    ))
}

struct SafetensorsSource {
    path: PathBuf,
    /// Absolute byte range of each tensor's data.
    tensors: HashMap<String, (safetensors::tensor::TensorInfo, u64, u64)>,
}

impl SafetensorsSource {
    fn open(path: &Path) -> Result<Self> {
        let fail = |m: String| Error::checkpoint(path, m);
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(|_| {
            fail("not a checkpoint: too short for a safetensors header, and not a .pth zip".into())
        })?;
        let n = u64::from_le_bytes(n);
        if n > 100 << 20 {
            return Err(fail(format!(
                "not a checkpoint: neither a .pth zip nor a safetensors file (header length {n})"
            )));
        }
        if n > len - 8 {
            return Err(fail(format!(
                "the file is truncated ({len} bytes) inside its {n}-byte safetensors header"
            )));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header)
            .map_err(|e| Error::io(path, e))?;
        let meta: safetensors::tensor::Metadata = serde_json::from_slice(&header)
            .map_err(|e| fail(format!("malformed safetensors header: {e}")))?;
        let data_start = 8 + n;
        let mut tensors = HashMap::new();
        let mut cut: Option<(u64, String, u64)> = None;
        for (name, info) in meta.tensors() {
            let (a, b) = info.data_offsets;
            let (start, end) = (data_start + a as u64, data_start + b as u64);
            if end > len && cut.as_ref().is_none_or(|c| start < c.0) {
                cut = Some((start, name.clone(), end));
            }
            tensors.insert(name, (info.clone(), start, end));
        }
        if let Some((start, key, end)) = cut {
            return Err(fail(format!(
                "the file is truncated ({len} bytes): tensor `{key}` needs bytes {start}..{end}"
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }
}

impl Source for SafetensorsSource {
    fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.tensors
            .iter()
            .map(|(k, (info, _, _))| (k.clone(), info.shape.clone()))
            .collect()
    }

    fn read(&self, key: &str, device: &Device) -> std::result::Result<Tensor, String> {
        let (info, start, end) = self.tensors.get(key).ok_or("missing")?;
        let dtype = DType::try_from(info.dtype).map_err(|e| e.to_string())?;
        let mut bytes = vec![0u8; (end - start) as usize];
        let mut file = File::open(&self.path).map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(*start))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| format!("cannot read its data: {e}"))?;
        Tensor::from_raw_buffer(&bytes, dtype, &info.shape, device).map_err(|e| e.to_string())
    }
}
