//! A reference Llama-family decoder on candle (Llama 2/3, Qwen2, Mistral without
//! sliding window, SmolLM, TinyLlama), checked against Hugging Face transformers.
//!
//! What it avoids, compared with candle-transformers' `llama`: the KV cache is
//! preallocated and written in place ([`KvCache`]) rather than concatenated every step;
//! attention reads the cache where it is, in query chunks, so no `T x T` scores or mask
//! exist ([`sdpa`]); prompts run in chunks of positions through all layers; and only the
//! logits asked for are computed ([`Logits`]).
//!
//! ```no_run
//! # fn main() -> transformer::Result<()> {
//! use candle_core::{DType, Device, Tensor};
//! use transformer::{load_dir, Logits};
//! let (_cfg, model) = load_dir("hf_dir".as_ref(), DType::F32, &Device::Cpu)?;
//! let mut cache = model.new_cache(1)?;
//! let prompt = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
//! let logits = model.forward(&prompt, &mut cache, Logits::Last)?; // (1, vocab)
//! # Ok(()) }
//! ```

pub mod attention;
pub mod attention_grad;
pub mod config;
pub mod embedding;
pub mod error;
pub mod gguf;
pub mod gguf_write;
pub mod kv_cache;
pub mod linear;
pub mod load;
pub mod mlp;
pub mod model;
pub mod rope;
pub mod sdpa;
mod simd;
pub mod train;

pub use config::{Config, HfConfig, Llama3RopeScaling};
pub use error::{Error, Result};
pub use gguf::GgufWeights;
pub use gguf_write::GgufWriter;
pub use kernels::Logits;
pub use kv_cache::KvCache;
pub use load::{load_dir, load_dir_as, load_weights, Checkpoint};
pub use model::Model;
