//! Filler text with needles at given depths, assembled in tokens to an exact length.

use super::{too_short, Example, Probe, TaskKind};
use crate::Result;
use models::tokenizer::Tokenizer;

/// RULER's "noise" haystack: one repeated unit of filler.
pub const FILLER: &str =
    " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

/// The pieces of a needle-in-a-haystack example, each already in tokens.
pub struct Layout {
    pub kind: TaskKind,
    pub intro: Vec<u32>,
    /// `(depth, tokens)`; the first needle is the evidence for the answer.
    pub needles: Vec<(f64, Vec<u32>)>,
    pub question: Vec<u32>,
    pub answer: Vec<u32>,
    /// The depth the example is labelled with.
    pub depth: f64,
}

/// The filler position nearest `depth * filler_len` that is a boundary between filler
/// units (or the very end), so needles never split a sentence.
fn snap(depth: f64, filler_len: usize, unit: usize) -> usize {
    let want = depth.clamp(0.0, 1.0) * filler_len as f64;
    let down = (want / unit as f64).floor() as usize * unit;
    let mut best = down.min(filler_len);
    for c in [down + unit, filler_len] {
        if c <= filler_len && (c as f64 - want).abs() < (best as f64 - want).abs() {
            best = c;
        }
    }
    best
}

/// Intro, filler with needles, question, answer: exactly `seq_len` tokens.
pub fn assemble(tok: &dyn Tokenizer, seq_len: usize, layout: Layout) -> Result<Example> {
    let unit = tok.encode(FILLER)?;
    let fixed = layout.intro.len()
        + layout.needles.iter().map(|(_, n)| n.len()).sum::<usize>()
        + layout.question.len()
        + layout.answer.len();
    // At least one filler unit, so that depth means something.
    if seq_len < fixed + unit.len() {
        return Err(too_short(layout.kind, seq_len, fixed + unit.len()));
    }
    let filler_len = seq_len - fixed;
    let mut placed: Vec<(usize, usize)> = layout
        .needles
        .iter()
        .enumerate()
        .map(|(i, (d, _))| (snap(*d, filler_len, unit.len()), i))
        .collect();
    placed.sort();

    let mut tokens = Vec::with_capacity(seq_len);
    tokens.extend_from_slice(&layout.intro);
    let mut filler = unit.iter().copied().cycle();
    let mut used = 0;
    let mut evidence = None;
    for (pos, i) in placed {
        tokens.extend(filler.by_ref().take(pos - used));
        used = pos;
        let needle = &layout.needles[i].1;
        if i == 0 {
            evidence = Some((tokens.len(), needle.len()));
        }
        tokens.extend_from_slice(needle);
    }
    tokens.extend(filler.take(filler_len - used));
    tokens.extend_from_slice(&layout.question);
    let at = tokens.len();
    tokens.extend_from_slice(&layout.answer);
    Ok(Example {
        task: layout.kind,
        depth: Some(layout.depth),
        tokens,
        probes: vec![Probe {
            at,
            answer: layout.answer,
        }],
        evidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapping_keeps_units_whole_and_reaches_both_ends() {
        assert_eq!(snap(0.0, 100, 30), 0);
        assert_eq!(snap(1.0, 100, 30), 100);
        assert_eq!(snap(0.5, 100, 30), 60);
        assert_eq!(snap(0.4, 100, 30), 30);
        assert_eq!(snap(0.99, 100, 30), 100);
    }
}
