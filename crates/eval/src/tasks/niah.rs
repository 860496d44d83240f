//! Multi-key needle in a haystack (RULER's `niah_multikey`): several "special magic
//! number for KEY" needles; the question asks for the one placed at the given depth,
//! the others sit at random depths as distractors.

use rand::Rng;

use super::haystack::{assemble, Layout};
use super::{Example, TaskKind};
use crate::{Error, Result};
use models::tokenizer::Tokenizer;

const INTRO: &str = "Some special magic numbers are hidden within the following text. \
    Make sure to memorize it. I will quiz you about the numbers afterwards.\n";

const SYLLABLES: [&str; 20] = [
    "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "da", "zu", "fi", "go", "be", "ha", "ju",
    "wo", "xe", "ny", "qu",
];

/// A pronounceable made-up word, so no tokenizer has it as one token.
fn word(rng: &mut impl Rng) -> String {
    (0..3)
        .map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())])
        .collect()
}

pub fn needle(key: &str, value: u32) -> String {
    format!(" One of the special magic numbers for {key} is: {value}.")
}

fn question(key: &str) -> String {
    format!(
        "\nWhat is the special magic number for {key} mentioned in the provided text? \
         The special magic number for {key} mentioned in the provided text is"
    )
}

/// One example of exactly `seq_len` tokens with `needles` needles; the one asked for
/// is at `depth`.
pub fn generate(
    tok: &dyn Tokenizer,
    seq_len: usize,
    depth: f64,
    needles: usize,
    rng: &mut impl Rng,
) -> Result<Example> {
    if needles == 0 {
        return Err(Error::task("niah", "`niah_needles` must be at least 1"));
    }
    let mut keys: Vec<String> = Vec::with_capacity(needles);
    while keys.len() < needles {
        let w = word(rng);
        if !keys.contains(&w) {
            keys.push(w);
        }
    }
    let mut values: Vec<u32> = Vec::with_capacity(needles);
    while values.len() < needles {
        let v = rng.random_range(1_000_000..10_000_000);
        if !values.contains(&v) {
            values.push(v);
        }
    }
    let mut placed = Vec::with_capacity(needles);
    for (i, (k, v)) in keys.iter().zip(&values).enumerate() {
        let d = if i == 0 { depth } else { rng.random::<f64>() };
        placed.push((d, tok.encode(&needle(k, *v))?));
    }
    assemble(
        tok,
        seq_len,
        Layout {
            kind: TaskKind::Niah,
            intro: tok.encode(INTRO)?,
            needles: placed,
            question: tok.encode(&question(&keys[0]))?,
            answer: tok.encode(&format!(" {}", values[0]))?,
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
    fn the_answer_is_the_value_of_the_key_asked_for() {
        let tok = ByteTokenizer;
        let mut rng = SmallRng::seed_from_u64(3);
        for &depth in &[0.0, 0.5, 1.0] {
            let ex = generate(&tok, 2000, depth, 4, &mut rng).unwrap();
            assert_eq!(ex.tokens.len(), 2000);
            let probe = &ex.probes[0];
            let answer = tok.decode(&probe.answer).unwrap();
            let prompt = tok.decode(&ex.tokens[..probe.at]).unwrap();
            let key = prompt
                .rsplit("The special magic number for ")
                .next()
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            let (start, n) = ex.evidence.unwrap();
            let evidence = tok.decode(&ex.tokens[start..start + n]).unwrap();
            assert_eq!(
                evidence,
                needle(key, answer.trim().parse().unwrap()),
                "the evidence names the key asked for and holds the answer"
            );
            assert_eq!(prompt.matches("special magic numbers for").count(), 4);
        }
    }
}
