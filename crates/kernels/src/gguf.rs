//! Reading llama.cpp GGUF files (candle's [`gguf_file`]) for the model crates: checked
//! metadata and tensors whose errors are one line naming the file, the key or tensor,
//! and what is wrong. Which names a model reads and how it undoes its converter's
//! transforms lives in each model crate (`rwkv::gguf`, `transformer::gguf`).

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Error, Result, Tensor};

use crate::{ggml_name, Matrix};

/// Whether `path` is a file that starts with the GGUF magic.
pub fn is_gguf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"GGUF"
}

/// The storage types llama.cpp's quantisation presets write (a `Q4_K_M` file keeps its
/// head and some `ffn_down`/`attn_v` in q6_k, a `Q5_K_M` mixes q5_k and q6_k): q8_0,
/// q4_k and q6_k go through this crate's kernels, the others through candle's. q8_1 and
/// q8_k are activation formats that no weight file uses.
const SUPPORTED: [GgmlDType; 13] = [
    GgmlDType::F32,
    GgmlDType::F16,
    GgmlDType::BF16,
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q8_0,
    GgmlDType::Q2K,
    GgmlDType::Q3K,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
];

/// An open GGUF file: its metadata and tensor directory, tensors read on demand.
pub struct GgufFile {
    path: PathBuf,
    file: File,
    content: Content,
    device: Device,
}

impl GgufFile {
    pub fn open(path: &Path, device: &Device) -> Result<Self> {
        let fail = |m: String| Error::Msg(format!("{}: {m}", path.display()));
        let mut file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let content =
            Content::read(&mut file).map_err(|e| fail(format!("not a readable GGUF file: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            content,
            device: device.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// An error that names the file (a plain message: candle's `Error::msg` would append
    /// a backtrace under `RUST_BACKTRACE`, and the error must stay one line).
    pub fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::Msg(format!("{}: {message}", self.path.display()))
    }

    /// `general.architecture`, checked against the ones the caller reads.
    pub fn architecture(&self, supported: &[&str]) -> Result<String> {
        let arch = match self.content.metadata.get("general.architecture") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(self.error("general.architecture is not a string")),
            None => return Err(self.error("no general.architecture in its metadata")),
        };
        if !supported.contains(&arch.as_str()) {
            return Err(self.error(format!(
                "architecture `{arch}` is not supported here (expected {})",
                supported.join(" or ")
            )));
        }
        Ok(arch)
    }

    fn value(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.error(format!("metadata key {key} is missing")))
    }

    /// An unsigned integer metadata value (any integer width).
    pub fn usize(&self, key: &str) -> Result<usize> {
        let v = self.value(key)?;
        let n = match v {
            Value::U8(x) => Some(*x as u64),
            Value::U16(x) => Some(*x as u64),
            Value::U32(x) => Some(*x as u64),
            Value::U64(x) => Some(*x),
            Value::I8(x) => u64::try_from(*x).ok(),
            Value::I16(x) => u64::try_from(*x).ok(),
            Value::I32(x) => u64::try_from(*x).ok(),
            Value::I64(x) => u64::try_from(*x).ok(),
            _ => None,
        };
        n.map(|n| n as usize).ok_or_else(|| {
            self.error(format!(
                "metadata key {key} is {v:?}, not a non-negative integer"
            ))
        })
    }

    /// A float metadata value. An f32 is read as the decimal it was written from
    /// (gguf-py stores `rms_norm_eps = 1e-5` as the f32 nearest 1e-5, which widens to
    /// 9.9999997e-6; its shortest decimal is 1e-5 again).
    pub fn f64(&self, key: &str) -> Result<f64> {
        match self.value(key)? {
            Value::F32(x) => Ok(x.to_string().parse().unwrap_or(*x as f64)),
            Value::F64(x) => Ok(*x),
            v => Err(self.error(format!("metadata key {key} is {v:?}, not a float"))),
        }
    }

    /// Whether the file has metadata `key`.
    pub fn has(&self, key: &str) -> bool {
        self.content.metadata.contains_key(key)
    }

    /// Whether the file has tensor `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// The shape of tensor `name` (outermost first, as candle and PyTorch order it; the
    /// file stores ggml's innermost-first `ne`).
    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        Ok(self.info(name)?.shape.dims())
    }

    fn info(&self, name: &str) -> Result<&candle_core::quantized::gguf_file::TensorInfo> {
        self.content.tensor_infos.get(name).ok_or_else(|| {
            self.error(format!(
                "tensor {name} is missing (the file has {} tensors)",
                self.content.tensor_infos.len()
            ))
        })
    }

    /// Tensor `name` as stored, after checking its type and that its shape is `shape`.
    pub fn qtensor(&self, name: &str, shape: &[usize]) -> Result<QTensor> {
        let info = self.info(name)?;
        if !SUPPORTED.contains(&info.ggml_dtype) {
            return Err(self.error(format!(
                "tensor {name} has type {}, which rwkv-bench does not support (supported: {})",
                ggml_name(info.ggml_dtype),
                SUPPORTED.map(ggml_name).join(", ")
            )));
        }
        if info.shape.dims() != shape {
            return Err(self.error(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                info.shape.dims()
            )));
        }
        let mut reader = &self.file;
        info.read(&mut reader, self.content.tensor_data_offset, &self.device)
            .map_err(|e| self.error(format!("tensor {name}: {e}")))
    }

    /// A matrix `[out, in]` as stored: float types dense, block types quantised.
    pub fn matrix(&self, name: &str, shape: (usize, usize)) -> Result<Matrix> {
        Matrix::from_qtensor(Arc::new(self.qtensor(name, &[shape.0, shape.1])?))
    }

    /// Any tensor as f32 (dequantised if it is stored in blocks).
    pub fn tensor_f32(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.qtensor(name, shape)?
            .dequantize(&self.device)?
            .to_dtype(DType::F32)
    }
}

/// `q` with its rows reordered: row `i` of the result is row `rows[i]` of `q`. Exact for
/// every storage type, since a row of a 2-D ggml tensor is a whole number of blocks.
pub fn permute_rows(q: &QTensor, rows: &[usize]) -> Result<QTensor> {
    let (n, k) = q.shape().dims2()?;
    if rows.len() != n || rows.iter().any(|&r| r >= n) {
        candle_core::bail!("permute_rows: {} rows for a tensor of {n}", rows.len());
    }
    let dtype = q.dtype();
    let row_bytes = k / dtype.block_size() * dtype.type_size();
    let data = q.data()?;
    let mut out = Vec::with_capacity(data.len());
    for &r in rows {
        out.extend_from_slice(&data[r * row_bytes..(r + 1) * row_bytes]);
    }
    let storage = QStorage::from_data(Cow::Owned(out), &q.device(), dtype)?;
    QTensor::new(storage, (n, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permuting_rows_of_blocks_is_exact() {
        let dev = Device::Cpu;
        let w = Tensor::arange(0f32, 4. * 64., &dev)
            .unwrap()
            .reshape((4, 64))
            .unwrap()
            .sin()
            .unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let p = permute_rows(&q, &[2, 0, 3, 1]).unwrap();
        let (a, b) = (q.dequantize(&dev).unwrap(), p.dequantize(&dev).unwrap());
        for (i, r) in [2, 0, 3, 1].into_iter().enumerate() {
            let d = (b.get(i).unwrap() - a.get(r).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(d, 0.0);
        }
        assert!(permute_rows(&q, &[0, 1]).is_err());
    }
}
