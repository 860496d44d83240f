//! `rwkv-bench fertility` on catalogs it writes itself: the table, the JSON it keeps,
//! a run's crossovers in characters, and a language without catalogs named.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use eval::fertility::mo;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwkv-bench"));
    cmd.current_dir(repo());
    cmd
}

fn catalog(dir: &Path, lang: &str, entries: &[(&str, &str)]) {
    let d = dir.join(lang).join("LC_MESSAGES");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("app.mo"), mo::write(entries)).unwrap();
}

#[test]
fn measures_each_language_and_tokenizer_and_gives_crossovers_in_characters() {
    let dir = tempfile::tempdir().unwrap();
    catalog(
        dir.path(),
        "th",
        &[("Open", "เปิด"), ("Save file", "บันทึกไฟล์")],
    );
    catalog(
        dir.path(),
        "id",
        &[("Open", "Buka"), ("Save file", "Simpan berkas")],
    );
    let json = dir.path().join("fertility.json");
    let out = bench()
        .args(["fertility", "--tokenizer", "bytes"])
        .args(["--tokenizer", "hf:assets/pretrained/tokenizer.json"])
        .args(["--languages", "th,id", "--locales"])
        .arg(dir.path())
        .args(["--results", "tests/fixtures/results/ci.json", "--out"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("crossovers in characters"), "{stdout}");
    let rows: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // th, id, then en, for each of the two tokenizers.
    assert_eq!(rows.len(), 6);
    let thai_bytes = &rows[0];
    assert_eq!(thai_bytes["language"], "th");
    let chars = "เปิดบันทึกไฟล์".chars().count() as u64;
    assert_eq!(thai_bytes["chars"], chars);
    assert_eq!(
        thai_bytes["tokens"],
        3 * chars,
        "one byte token per UTF-8 byte"
    );
    assert_eq!(rows[2]["language"], "en");
    assert_eq!(rows[2]["tokens"], "OpenSave file".len() as u64);
}

#[test]
fn a_language_without_catalogs_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("fertility.json");
    let out = bench()
        .args([
            "fertility",
            "--tokenizer",
            "bytes",
            "--languages",
            "vi",
            "--locales",
        ])
        .arg(dir.path())
        .arg("--out")
        .arg(&json)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vi/LC_MESSAGES"), "{err}");
    assert!(!json.exists());
}
