//! The rwkv-bench harness: the model contract ([`CausalLm`]), a registry of
//! implementations, suites, isolated measurement, statistics and the results schema.

pub mod adapters;
pub mod analysis;
pub mod atomic;
pub mod checkpoint;
pub mod compare;
pub mod error;
pub mod eval;
pub mod history;
pub mod induction;
pub mod machine;
pub mod measure;
pub mod model;
pub mod perplexity;
pub mod presets;
pub mod registry;
pub mod results;
pub mod runner;
pub mod score;
pub mod spec;
pub mod stats;
pub mod suite;
pub mod synthetic;
pub mod tasks;
pub mod tokenizer;

pub use error::{Error, Result};
pub use model::{Arch, CausalLm, ModelInfo};
