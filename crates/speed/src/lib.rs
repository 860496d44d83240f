//! Speed and memory of a suite's cells: each (model, length) measured in an isolated
//! child process ([`measure`]), run in rounds and pooled ([`runner`]); [`child`] is the
//! child's side, the binary's `cell` command; [`fit`] searches the longest context
//! under a memory budget, one isolated process per prompt length.

pub mod child;
pub mod fit;
pub mod measure;
pub mod runner;
pub mod shard;

pub use child::cell_main;
pub use runner::run_suite;
