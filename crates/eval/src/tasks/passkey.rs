//! Passkey retrieval (Mohtashami & Jaggi 2023, as in RULER): a five-digit pass key
//! hidden at a given depth of repeated filler; the prompt ends "The pass key is" and the
//! answer is the key.

use rand::Rng;

use super::haystack::{assemble, Layout};
use super::{Example, TaskKind};
use crate::Result;
use models::tokenizer::Tokenizer;

const INTRO: &str = "There is an important info hidden inside a lot of irrelevant text. \
    Find it and memorize it. I will quiz you about the important information there.\n";
const QUESTION: &str = "\nWhat is the pass key? The pass key is";

/// The needle sentence for `key`.
pub fn needle(key: u32) -> String {
    format!(" The pass key is {key}. Remember it. {key} is the pass key.")
}

/// One example of exactly `seq_len` tokens with the needle at `depth` (0 = start).
pub fn generate(
    tok: &dyn Tokenizer,
    seq_len: usize,
    depth: f64,
    rng: &mut impl Rng,
) -> Result<Example> {
    let key: u32 = rng.random_range(10_000..100_000);
    assemble(
        tok,
        seq_len,
        Layout {
            kind: TaskKind::Passkey,
            intro: tok.encode(INTRO)?,
            needles: vec![(depth, tok.encode(&needle(key))?)],
            question: tok.encode(QUESTION)?,
            answer: tok.encode(&format!(" {key}"))?,
            depth,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::tokenizer::bytes::ByteTokenizer;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn the_answer_is_the_key_in_the_needle_at_the_depth_claimed() {
        let tok = ByteTokenizer;
        let mut rng = SmallRng::seed_from_u64(1);
        for &depth in &[0.0, 0.25, 0.5, 0.75, 1.0] {
            for len in [512, 2048] {
                let ex = generate(&tok, len, depth, &mut rng).unwrap();
                assert_eq!(ex.tokens.len(), len);
                let probe = &ex.probes[0];
                assert_eq!(probe.at + probe.answer.len(), len, "the answer ends it");
                let key = tok.decode(&probe.answer).unwrap();
                let key = key.trim();
                assert_eq!(key.len(), 5);
                let (start, n) = ex.evidence.unwrap();
                let needle_text = tok.decode(&ex.tokens[start..start + n]).unwrap();
                assert_eq!(needle_text, needle(key.parse().unwrap()));
                let prompt = tok.decode(&ex.tokens[..probe.at]).unwrap();
                assert!(prompt.ends_with("The pass key is"), "{prompt}");
                assert_eq!(prompt.matches(key).count(), 2, "key only in the needle");
                // The needle sits at the depth claimed, within one filler unit.
                let span = (len - probe.answer.len()) as f64;
                let unit = tok.encode(super::super::haystack::FILLER).unwrap().len() as f64;
                assert!(
                    ((start as f64) / span - depth).abs() <= (unit + 200.0) / span,
                    "depth {depth}: needle at {start} of {span}"
                );
            }
        }
    }
}
