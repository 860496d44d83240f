//! The synthetic tasks a suite names and the settings of their generation (the
//! generators live in the eval crate).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The synthetic tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// A five-digit pass key hidden at a given depth of filler text.
    Passkey,
    /// Several key/number needles; the question asks for the one at a given depth.
    Niah,
    /// Multi-query associative recall (Zoology): key/value pairs, then queried keys.
    Mqar,
    /// A random token sequence, a separator, and the sequence again.
    Copy,
}

impl TaskKind {
    pub const ALL: [TaskKind; 4] = [
        TaskKind::Passkey,
        TaskKind::Niah,
        TaskKind::Mqar,
        TaskKind::Copy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Passkey => "passkey",
            TaskKind::Niah => "niah",
            TaskKind::Mqar => "mqar",
            TaskKind::Copy => "copy",
        }
    }

    /// Whether the task places its answer at the requested depths.
    pub fn uses_depths(self) -> bool {
        matches!(self, TaskKind::Passkey | TaskKind::Niah)
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TaskKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TaskKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::Task {
                task: s.to_string(),
                message: "unknown task (known: passkey, niah, mqar, copy)".into(),
            })
    }
}

/// Settings of generation, with defaults that suit every length from 256 tokens up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskParams {
    /// Examples per (length, depth).
    pub examples: usize,
    /// Where the needle goes, as fractions of the context (passkey, niah).
    pub depths: Vec<f64>,
    /// Needles in the haystack, one of them asked for (niah).
    pub niah_needles: usize,
    /// Key/value pairs (mqar); 0 chooses `min(64, length / 16)`.
    pub mqar_pairs: usize,
    /// Evaluate MQAR once per key-value count listed (records carry `pairs`; a count
    /// over a quarter of a length is left out there); empty: `mqar_pairs` alone.
    pub mqar_grid: Vec<usize>,
    /// Zoology's power-law exponent of query gaps (mqar); small favours short gaps.
    pub mqar_power: f64,
    /// Answer tokens per copy example.
    pub copy_answer: usize,
    /// Token ids of mqar and copy are drawn from `1..min(vocab, token_vocab)`.
    pub token_vocab: usize,
}

impl TaskParams {
    /// The settings that shape `kind`'s examples, as `KEY=VALUE` (for records and logs).
    pub fn summary(&self, kind: TaskKind) -> String {
        match kind {
            TaskKind::Passkey => "passkey".into(),
            TaskKind::Niah => format!("niah_needles={}", self.niah_needles),
            TaskKind::Mqar => format!(
                "mqar_pairs={}, mqar_power={}, token_vocab={}",
                self.mqar_pairs, self.mqar_power, self.token_vocab
            ),
            TaskKind::Copy => format!(
                "copy_answer={}, token_vocab={}",
                self.copy_answer, self.token_vocab
            ),
        }
    }
}

impl Default for TaskParams {
    fn default() -> Self {
        Self {
            examples: 10,
            depths: vec![0.0, 0.25, 0.5, 0.75, 1.0],
            niah_needles: 4,
            mqar_pairs: 0,
            mqar_grid: Vec::new(),
            mqar_power: 0.01,
            copy_answer: 16,
            token_vocab: 8192,
        }
    }
}
