//! `rwkv-bench train` and `grad` through the binary: a run, its resumption, the
//! checkpoint loaded by another command, and the one-line errors for a run directory
//! used twice, a resume with nothing to resume, and a malformed task setting.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn bench() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwkv-bench"));
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env("RAYON_NUM_THREADS", "2");
    cmd
}

fn train(out: &Path, steps: &str, extra: &[&str]) -> Command {
    let mut cmd = bench();
    cmd.args(["train", "--model", "rwkv7:preset=tiny", "--task", "copy"])
        .args([
            "--task-param",
            "copy_answer=4",
            "--task-param",
            "token_vocab=32",
        ])
        .args(["--seq-len", "32", "--batch", "4", "--checkpoint-every", "2"])
        .args(["--steps", steps, "--out"])
        .arg(out)
        .args(extra);
    cmd
}

fn stderr(cmd: &mut Command) -> String {
    let out = cmd.assert().failure().get_output().clone();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn train_resume_and_load_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    train(&out, "4", &["--stop-after", "2"]).assert().success();
    let e = stderr(&mut train(&out, "4", &[]));
    assert!(
        e.contains("already holds a run") && e.contains("--resume"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    let ok = train(&out, "4", &["--resume"]).assert().success();
    let stdout = String::from_utf8_lossy(&ok.get_output().stdout).into_owned();
    assert!(stdout.contains("resumed at step 2"), "{stdout}");
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 4, "{log}");

    let model: PathBuf = out.join("step-000004/model.safetensors");
    let grads = tmp.path().join("g.safetensors");
    bench()
        .args(["grad", "--model"])
        .arg(format!("rwkv7:{}", model.display()))
        .args(["--tokens", "1,5,9,3", "--out"])
        .arg(&grads)
        .assert()
        .success();
    let t = candle_core::safetensors::load(&grads, &candle_core::Device::Cpu).unwrap();
    assert!(t.contains_key("loss") && t.contains_key("grad.head.weight"));
}

#[test]
fn bad_train_input_is_one_line_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nothing");
    let e = stderr(&mut train(&out, "4", &["--resume"]));
    assert!(e.contains("holds no checkpoint"), "{e}");
    let e = stderr(&mut train(&out, "4", &["--task-param", "no_such_key=3"]));
    assert!(
        e.contains("--task-param") && e.contains("no_such_key"),
        "{e}"
    );
    let e = stderr(&mut train(&out, "4", &["--mix", "seq_len=lots"]));
    assert!(
        e.contains("--mix seq_len=lots") && e.contains("not a count"),
        "{e}"
    );
    let e = stderr(&mut train(&out, "4", &["--mix", "seq_len=16,copy_answr=2"]));
    assert!(e.contains("--mix") && e.contains("copy_answr"), "{e}");
    assert!(!out.join("latest").exists(), "nothing half-written");
}

#[test]
fn a_mixture_trains_each_entry_in_turn_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mix = ["--mix", "seq_len=16,copy_answer=2", "--mix", "seq_len=32"];
    train(&out, "2", &mix).assert().success();
    let run = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(run.contains("mixture of 16 (copy_answer=2"), "{run}");
    let tokens: Vec<u64> = std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["tokens"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Batch 4: step 1 at 16 tokens, step 2 at 32.
    assert_eq!(tokens, vec![64, 128]);
}
