//! Training batches: random windows of a tokenized text corpus, or fresh examples of
//! a synthetic task whose loss counts only the answers (as Zoology trains MQAR).
//! The batch of step `s` depends only on the seed and `s`, so a resumed run sees the
//! batches the uninterrupted run would have seen.

use std::path::Path;

use candle_core::{Device, Tensor};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::perplexity::corpus_files;
use crate::tasks::{self, TaskKind, TaskParams};
use crate::{Error, Result};
use models::tokenizer::Tokenizer;

/// Token ids `(B, T)` and, for tasks, the targets the loss counts `(B, T - 1)`.
pub struct Batch {
    pub tokens: Tensor,
    pub weights: Option<Tensor>,
}

pub enum Source {
    Text {
        tokens: Vec<u32>,
    },
    Task {
        kind: TaskKind,
        /// Step `s` draws from entry `(s - 1) % mix.len()`: Zoology trains one model on
        /// several lengths and key-value counts at once.
        mix: Vec<Mix>,
        tokenizer: Box<dyn Tokenizer>,
        vocab: usize,
    },
}

/// One setting of a task mixture: its sequence length and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    pub seq_len: usize,
    pub params: TaskParams,
}

impl Source {
    /// Tokenizes a file or every `.txt` file of a directory, documents joined in order.
    pub fn text(path: &Path, tok: &dyn Tokenizer, seq_len: usize) -> Result<Self> {
        let mut tokens = Vec::new();
        for file in corpus_files(path)? {
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
            tokens.extend(tok.encode(&text)?);
        }
        if tokens.len() <= seq_len {
            return Err(Error::task(
                path.display(),
                format!(
                    "the corpus is {} tokens, too short for one window of {seq_len}",
                    tokens.len()
                ),
            ));
        }
        Ok(Self::Text { tokens })
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Text { tokens } => format!("text, {} tokens", tokens.len()),
            Source::Task { kind, mix, .. } if mix.len() == 1 => format!("task {kind}"),
            Source::Task { kind, mix, .. } => format!(
                "task {kind}, mixture of {}",
                mix.iter()
                    .map(|m| format!("{} ({})", m.seq_len, m.params.summary(*kind)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The batch of step `step` (`seq_len` is that of text; a task's comes from its
    /// mixture).
    pub fn batch(&self, step: u64, batch: usize, seq_len: usize, seed: u64) -> Result<Batch> {
        let stream = seed ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let dev = Device::Cpu;
        match self {
            Source::Text { tokens } => {
                let mut rng = SmallRng::seed_from_u64(stream);
                let mut rows = Vec::with_capacity(batch * seq_len);
                for _ in 0..batch {
                    let start = rng.random_range(0..=tokens.len() - seq_len);
                    rows.extend_from_slice(&tokens[start..start + seq_len]);
                }
                Ok(Batch {
                    tokens: Tensor::from_vec(rows, (batch, seq_len), &dev)?,
                    weights: None,
                })
            }
            Source::Task {
                kind,
                mix,
                tokenizer,
                vocab,
            } => {
                let Mix { seq_len, params } = &mix[(step.max(1) - 1) as usize % mix.len()];
                let seq_len = *seq_len;
                let mut rng = SmallRng::seed_from_u64(stream);
                let mut examples = Vec::with_capacity(batch);
                if kind.uses_depths() {
                    // A depth drawn per example, so training sees the needle everywhere.
                    for _ in 0..batch {
                        let one = TaskParams {
                            examples: 1,
                            depths: vec![rng.random_range(0.0..=1.0)],
                            ..params.clone()
                        };
                        let seed = rng.random::<u64>();
                        examples.extend(tasks::generate(
                            *kind,
                            tokenizer.as_ref(),
                            *vocab,
                            seq_len,
                            &one,
                            seed,
                        )?);
                    }
                } else {
                    let all = TaskParams {
                        examples: batch,
                        ..params.clone()
                    };
                    examples =
                        tasks::generate(*kind, tokenizer.as_ref(), *vocab, seq_len, &all, stream)?;
                }
                let mut rows = Vec::with_capacity(batch * seq_len);
                let mut weights = vec![0f32; batch * (seq_len - 1)];
                for (b, ex) in examples.iter().enumerate() {
                    rows.extend_from_slice(&ex.tokens);
                    for probe in &ex.probes {
                        // Target position t (predicted from t - 1) is weight row t - 1.
                        for t in probe.at..probe.at + probe.answer.len() {
                            weights[b * (seq_len - 1) + t - 1] = 1.0;
                        }
                    }
                }
                Ok(Batch {
                    tokens: Tensor::from_vec(rows, (batch, seq_len), &dev)?,
                    weights: Some(Tensor::from_vec(weights, (batch, seq_len - 1), &dev)?),
                })
            }
        }
    }
}
