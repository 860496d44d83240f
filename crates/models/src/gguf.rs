//! How a spec treats a llama.cpp GGUF file (`rwkv7:path=m.gguf`, `llama:path=m.gguf`,
//! recognised by its magic, whatever its extension): the file fixes the storage type of
//! every matrix, so a spec's `dtype=` is refused rather than silently ignored or
//! re-quantising already quantised weights; the suite's dtype does not apply either,
//! and the model's record names the file's storage instead.

use std::path::Path;

use results::{ModelInfo, ModelSpec};

use crate::registry::spec_dtype;
use crate::{Error, Result};

pub use kernels::gguf::is_gguf;

/// An error when `spec` asks for a `dtype=` of a GGUF file.
pub fn refuse_dtype(spec: &ModelSpec, path: &Path) -> Result<()> {
    match spec_dtype(spec)? {
        Some(d) => Err(Error::spec(
            spec,
            format!(
                "{} is a GGUF file, whose matrices keep the types they were written in; drop \
                 `dtype={d}` (to measure another type, convert the file with llama.cpp)",
                path.display()
            ),
        )),
        None => Ok(()),
    }
}

/// `info` with the storage the file holds: the main matrix type and the bytes.
pub fn with_storage(mut info: ModelInfo, storage: String, weight_bytes: usize) -> ModelInfo {
    info.dtype = storage;
    info.weight_bytes = Some(weight_bytes as u64);
    info
}

/// An error for training from a GGUF file.
pub fn refuse_training(spec: &ModelSpec, path: &Path) -> Result<()> {
    if is_gguf(path) {
        return Err(Error::spec(
            spec,
            format!(
                "{} is a GGUF file: training starts from f32 checkpoints (.pth, safetensors, \
                 Hugging Face directories), not quantised inference files",
                path.display()
            ),
        ));
    }
    Ok(())
}
