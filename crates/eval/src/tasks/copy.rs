//! Copying ("repeat after me", Jelassi et al. 2024): a random token sequence `X` of
//! `n` tokens, a separator, then `X` again; the last `answer` tokens of the repeat are
//! the answer, so the model must copy from `n + 1` positions back. Recurrent models
//! must hold all of `X` in their state; attention can look it up.
//!
//! Layout: `X (n) | SEP | X[..n - a] | answer = X[n - a..]`, total `2n + 1` tokens, so
//! `n = (seq_len - 1) / 2` and an even `seq_len` gets one leading filler token.

use rand::Rng;

use super::{too_short, Example, Probe, TaskKind};
use crate::{Error, Result};

/// The separator between the sequence and its repeat; sequences use ids `1..vocab`.
pub const SEPARATOR: u32 = 0;

/// One example of exactly `seq_len` tokens over ids `0..vocab` with `answer` answer
/// tokens.
pub fn generate(
    seq_len: usize,
    vocab: usize,
    answer: usize,
    rng: &mut impl Rng,
) -> Result<Example> {
    if vocab < 3 || answer == 0 {
        return Err(Error::task(
            "copy",
            format!(
                "needs a vocabulary of 3 ids or more and at least one answer token (have {vocab}, {answer})"
            ),
        ));
    }
    let n = seq_len.saturating_sub(1) / 2;
    if n < answer + 1 {
        return Err(too_short(TaskKind::Copy, seq_len, 2 * (answer + 1) + 1));
    }
    let lead = seq_len - (2 * n + 1);
    let mut tokens: Vec<u32> = Vec::with_capacity(seq_len);
    tokens.extend((0..lead).map(|_| SEPARATOR));
    let x: Vec<u32> = (0..n).map(|_| rng.random_range(1..vocab as u32)).collect();
    tokens.extend_from_slice(&x);
    tokens.push(SEPARATOR);
    tokens.extend_from_slice(&x);
    let at = seq_len - answer;
    Ok(Example {
        task: TaskKind::Copy,
        depth: None,
        probes: vec![Probe {
            at,
            answer: x[n - answer..].to_vec(),
        }],
        evidence: Some((lead + n - answer, answer)),
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn the_answer_repeats_the_end_of_the_sequence() {
        let mut rng = SmallRng::seed_from_u64(2);
        for len in [64, 65, 1000] {
            let ex = generate(len, 256, 16, &mut rng).unwrap();
            assert_eq!(ex.tokens.len(), len);
            let p = &ex.probes[0];
            let (start, n) = ex.evidence.unwrap();
            assert_eq!(&ex.tokens[start..start + n], p.answer.as_slice());
            assert_eq!(p.at + 16, len);
            assert_eq!(
                ex.tokens.iter().filter(|&&t| t == SEPARATOR).count(),
                1 + (len + 1) % 2
            );
        }
        assert!(generate(20, 256, 16, &mut rng).is_err());
    }
}
