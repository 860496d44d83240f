//! Reading checkpoint files into named tensors: safetensors (single file, a directory,
//! or a sharded index) and PyTorch `.pth` zip archives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

pub(crate) fn checkpoint_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Our error for a transformer-crate error (whose checkpoint reader serves every
/// Hugging Face directory here), keeping the file it names.
pub(crate) fn from_transformer(e: transformer::Error) -> Error {
    match e {
        transformer::Error::Candle(e) => Error::Candle(e),
        transformer::Error::Io { path, source } => Error::io(path, source),
        transformer::Error::Config { path, message }
        | transformer::Error::Checkpoint { path, message } => Error::Checkpoint { path, message },
        other => Error::Unsupported(other.to_string()),
    }
}

/// The safetensors files of a Hugging Face model directory: the shards listed in
/// `model.safetensors.index.json`, or `model.safetensors`.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let ckpt = transformer::Checkpoint::open(dir).map_err(from_transformer)?;
    Ok(ckpt.files().map(Path::to_path_buf).collect())
}

/// Reads every tensor of a `.pth`, `.safetensors` file or HF directory, converted to
/// `dtype` on `device`.
pub fn read_tensors(path: &Path, dtype: DType, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        return Err(checkpoint_error(path, "no such file or directory"));
    }
    let files = if path.is_dir() {
        safetensors_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = HashMap::new();
    for file in &files {
        let is_pth = matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("pth" | "pt" | "bin")
        );
        let tensors: Vec<(String, Tensor)> = if is_pth {
            candle_core::pickle::read_all(file).map_err(|e| {
                let report = rwkv::load::truncation_report(file);
                checkpoint_error(
                    file,
                    report.unwrap_or_else(|| format!("cannot read checkpoint: {e}")),
                )
            })?
        } else {
            candle_core::safetensors::load(file, device)
                .map(|m| m.into_iter().collect())
                .map_err(|e| checkpoint_error(file, format!("cannot read checkpoint: {e}")))?
        };
        for (name, t) in tensors {
            let t = t.to_device(device)?.to_dtype(dtype)?;
            out.insert(name, t);
        }
    }
    Ok(out)
}

/// The dimensions of a required tensor, with an error naming the file and key.
pub fn dims_of<'a>(
    tensors: &'a HashMap<String, Tensor>,
    path: &Path,
    key: &str,
) -> Result<&'a [usize]> {
    tensors
        .get(key)
        .map(|t| t.dims())
        .ok_or_else(|| checkpoint_error(path, format!("missing tensor `{key}`")))
}
