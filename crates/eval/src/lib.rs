//! Accuracy across lengths: synthetic long-context tasks generated in each model's own
//! tokens ([`tasks`]), user task files ([`taskfile`]), scoring ([`score`]), perplexity by position
//! ([`perplexity`]), tokenizer fertility per language ([`fertility`]) and the evaluation
//! runner ([`runner`]).

pub mod agreement;
pub mod dtype_cost;
pub mod fertility;
pub mod perplexity;
pub mod runner;
pub mod score;
pub mod taskfile;
pub mod tasks;
pub mod train;

pub use models::{Error, Result};
pub use runner::{run_eval, EvalOptions};
