//! The PyTorch peers (`rwkv7-official`, `llama-hf`) through the real cell protocol:
//! `scripts/peers/cell.py` under a Python interpreter, started by `rwkv-bench run`.
//!
//! CI has Python but not torch: the tests here check what a user without the peers'
//! environment gets (a clear refusal, or a failed cell naming the setup script while
//! every other cell is measured). With `RWKV_BENCH_PYTHON` pointing at an interpreter
//! made by `scripts/peers/setup.sh`, `cargo test --release --test python_peers --
//! --ignored` measures both peers at the tiny preset.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwkv-bench"));
    cmd.current_dir(repo()).env("RAYON_NUM_THREADS", "1");
    cmd
}

fn write_suite(dir: &Path, models: &[&str]) -> PathBuf {
    let path = dir.join("peers.toml");
    let models: Vec<String> = models.iter().map(|m| format!("\"{m}\"")).collect();
    std::fs::write(
        &path,
        format!(
            "name = \"peers\"\nmodels = [{}]\nseq_lens = [32]\n\n[sampling]\nwarmup_tokens = 8\n\
             repetitions = 2\nmax_seconds_per_cell = 5\ndecode_warmup = 1\ndecode_tokens = 4\n",
            models.join(", ")
        ),
    )
    .unwrap();
    path
}

/// A Python without site-packages (`-S`): torch can never be found, whatever this
/// machine has installed.
fn bare_python(dir: &Path) -> PathBuf {
    let path = dir.join("bare-python");
    std::fs::write(&path, "#!/bin/sh\nexec python3 -S \"$@\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_suite_with_python_peers_and_no_interpreter_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        &["rwkv7:preset=tiny", "rwkv7-official:preset=tiny"],
    );
    let out_dir = dir.path().join("out");
    let out = bench()
        .arg("run")
        .arg(&suite)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("rwkv7-official:preset=tiny runs under Python")
            && stderr.contains("--python"),
        "{stderr}"
    );
    assert!(!out_dir.exists());
}

#[test]
fn a_peer_whose_python_lacks_torch_fails_its_cell_naming_the_setup_and_the_rest_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), &["rwkv7:preset=tiny", "llama-hf:preset=tiny"]);
    let out_dir = dir.path().join("out");
    let out = bench()
        .arg("run")
        .arg(&suite)
        .arg("--python")
        .arg(bare_python(dir.path()))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let results: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).unwrap()).unwrap();
    let failures = results["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["model"], "llama-hf:preset=tiny");
    let error = failures[0]["error"].as_str().unwrap();
    assert!(
        error.contains("torch is not installed") && error.contains("scripts/peers/setup.sh"),
        "{error}"
    );
    let ours = results["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["model"] == "rwkv7:preset=tiny")
        .count();
    assert!(ours > 0, "our model's cell is measured all the same");
}

#[test]
#[ignore = "needs RWKV_BENCH_PYTHON: an interpreter made by scripts/peers/setup.sh"]
fn both_peers_measure_the_tiny_preset_through_the_cell_protocol() {
    let python = std::env::var("RWKV_BENCH_PYTHON").expect("set RWKV_BENCH_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        &[
            "rwkv7:preset=tiny",
            "rwkv7-official:preset=tiny",
            "llama:preset=tiny",
            "llama-hf:preset=tiny",
        ],
    );
    let out_dir = dir.path().join("out");
    let out = bench()
        .arg("run")
        .arg(&suite)
        .arg("--python")
        .arg(&python)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).unwrap()).unwrap();
    for (spec, version) in [
        ("rwkv7-official:preset=tiny", "rwkv "),
        ("llama-hf:preset=tiny", "transformers "),
    ] {
        let info = results["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["spec"] == spec)
            .unwrap();
        assert!(
            info["version"].as_str().unwrap().starts_with(version),
            "{info}"
        );
        // The same shapes as ours: the peer built the preset it was sent.
        let ours = results["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["arch"] == info["arch"] && m["version"].is_null())
            .unwrap();
        assert_eq!(info["layers"], ours["layers"]);
        assert_eq!(info["width"], ours["width"]);
        assert_eq!(info["vocab"], ours["vocab"]);
    }
    let summary = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("Implementations of one architecture"),
        "{summary}"
    );
}
