//! `rwkv-bench report a.json b.json …` through the real binary: runs from two machines
//! give the multi-machine report; files that all come from one machine, or a file that
//! cannot be read, are unusable input (exit 2) with a message saying what to do.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwkv-bench"));
    cmd.current_dir(repo());
    cmd
}

fn fixture() -> Value {
    let path = repo().join("tests/fixtures/results/ci.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Writes `v` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(v).unwrap()).unwrap();
    path
}

/// The fixture as if run on another machine (another CPU, 4 usable cores), with
/// RWKV's decode steps four times faster there.
fn other_machine() -> Value {
    let mut v = fixture();
    v["machine"]["cpu_model"] = "AMD EPYC 9B14".into();
    v["machine"]["usable_cores"] = 4.into();
    for r in v["records"].as_array_mut().unwrap() {
        if r["metric"] == "decode_latency" && r["model"].as_str().unwrap().starts_with("rwkv") {
            for key in ["median", "mean", "p10", "p90", "min", "max"] {
                r[key] = (r[key].as_f64().unwrap() / 4.0).into();
            }
            for s in r["samples"].as_array_mut().unwrap() {
                *s = (s.as_f64().unwrap() / 4.0).into();
            }
        }
    }
    v
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

#[test]
fn two_machines_give_one_report() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &fixture());
    let b = write(dir.path(), "b.json", &other_machine());
    let out = dir.path().join("machines");
    let assert = bench()
        .arg("report")
        .args([&a, &b])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(stdout.contains("2 files, 2 machines"), "{stdout}");
    let md = std::fs::read_to_string(out.join("machines.md")).unwrap();
    assert!(
        md.contains("AMD EPYC 9B14, 4 cores, 24 GiB, avx512f, 2 threads")
            && md.contains("Intel(R) Xeon(R) Processor, 2 cores, 24 GiB, avx512f, 2 threads"),
        "{md}"
    );
    assert!(
        md.contains("RWKV faster at every length measured (16 to 256 tokens)"),
        "{md}"
    );
    let html = std::fs::read_to_string(out.join("machines.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2);
    for chart in ["machines_prefill_speedup", "machines_decode_speedup"] {
        for ext in ["svg", "png"] {
            assert!(out.join(format!("charts/{chart}.{ext}")).is_file());
        }
    }
}

#[test]
fn files_from_one_machine_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut renamed = fixture();
    renamed["machine"]["hostname"] = "another-host".into();
    let a = write(dir.path(), "a.json", &fixture());
    let b = write(dir.path(), "b.json", &renamed);
    let out = dir.path().join("machines");
    let assert = bench()
        .arg("report")
        .args([&a, &b])
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2);
    let err = stderr(&assert);
    assert!(err.contains("recorded on one machine"), "{err}");
    assert!(err.contains("rwkv-bench report FILE"), "{err}");
    assert!(!out.exists(), "nothing written");
}

#[test]
fn an_unreadable_file_is_refused_with_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &fixture());
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, b"{\"schema_version\": 3, \"tool\":").unwrap();
    let assert = bench()
        .arg("report")
        .args([&a, &broken])
        .arg("--out")
        .arg(dir.path().join("machines"))
        .assert()
        .code(2);
    let err = stderr(&assert);
    assert!(
        err.contains("broken.json") && err.contains("truncated"),
        "{err}"
    );
}
