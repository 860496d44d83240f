//! Checkpoints cut short, built through the registry as a suite's spec would build
//! them: every implementation that reads a checkpoint refuses every cut with one line
//! naming the file and saying it is truncated, never a panic, and builds from the
//! whole file.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use models::{registry, BuildOptions};
use results::ModelSpec;

fn golden(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/golden")
        .join(rel)
}

/// 64 evenly spaced offsets and the last 8 of a file of `len` bytes.
fn cut_offsets(len: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..64)
        .map(|k| k * len / 64)
        .chain(len.saturating_sub(8)..len)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Builds `spec` with `file` cut at each offset; returns the cuts tried and each
/// outcome that was not a clean error naming `file`.
fn sweep(spec: &ModelSpec, file: &Path, bytes: &[u8]) -> (usize, Vec<String>) {
    let offsets = cut_offsets(bytes.len());
    let mut bad = Vec::new();
    for &cut in &offsets {
        std::fs::write(file, &bytes[..cut]).unwrap();
        let got = catch_unwind(AssertUnwindSafe(|| {
            registry::build(spec, &BuildOptions::default()).map(|_| ())
        }));
        let problem = match got {
            Err(_) => Some("panicked".to_string()),
            Ok(Ok(())) => Some("built".to_string()),
            Ok(Err(e)) => {
                // Below eight bytes a file is too short to tell what it was meant to be.
                let says = if cut < 8 { "" } else { "truncated" };
                let text = e.to_string();
                (text.contains(['\n', '\r'])
                    || !text.contains(&file.display().to_string())
                    || !text.contains(says))
                .then(|| format!("not one line naming the file and `{says}`: {text:?}"))
            }
        };
        if let Some(p) = problem {
            bad.push(format!("{spec}: cut at {cut} of {}: {p}", bytes.len()));
        }
    }
    std::fs::write(file, bytes).unwrap();
    if let Err(e) = registry::build(spec, &BuildOptions::default()) {
        bad.push(format!("{spec}: the whole file does not build: {e}"));
    }
    (offsets.len(), bad)
}

#[test]
fn every_implementation_refuses_a_cut_checkpoint_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pth = dir.path().join("tiny.pth");
    let hf = dir.path().join("llama");
    std::fs::create_dir(&hf).unwrap();
    std::fs::copy(golden("llama_gqa/config.json"), hf.join("config.json")).unwrap();
    let weights = hf.join("model.safetensors");
    let rwkv = std::fs::read(golden("rwkv7/tiny.pth")).unwrap();
    let llama = std::fs::read(golden("llama_gqa/model.safetensors")).unwrap();

    let mut tried = 0;
    let mut bad = Vec::new();
    for (name, file, bytes, target) in [
        ("rwkv7", &pth, &rwkv, &pth),
        ("rwkv7-upstream", &pth, &rwkv, &pth),
        ("llama", &weights, &llama, &hf),
        ("llama-upstream", &weights, &llama, &hf),
    ] {
        let spec: ModelSpec = format!("{name}:{}", target.display()).parse().unwrap();
        let (n, b) = sweep(&spec, file, bytes);
        tried += n;
        bad.extend(b);
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    eprintln!("truncated checkpoints through the registry: {tried} builds");
}
