//! rwkv-bench's data: the results schema, suite files, statistics, analysis, compare
//! and history. Pure data (no candle, no tokenizers), so reports and comparisons build
//! and run without the models.

pub mod accuracy;
pub mod analysis;
pub mod atomic;
pub mod compare;
pub mod dtype_cost;
pub mod error;
pub mod fit;
pub mod gate;
pub mod history;
pub mod llama_bench;
pub mod machine;
pub mod merge;
pub mod model_info;
pub mod pipeline;
pub mod record;
pub mod roofline;
pub mod schema;
pub mod shard;
pub mod spec;
pub mod stats;
pub mod suite;
pub mod task;
pub mod tool;

pub use error::{Error, Result};
pub use model_info::{Arch, ModelInfo, Weights};
pub use record::{CellKey, Failure, FailureKind, Metric, Record, TaskFields, Unit};
pub use schema::Results;
pub use spec::{ModelSpec, Source, TokenizerSpec};
