//! RWKV-7 ("Goose", x070) on candle. See <https://arxiv.org/abs/2503.14456>.
//!
//! A stateful causal LM whose prompt processing is batched matrix work: every
//! projection is one matrix product over all `B x T` positions of a chunk, and the
//! WKV-7 recurrence runs as one fused CPU kernel ([`wkv`]). A decode step is the same
//! path with `T = 1`.
//!
//! ```no_run
//! # fn main() -> rwkv::Result<()> {
//! use candle_core::{Device, Tensor};
//! use rwkv::{Checkpoint, Logits, Model, State};
//!
//! let dev = Device::Cpu;
//! let ckpt = Checkpoint::load("RWKV-x070-World-0.1B.pth", &dev)?;
//! let cfg = ckpt.config;
//! let model = Model::new(&cfg, ckpt.into_var_builder(&dev))?;
//! let mut state = State::new(&cfg, 1, &dev)?;
//! let prompt = Tensor::new(&[[510u32, 4600, 43]], &dev)?;
//! let logits = model.forward(&prompt, &mut state, Logits::Last)?; // (1, vocab)
//! # Ok(()) }
//! ```

pub mod channel_mix;
pub mod config;
pub mod error;
mod gemv;
pub mod gguf;
pub mod load;
pub mod model;
mod ops;
pub mod state;
pub mod time_mix;
pub mod train;
pub mod wkv;
pub mod wkv_grad;

pub use config::{CheckpointShapes, Config, LoraDims};
pub use error::{Error, Result};
pub use gguf::GgufWeights;
pub use kernels::Logits;
pub use load::Checkpoint;
pub use model::Model;
pub use state::{LayerState, State};
pub use train::Trainable;
