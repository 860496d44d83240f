//! One file per model implementation, each an [`crate::Implementation`] that builds a
//! [`crate::CausalLm`]; [`crate::registry::REGISTRY`] lists them.

pub mod llama;
pub mod llama_quantized_upstream;
pub mod llama_upstream;
pub mod python;
pub mod rwkv7;
pub mod rwkv7_upstream;
