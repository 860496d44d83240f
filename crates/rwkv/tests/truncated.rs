//! Official checkpoints cut short, at many offsets: every cut is an error that names
//! the file on one line, never a panic, and only the whole file loads.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use candle_core::Device;
use common::{pth, raw_tensors};
use rwkv::Checkpoint;

/// Offsets to cut a file of `len` bytes at: the first and last 64, and 256 evenly
/// spaced.
fn cut_offsets(len: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..64.min(len))
        .chain(len.saturating_sub(64)..len)
        .chain((0..256).map(|k| k * len / 256))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Cuts `bytes` at every offset into `path` and loads each; returns how many cuts
/// were tried and every outcome that was not a clean error. A cut shorter than
/// `short` bytes must say `short_says`; every other cut must say it is truncated.
fn sweep(bytes: &[u8], path: &Path, short: usize, short_says: &str) -> (usize, Vec<String>) {
    let offsets = cut_offsets(bytes.len());
    let mut bad = Vec::new();
    for &cut in &offsets {
        std::fs::write(path, &bytes[..cut]).unwrap();
        let got = catch_unwind(AssertUnwindSafe(|| Checkpoint::load(path, &Device::Cpu)));
        let problem = match got {
            Err(_) => Some("panicked".to_string()),
            Ok(Ok(_)) => Some("loaded".to_string()),
            Ok(Err(e)) => {
                let text = e.to_string();
                let file = path.display().to_string();
                let says = if cut < short { short_says } else { "truncated" };
                (text.contains(['\n', '\r']) || !text.starts_with(&file) || !text.contains(says))
                    .then(|| format!("not one line naming the file and `{says}`: {text:?}"))
            }
        };
        if let Some(p) = problem {
            bad.push(format!("cut at {cut} of {}: {p}", bytes.len()));
        }
    }
    std::fs::write(path, bytes).unwrap();
    if let Err(e) = Checkpoint::load(path, &Device::Cpu) {
        bad.push(format!("the whole file does not load: {e}"));
    }
    (offsets.len(), bad)
}

#[test]
fn a_pth_cut_anywhere_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut tried = 0;
    for name in ["tiny", "tiny_bf16"] {
        let bytes = std::fs::read(pth(name)).unwrap();
        // Two bytes make the zip magic, four the signature of the first header.
        let path = dir.path().join(format!("{name}.pth"));
        let (n, bad) = sweep(&bytes, &path, 4, "checkpoint");
        assert!(bad.is_empty(), "{name}.pth:\n{}", bad.join("\n"));
        tried += n;
    }
    eprintln!("truncated .pth: {tried} cuts");
}

#[test]
fn a_safetensors_cut_anywhere_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.safetensors");
    candle_core::safetensors::save(&raw_tensors("tiny"), &whole).unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    // Eight bytes hold the header's length.
    let (tried, bad) = sweep(&bytes, &dir.path().join("tiny.safetensors"), 8, "too short");
    assert!(bad.is_empty(), "tiny.safetensors:\n{}", bad.join("\n"));
    eprintln!("truncated .safetensors: {tried} cuts");
}
