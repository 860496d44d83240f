//! A Hugging Face checkpoint whose `model.safetensors` is cut short, at many offsets:
//! every cut is an error that names that file on one line, never a panic, and only the
//! whole file loads.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use candle_core::{DType, Device};
use common::fixture;
use transformer::load_dir;

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

#[test]
fn a_safetensors_cut_anywhere_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("llama_gqa").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let bytes = std::fs::read(fixture("llama_gqa").join("model.safetensors")).unwrap();
    let file = dir.path().join("model.safetensors");
    let offsets = cut_offsets(bytes.len());
    let mut bad = Vec::new();
    for &cut in &offsets {
        std::fs::write(&file, &bytes[..cut]).unwrap();
        let got = catch_unwind(AssertUnwindSafe(|| {
            load_dir(dir.path(), DType::F32, &Device::Cpu)
        }));
        let problem = match got {
            Err(_) => Some("panicked".to_string()),
            Ok(Ok(_)) => Some("loaded".to_string()),
            Ok(Err(e)) => {
                // Eight bytes hold the header's length.
                let says = if cut < 8 { "too short" } else { "truncated" };
                let text = e.to_string();
                (text.contains(['\n', '\r'])
                    || !text.starts_with(&file.display().to_string())
                    || !text.contains(says))
                .then(|| format!("not one line naming the file and `{says}`: {text:?}"))
            }
        };
        if let Some(p) = problem {
            bad.push(format!("cut at {cut} of {}: {p}", bytes.len()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    std::fs::write(&file, &bytes).unwrap();
    load_dir(dir.path(), DType::F32, &Device::Cpu).unwrap();
    eprintln!("truncated model.safetensors: {} cuts", offsets.len());
}

/// A file that is not a safetensors file at all is not called truncated, and its path
/// is named once (candle's own error repeats it).
#[test]
fn a_file_of_text_is_not_a_safetensors_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.safetensors");
    std::fs::write(&file, "these are not weights, just some text").unwrap();
    let e = transformer::Checkpoint::open(&file)
        .err()
        .unwrap()
        .to_string();
    let name = file.display().to_string();
    assert!(
        e.starts_with(&format!("{name}: not a safetensors file")),
        "{e}"
    );
    assert_eq!(e.matches(&name).count(), 1, "{e}");
}
