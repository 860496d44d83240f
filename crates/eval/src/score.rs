//! Scoring a model on generated examples: exact match of the greedy continuation and
//! log-likelihood of the answer, from one pass over each example.
//!
//! Greedy decoding reproduces the answer exactly if and only if, fed the answer so far
//! (teacher forcing), the model's argmax is the next answer token at every step: while
//! the argmaxes match, greedy and teacher-forced inputs are the same tokens. So one
//! prefill per probe plus one step per answer token gives both scores.

use candle_core::{DType, Tensor};

use crate::tasks::Example;
use crate::{Error, Result};
use models::model::CausalLm;

/// The score of one probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeScore {
    /// Greedy continuation equals the answer.
    pub correct: bool,
    /// `sum log p(answer_i | prompt, answer_<i)`, nats.
    pub log_likelihood: f64,
    pub answer_tokens: usize,
}

impl ProbeScore {
    /// Mean log-likelihood per answer token.
    pub fn mean_log_likelihood(&self) -> f64 {
        self.log_likelihood / self.answer_tokens.max(1) as f64
    }
}

/// Argmax (first on ties) and log-softmax of one token, from `(vocab,)` logits.
pub struct Logits {
    values: Vec<f32>,
    log_sum_exp: f64,
}

impl Logits {
    pub fn new(logits: &Tensor) -> Result<Self> {
        let values = logits
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = values.iter().map(|&v| (v as f64 - max).exp()).sum();
        Ok(Self {
            log_sum_exp: max + sum.ln(),
            values,
        })
    }

    pub fn argmax(&self) -> u32 {
        let mut best = 0;
        for (i, &v) in self.values.iter().enumerate() {
            if v > self.values[best] {
                best = i;
            }
        }
        best as u32
    }

    pub fn log_prob(&self, token: u32) -> Result<f64> {
        let v = self.values.get(token as usize).ok_or_else(|| {
            Error::Unsupported(format!(
                "token {token} is outside the model's vocabulary of {}",
                self.values.len()
            ))
        })?;
        Ok(*v as f64 - self.log_sum_exp)
    }
}

/// Scores every probe of `ex`, from a fresh state.
pub fn score_example(model: &mut dyn CausalLm, ex: &Example) -> Result<Vec<ProbeScore>> {
    ex.check()?;
    model.reset()?;
    let mut scores = Vec::with_capacity(ex.probes.len());
    let mut fed = 0;
    for probe in &ex.probes {
        let mut logits = Logits::new(&model.prefill(&ex.tokens[fed..probe.at])?)?;
        let mut correct = true;
        let mut ll = 0.0;
        for (i, &want) in probe.answer.iter().enumerate() {
            correct &= logits.argmax() == want;
            ll += logits.log_prob(want)?;
            if i + 1 < probe.answer.len() {
                logits = Logits::new(&model.step(want)?)?;
            }
        }
        // Everything before the last answer token has been consumed.
        fed = probe.at + probe.answer.len() - 1;
        scores.push(ProbeScore {
            correct,
            log_likelihood: ll,
            answer_tokens: probe.answer.len(),
        });
    }
    Ok(scores)
}

/// Greedy continuation of `prompt` until `stop` says so or `max_tokens` are made.
pub fn greedy(
    model: &mut dyn CausalLm,
    prompt: &[u32],
    max_tokens: usize,
    mut stop: impl FnMut(&[u32]) -> bool,
) -> Result<Vec<u32>> {
    model.reset()?;
    let mut out = Vec::with_capacity(max_tokens);
    if max_tokens == 0 {
        return Ok(out);
    }
    let mut logits = Logits::new(&model.prefill(prompt)?)?;
    loop {
        let next = logits.argmax();
        out.push(next);
        if out.len() >= max_tokens || stop(&out) {
            return Ok(out);
        }
        logits = Logits::new(&model.step(next)?)?;
    }
}

/// Test models with known behaviour.
#[cfg(test)]
pub(crate) mod testing {
    use models::model::CausalLm;
    use models::BuildOptions;

    /// The hand-built copier of `testkit::induction`, written to a temporary directory
    /// and loaded through the registry like any Hugging Face checkpoint. The directory
    /// lives as long as the returned guard.
    pub fn copier(vocab: usize) -> (tempfile::TempDir, Box<dyn CausalLm>) {
        let dir = tempfile::tempdir().unwrap();
        testkit::induction::write(dir.path(), vocab, 0).unwrap();
        let spec = format!("llama:{}", dir.path().display());
        let model =
            models::registry::build(&spec.parse().unwrap(), &BuildOptions::default()).unwrap();
        (dir, model)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::copier;
    use super::*;
    use crate::tasks::{generate, Probe, TaskKind, TaskParams};
    use models::tokenizer::bytes::ByteTokenizer;
    use models::tokenizer::hf::HfTokenizer;
    use models::BuildOptions;

    /// Exact-match accuracy and mean log-likelihood per answer token.
    fn accuracy(model: &mut dyn CausalLm, examples: &[Example]) -> (f64, f64) {
        let scores: Vec<ProbeScore> = examples
            .iter()
            .flat_map(|ex| score_example(model, ex).unwrap())
            .collect();
        let n = scores.len() as f64;
        let correct = scores.iter().filter(|s| s.correct).count() as f64;
        let ll: f64 = scores.iter().map(|s| s.mean_log_likelihood()).sum();
        (correct / n, ll / n)
    }

    #[test]
    fn the_hand_built_copier_scores_everything_and_random_weights_nothing() {
        let p = TaskParams {
            examples: 4,
            ..TaskParams::default()
        };
        let vocab = 4096;
        let (dir, mut copier) = copier(vocab);
        // Its own word-level tokenizer, so that tokens are drawn from all 4096 ids.
        let tok = HfTokenizer::from_file(&dir.path().join("tokenizer.json")).unwrap();
        for len in [256, 1024] {
            let copy = generate(TaskKind::Copy, &tok, vocab, len, &p, 11).unwrap();
            let (acc, ll) = accuracy(copier.as_mut(), &copy);
            assert_eq!(acc, 1.0, "copy @ {len}");
            // Hand-set margins of tens of nats: the answer is all but certain.
            assert!(ll > -1e-3, "copy @ {len}: mean log-likelihood {ll}");
            let mqar = generate(TaskKind::Mqar, &tok, vocab, len, &p, 11).unwrap();
            assert_eq!(accuracy(copier.as_mut(), &mqar).0, 1.0, "mqar @ {len}");
        }

        let copy = generate(TaskKind::Copy, &ByteTokenizer, 512, 160, &p, 11).unwrap();
        let mqar = generate(TaskKind::Mqar, &ByteTokenizer, 512, 160, &p, 11).unwrap();
        let mut random = models::registry::build(
            &"llama:preset=tiny".parse().unwrap(),
            &BuildOptions::default(),
        )
        .unwrap();
        // Random weights: at chance, which for 16 copied tokens is ~0.
        let (acc, ll) = accuracy(random.as_mut(), &copy);
        assert_eq!(acc, 0.0);
        // Near uniform over 256 byte ids: about ln(1/256) per token.
        assert!(ll < -3.0, "random weights: mean log-likelihood {ll}");
        // One of 128 values per query: a few lucky guesses at most (a model that
        // always guesses one token hits at most once per example).
        assert!(accuracy(random.as_mut(), &mqar).0 <= 0.15);
    }

    #[test]
    fn teacher_forced_scores_equal_greedy_decoding() {
        // On a random model, the greedy continuation of the prompt is "the answer":
        // exact match must then be 1 and the log-likelihood that of the continuation.
        let mut m = models::registry::build(
            &"llama:preset=tiny".parse().unwrap(),
            &BuildOptions::default(),
        )
        .unwrap();
        let prompt: Vec<u32> = (0..40).map(|i| (i * 7 % 256) as u32).collect();
        let gen = greedy(m.as_mut(), &prompt, 5, |_| false).unwrap();
        let mut tokens = prompt.clone();
        tokens.extend_from_slice(&gen);
        let ex = Example {
            task: TaskKind::Copy,
            depth: None,
            tokens: tokens.clone(),
            probes: vec![Probe {
                at: prompt.len(),
                answer: gen.clone(),
            }],
            evidence: None,
        };
        let s = score_example(m.as_mut(), &ex).unwrap();
        assert!(s[0].correct);
        let lp = m.log_probs(&tokens).unwrap();
        let want: f64 = lp[prompt.len() - 1..].iter().map(|&x| x as f64).sum();
        // f32 logits summed in f64 along two paths (prefill+steps vs chunked forward).
        assert!((s[0].log_likelihood - want).abs() < 1e-3, "{s:?} vs {want}");
        // Change one answer token: no longer an exact match.
        let mut wrong = ex.clone();
        let last = wrong.probes[0].answer.len() - 1;
        wrong.probes[0].answer[last] = (gen[last] + 1) % 256;
        wrong.tokens[prompt.len() + last] = wrong.probes[0].answer[last];
        assert!(!score_example(m.as_mut(), &wrong).unwrap()[0].correct);
    }
}
