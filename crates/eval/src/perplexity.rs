//! Perplexity by position on user-supplied text: the loss-vs-position curve the RWKV
//! papers show on PG19, and bits per byte, which stays comparable across tokenizers.
//!
//! A document is cut into windows of at most `window` tokens, each evaluated from a
//! fresh state through [`CausalLm::log_probs`] (chunked by the implementations: no
//! `T x vocab` logits tensor for a whole window). Consecutive windows overlap by one
//! token, so every token but the document's first is predicted exactly once, at
//! window position `1..window`.

use std::path::{Path, PathBuf};

use crate::{Error, Result};
use models::model::CausalLm;
use models::tokenizer::Tokenizer;

/// Losses of one document.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentLoss {
    /// `(position in window, loss in nats)` of every predicted token.
    pub losses: Vec<(usize, f32)>,
    /// UTF-8 bytes of the predicted tokens.
    pub bytes: usize,
}

impl DocumentLoss {
    pub fn total_nats(&self) -> f64 {
        self.losses.iter().map(|&(_, l)| l as f64).sum()
    }

    /// Bits per byte of the predicted text.
    pub fn bits_per_byte(&self) -> f64 {
        self.total_nats() / std::f64::consts::LN_2 / self.bytes.max(1) as f64
    }

    /// Mean loss of the tokens at window positions `lo..hi`, if any.
    pub fn mean_loss(&self, lo: usize, hi: usize) -> Option<f64> {
        let v: Vec<f64> = self
            .losses
            .iter()
            .filter(|(p, _)| (lo..hi).contains(p))
            .map(|&(_, l)| l as f64)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// The windows `[start, end)` of a document of `n` tokens.
pub fn windows(n: usize, window: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if n < 2 || window < 2 {
        return out;
    }
    let mut start = 0;
    loop {
        let end = (start + window).min(n);
        out.push((start, end));
        if end == n {
            return out;
        }
        start = end - 1;
    }
}

/// Losses of a tokenized document with windows of `window` tokens.
pub fn document_loss(
    model: &mut dyn CausalLm,
    tok: &dyn Tokenizer,
    tokens: &[u32],
    window: usize,
) -> Result<DocumentLoss> {
    let mut losses = Vec::with_capacity(tokens.len());
    for (start, end) in windows(tokens.len(), window) {
        let lp = model.log_probs(&tokens[start..end])?;
        losses.extend(lp.iter().enumerate().map(|(i, &l)| (i + 1, -l)));
    }
    let bytes = if tokens.len() < 2 {
        0
    } else {
        tok.decode_bytes(&tokens[1..])?.len()
    };
    Ok(DocumentLoss { losses, bytes })
}

/// Position buckets for a window: `[1, 64), [64, 128), [128, 256), …, [.., window)`.
pub fn buckets(window: usize) -> Vec<(usize, usize)> {
    let mut edges = vec![1];
    let mut e = 64;
    while e < window {
        edges.push(e);
        e *= 2;
    }
    edges.push(window);
    edges.windows(2).map(|w| (w[0], w[1])).collect()
}

/// The documents of a corpus: one file, or every `.txt` file of a directory (sorted).
pub fn corpus_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::task(
            path.display(),
            "a corpus directory needs at least one .txt file",
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::model::token_log_prob;
    use models::tokenizer::bytes::ByteTokenizer;
    use models::BuildOptions;

    #[test]
    fn windows_overlap_by_one_and_cover_every_token() {
        assert_eq!(windows(10, 4), vec![(0, 4), (3, 7), (6, 10)]);
        assert_eq!(windows(4, 8), vec![(0, 4)]);
        assert!(windows(1, 8).is_empty());
        for (n, w) in [(1000, 256), (257, 256), (255, 256)] {
            let predicted: usize = windows(n, w).iter().map(|(a, b)| b - a - 1).sum();
            assert_eq!(predicted, n - 1);
        }
        assert_eq!(buckets(256), vec![(1, 64), (64, 128), (128, 256)]);
        assert_eq!(buckets(50), vec![(1, 50)]);
        assert_eq!(buckets(1000).last(), Some(&(512, 1000)));
    }

    /// Chunked log-likelihoods (the implementations' batched `log_probs`, 512-token
    /// chunks) agree with unchunked ones computed from single-token steps.
    #[test]
    fn chunked_and_unchunked_log_likelihoods_agree_on_tiny_models() {
        let tokens: Vec<u32> = (0..700u32).map(|i| (i * 31 + i / 7) % 256).collect();
        for name in ["llama", "rwkv7", "llama-upstream", "rwkv7-upstream"] {
            let spec = format!("{name}:preset=tiny");
            let mut m = models::registry::build(&spec.parse().unwrap(), &BuildOptions::default())
                .unwrap_or_else(|e| panic!("{spec}: {e}"));
            let chunked = document_loss(m.as_mut(), &ByteTokenizer, &tokens, 700).unwrap();
            let steps = m.logits_stepwise(&tokens).unwrap();
            let mut worst = 0f64;
            for (i, &(pos, loss)) in chunked.losses.iter().enumerate() {
                assert_eq!(pos, i + 1);
                let row = steps.get(i).unwrap();
                let want = -token_log_prob(&row, tokens[i + 1]).unwrap();
                worst = worst.max((loss - want).abs() as f64);
            }
            // f32 throughout; batched and single-token matmuls round differently.
            assert!(worst < 2e-3, "{spec}: worst difference {worst}");
            // Windows of 256 see less context, so differ; they still cover every token.
            let windowed = document_loss(m.as_mut(), &ByteTokenizer, &tokens, 256).unwrap();
            assert_eq!(windowed.losses.len(), tokens.len() - 1);
            assert_eq!(windowed.bytes, 699);
            let bpb = windowed.bits_per_byte();
            // A random model over 512 ids: about log2(512) = 9 bits per byte.
            assert!(bpb > 5.0 && bpb < 14.0, "{spec}: {bpb}");
        }
    }
}
