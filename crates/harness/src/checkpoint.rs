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

/// The safetensors files of a Hugging Face model directory: the shards listed in
/// `model.safetensors.index.json`, or `model.safetensors`.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| checkpoint_error(&index, format!("malformed index: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| checkpoint_error(&index, "missing object `weight_map`"))?;
        let mut files: Vec<PathBuf> = map
            .values()
            .filter_map(|v| v.as_str())
            .map(|f| dir.join(f))
            .collect();
        files.sort();
        files.dedup();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(checkpoint_error(
                &index,
                format!("lists shard {} which does not exist", missing.display()),
            ));
        }
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(checkpoint_error(
        dir,
        "no model.safetensors or model.safetensors.index.json in this directory",
    ))
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
            candle_core::pickle::read_all(file)
        } else {
            candle_core::safetensors::load(file, device).map(|m| m.into_iter().collect())
        }
        .map_err(|e| checkpoint_error(file, format!("cannot read checkpoint: {e}")))?;
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
