//! Multi-query associative recall, with Zoology's construction (Arora et al. 2023,
//! `zoology/data/associative_recall.py::multiquery_ar`):
//!
//! - `K` key/value pairs first, `k1 v1 k2 v2 …`: keys drawn without replacement from
//!   the lower half of the vocabulary (`1..V/2`), values from the upper half (`V/2..V`);
//! - then the query region: each key appears once more at position `2 * gap`, the gaps
//!   drawn without replacement with probability proportional to `gap^(a - 1)` (a power
//!   law: most queries come soon after the pairs, a few much later);
//! - every other query-region position holds a random token that is not a key.
//!
//! Each query is one probe: after the queried key, the model must produce its value.
//! Unlike Zoology, which leaves that position to a random token, the value is written
//! there, so the sequence is a valid teacher-forcing input. And unlike Zoology, filler
//! never repeats a key: a key followed by a random token before its query would give
//! the query two plausible answers.

use rand::Rng;

use super::{too_short, Example, Probe, TaskKind};
use crate::{Error, Result};

/// `k` distinct indices of `0..weights.len()`, drawn without replacement with
/// probability proportional to `weights` (Efraimidis & Spirakis 2006, in log space).
fn weighted_sample(weights: &[f64], k: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut keyed: Vec<(f64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            (u.ln() / w, i)
        })
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    keyed.into_iter().take(k).map(|(_, i)| i).collect()
}

/// `k` distinct values from `range`, in random order.
fn distinct(range: std::ops::Range<u32>, k: usize, rng: &mut impl Rng) -> Vec<u32> {
    let mut pool: Vec<u32> = range.collect();
    for i in 0..k {
        let j = rng.random_range(i..pool.len());
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool
}

/// One example of exactly `seq_len` tokens over ids `0..vocab`.
///
/// `pairs == 0` chooses `min(64, seq_len / 16)` pairs (at least one).
pub fn generate(
    seq_len: usize,
    vocab: usize,
    pairs: usize,
    power: f64,
    rng: &mut impl Rng,
) -> Result<Example> {
    let fail = |m: String| Error::task("mqar", m);
    let half = vocab / 2;
    if half < 2 {
        return Err(fail(format!("a vocabulary of {vocab} ids is too small")));
    }
    let k = if pairs == 0 {
        (seq_len / 16).clamp(1, 64)
    } else {
        pairs
    };
    if k >= half {
        return Err(fail(format!(
            "{k} key/value pairs need a vocabulary of more than {} ids, have {vocab}",
            2 * k + 1
        )));
    }
    if seq_len < 4 * k {
        return Err(too_short(TaskKind::Mqar, seq_len, 4 * k));
    }
    if !(power > 0.0 && power <= 1.0) {
        return Err(fail(format!("`mqar_power` {power} must be in (0, 1]")));
    }
    let keys = distinct(1..half as u32, k, rng);
    let values = distinct(half as u32..vocab as u32, k, rng);
    let context = 2 * k;
    let space = (seq_len - context) / 2;
    let weights: Vec<f64> = (1..=space).map(|g| (g as f64).powf(power - 1.0)).collect();
    let gaps = weighted_sample(&weights, k, rng);

    let mut tokens: Vec<u32> = Vec::with_capacity(seq_len);
    for (key, value) in keys.iter().zip(&values) {
        tokens.extend([*key, *value]);
    }
    let mut sorted_keys = keys.clone();
    sorted_keys.sort_unstable();
    tokens.extend((context..seq_len).map(|_| loop {
        let t = rng.random_range(0..vocab as u32);
        if sorted_keys.binary_search(&t).is_err() {
            break t;
        }
    }));
    let mut probes = Vec::with_capacity(k);
    for (i, gap) in gaps.into_iter().enumerate() {
        let at = context + 2 * gap;
        tokens[at] = keys[i];
        tokens[at + 1] = values[i];
        probes.push(Probe {
            at: at + 1,
            answer: vec![values[i]],
        });
    }
    probes.sort_by_key(|p| p.at);
    Ok(Example {
        task: TaskKind::Mqar,
        depth: None,
        tokens,
        probes,
        evidence: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn keys_and_values_come_from_their_halves_and_each_query_recalls_its_pair() {
        let mut rng = SmallRng::seed_from_u64(5);
        let ex = generate(1024, 256, 16, 0.01, &mut rng).unwrap();
        assert_eq!(ex.tokens.len(), 1024);
        assert_eq!(ex.probes.len(), 16);
        let pairs: Vec<(u32, u32)> = ex.tokens[..32].chunks(2).map(|c| (c[0], c[1])).collect();
        for &(k, v) in &pairs {
            assert!((1..128).contains(&k) && (128..256).contains(&v), "{k} {v}");
        }
        for p in &ex.probes {
            let key = ex.tokens[p.at - 1];
            let (_, v) = pairs.iter().find(|(k, _)| *k == key).unwrap();
            assert_eq!(p.answer, vec![*v]);
            assert!(p.at >= 32 && (p.at - 32) % 2 == 1);
        }
        // Each key occurs twice: in its pair and in its query, never as filler.
        for (k, _) in &pairs {
            assert_eq!(ex.tokens.iter().filter(|&t| t == k).count(), 2, "key {k}");
        }
    }

    #[test]
    fn query_gaps_follow_a_power_law() {
        // Short gaps are far more frequent than long ones.
        let mut rng = SmallRng::seed_from_u64(9);
        let (mut near, mut far) = (0, 0);
        for _ in 0..50 {
            let ex = generate(4096, 8192, 8, 0.01, &mut rng).unwrap();
            for p in &ex.probes {
                let gap = (p.at - 16) / 2;
                if gap < 100 {
                    near += 1;
                } else if gap >= 1000 {
                    far += 1;
                }
            }
        }
        assert!(near > 2 * far, "near {near}, far {far}");
        assert!(far > 0, "some queries still come late");
    }

    #[test]
    fn impossible_settings_are_named() {
        let mut rng = SmallRng::seed_from_u64(0);
        assert!(generate(64, 16, 8, 0.01, &mut rng).is_err());
        assert!(generate(16, 256, 8, 0.01, &mut rng).is_err());
        assert!(generate(1024, 256, 8, 0.0, &mut rng).is_err());
    }
}
