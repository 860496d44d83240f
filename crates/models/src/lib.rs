//! The models under test: the [`CausalLm`] contract, one [`Implementation`] per file
//! under `adapters/` with a line in the [`registry`], the one table of matched
//! [`presets`], synthetic weights, checkpoint reading and tokenizers.

pub mod adapters;
pub mod batched;
pub mod checkpoint;
pub mod error;
pub mod gguf;
pub mod implementation;
pub mod model;
pub mod presets;
pub mod pretrained;
pub mod registry;
pub mod synthetic;
pub mod tokenizer;
pub mod trainable;

pub use error::{Error, Result};
pub use implementation::{weight_dtype, BuildOptions, Implementation, Runtime};
pub use model::CausalLm;
pub use trainable::Differentiable;
