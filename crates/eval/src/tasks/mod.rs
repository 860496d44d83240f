//! Synthetic long-context tasks, generated per target length in the model's own
//! tokenizer (as RULER does); user task files are [`crate::taskfile`].
//!
//! Every generated [`Example`] is exactly `seq_len` tokens long: the prompt plus the
//! answers of its probes. A [`Probe`] says "after `tokens[..at]` the model should
//! continue with `answer`", and `tokens[at..at + answer.len()] == answer`. Generation
//! is seeded: the same seed, tokenizer and length give the same examples.

pub mod copy;
pub mod haystack;
pub mod mqar;
pub mod niah;
pub mod passkey;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

pub use results::task::{TaskKind, TaskParams};

use crate::{Error, Result};
use models::tokenizer::Tokenizer;

/// Where the model must produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The answer follows `tokens[..at]`.
    pub at: usize,
    pub answer: Vec<u32>,
}

/// One generated example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub task: TaskKind,
    /// Requested depth of the answer's evidence (passkey, niah).
    pub depth: Option<f64>,
    /// The whole sequence, answers included; `tokens.len()` is the target length.
    pub tokens: Vec<u32>,
    /// In order of position, not overlapping.
    pub probes: Vec<Probe>,
    /// The span of the evidence (the needle) in `tokens`, where there is one.
    pub evidence: Option<(usize, usize)>,
}

impl Example {
    /// Checks the invariants every generator promises.
    pub fn check(&self) -> Result<()> {
        let fail = |m: String| Err(Error::task(self.task, m));
        let mut end = 0;
        for p in &self.probes {
            if p.at < end.max(1) || p.answer.is_empty() {
                return fail(format!(
                    "probe at {} overlaps the previous one or is empty",
                    p.at
                ));
            }
            end = p.at + p.answer.len();
            if self.tokens.get(p.at..end) != Some(p.answer.as_slice()) {
                return fail(format!("probe at {} does not match the tokens", p.at));
            }
        }
        Ok(())
    }
}

/// What a uniform random guesser scores on exact match, per probe; `vocab` is
/// `min(model vocab, tokenizer vocab)`.
pub fn chance(kind: TaskKind, params: &TaskParams, vocab: usize) -> f64 {
    let v = params.token_vocab.min(vocab).max(2) as f64;
    match kind {
        TaskKind::Passkey => 1.0 / 90_000.0,
        TaskKind::Niah => 1.0 / 9_000_000.0,
        TaskKind::Mqar => 1.0 / (v / 2.0).floor(),
        TaskKind::Copy => (1.0 / (v - 1.0)).powi(params.copy_answer as i32),
    }
}

/// Generates `params.examples` examples of `kind` per depth (one set for tasks without
/// depths), each exactly `seq_len` tokens of `tok`. `vocab` is the model's vocabulary;
/// token-level tasks (mqar, copy) draw ids below `min(vocab, tokenizer vocab,
/// params.token_vocab)`.
pub fn generate(
    kind: TaskKind,
    tok: &dyn Tokenizer,
    vocab: usize,
    seq_len: usize,
    params: &TaskParams,
    seed: u64,
) -> Result<Vec<Example>> {
    // One stream per (task, length) so adding a length does not change the others.
    let stream = seed
        ^ (seq_len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (kind as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03);
    let mut rng = SmallRng::seed_from_u64(stream);
    // Token-level tasks draw ids the model and the tokenizer both know.
    let token_vocab = vocab.min(tok.vocab_size()).min(params.token_vocab);
    let depths: Vec<Option<f64>> = if kind.uses_depths() {
        params.depths.iter().map(|&d| Some(d)).collect()
    } else {
        vec![None]
    };
    let mut out = Vec::with_capacity(depths.len() * params.examples);
    for depth in depths {
        for _ in 0..params.examples {
            let ex = match kind {
                TaskKind::Passkey => {
                    passkey::generate(tok, seq_len, depth.unwrap_or(0.5), &mut rng)?
                }
                TaskKind::Niah => niah::generate(
                    tok,
                    seq_len,
                    depth.unwrap_or(0.5),
                    params.niah_needles,
                    &mut rng,
                )?,
                TaskKind::Mqar => mqar::generate(
                    seq_len,
                    token_vocab,
                    params.mqar_pairs,
                    params.mqar_power,
                    &mut rng,
                )?,
                TaskKind::Copy => {
                    copy::generate(seq_len, token_vocab, params.copy_answer, &mut rng)?
                }
            };
            debug_assert_eq!(ex.tokens.len(), seq_len);
            ex.check()?;
            out.push(ex);
        }
    }
    Ok(out)
}

/// `Error::Task` for a length too short to hold a task.
pub(crate) fn too_short(kind: TaskKind, seq_len: usize, needed: usize) -> Error {
    Error::task(
        kind,
        format!(
            "length {seq_len} is too short: this task needs at least {needed} tokens in this tokenizer"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::tokenizer::bytes::ByteTokenizer;

    #[test]
    fn every_task_has_its_claimed_length_and_is_seeded() {
        let p = TaskParams {
            examples: 3,
            depths: vec![0.0, 0.5, 1.0],
            ..TaskParams::default()
        };
        for kind in TaskKind::ALL {
            for len in [1024, 2000, 4096] {
                let a = generate(kind, &ByteTokenizer, 512, len, &p, 7).unwrap();
                let n = if kind.uses_depths() { 9 } else { 3 };
                assert_eq!(a.len(), n, "{kind}");
                for ex in &a {
                    assert_eq!(ex.tokens.len(), len, "{kind} @ {len}");
                    assert!(ex.tokens.iter().all(|&t| t < 512), "{kind}");
                    ex.check().unwrap();
                }
                assert_eq!(a, generate(kind, &ByteTokenizer, 512, len, &p, 7).unwrap());
                assert_ne!(a, generate(kind, &ByteTokenizer, 512, len, &p, 8).unwrap());
            }
        }
    }

    #[test]
    fn too_short_lengths_say_how_long_they_must_be() {
        let e = generate(
            TaskKind::Passkey,
            &ByteTokenizer,
            512,
            20,
            &TaskParams::default(),
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("passkey") && e.contains("at least"), "{e}");
    }

    #[test]
    fn chance_levels() {
        let p = TaskParams::default();
        assert!((chance(TaskKind::Mqar, &p, 256) - 1.0 / 128.0).abs() < 1e-12);
        assert!(chance(TaskKind::Copy, &p, 256) < 1e-30);
    }
}
