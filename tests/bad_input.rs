//! Bad input through the real binary: a results file cut short is refused by `report`
//! and `compare` with exit code 2 and one line naming the file, and `report` writes
//! nothing.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwkv-bench"));
    cmd.current_dir(repo()).env("RAYON_NUM_THREADS", "2");
    cmd
}

/// The files in `dir`, by name.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Asserts the command failed with exit code 2 and one line of stderr naming `file`.
fn assert_refused(cmd: &mut Command, file: &Path, cut: usize) {
    let out = cmd.assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "cut at {cut}: {stderr}");
    assert!(
        lines[0].starts_with("Error: ") && lines[0].contains(&file.display().to_string()),
        "cut at {cut}: {stderr}"
    );
    assert!(lines[0].contains("truncated"), "cut at {cut}: {stderr}");
}

#[test]
fn truncated_results_exit_2_naming_the_file_and_write_nothing() {
    let fixture = repo().join("tests/fixtures/results/ci.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    // Text beyond ASCII, so that one cut falls inside a multi-byte character.
    v["suite"]["config"]["description"] = "mémoire – 中文".into();
    let text = serde_json::to_string_pretty(&v).unwrap();
    let wide = text.find('中').unwrap() + 1;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(&good, &text).unwrap();
    let inputs = dir.path().join("in");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let file = inputs.join("results.json");

    let len = text.len();
    for cut in [0, 1, len / 3, len / 2, wide, len - 1] {
        std::fs::write(&file, &text.as_bytes()[..cut]).unwrap();
        assert_refused(
            bench().arg("report").arg(&file).arg("--out").arg(&out),
            &file,
            cut,
        );
        // Without --out the report would go beside the results file.
        assert_refused(bench().arg("report").arg(&file), &file, cut);
        assert_refused(bench().arg("compare").arg(&good).arg(&file), &file, cut);
        assert!(
            listing(&out).is_empty(),
            "cut at {cut}: {:?}",
            listing(&out)
        );
        assert_eq!(listing(&inputs), ["results.json"], "cut at {cut}");
    }

    // The whole file renders, so the refusals above are the cuts' doing.
    std::fs::write(&file, &text).unwrap();
    bench()
        .arg("report")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    assert!(listing(&out).contains(&"report.html".to_string()));
}
