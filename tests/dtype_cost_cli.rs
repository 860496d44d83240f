//! A suite's `measure.dtype_cost` through the binary: the agreement of a q8_0 build with
//! its f32 weights in results.json, and the report's weight-dtype table laying it beside
//! the speed ratios; a results file without dtype costs still reports.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn bench() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwkv-bench"));
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env("RAYON_NUM_THREADS", "2");
    cmd
}

const SUITE: &str = r#"
name = "dtype-cost-test"
models = ["rwkv7:preset=tiny", "rwkv7:preset=tiny,dtype=q8_0"]
seq_lens = [16, 64]
seed = 7
[measure]
dtype_cost = true
[dtype_cost]
tokens = 48
[sampling]
warmup_tokens = 4
repetitions = 2
decode_warmup = 1
decode_tokens = 4
"#;

#[test]
fn a_dtype_cost_suite_records_the_agreement_and_the_report_tables_it() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("dtypes.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let out = tmp.path().join("out");
    bench()
        .arg("run")
        .arg(&suite)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let doc: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(doc["schema_version"], 3);
    let costs = doc["dtype_costs"].as_array().unwrap();
    // Only the q8_0 build: f32 is the reference, not a row of its own.
    assert_eq!(costs.len(), 1, "{doc:#}");
    let c = &costs[0];
    assert_eq!(c["model"], "rwkv7:preset=tiny,dtype=q8_0");
    assert_eq!(c["reference"], "rwkv7:preset=tiny,dtype=f32");
    assert_eq!(
        (c["tokens"].as_u64(), c["seed"].as_u64()),
        (Some(48), Some(7))
    );
    let a = &c["agreement"];
    assert_eq!(a["dtype"], "q8_0");
    assert_eq!(a["positions"], 48);
    // q8_0 keeps 8 bits per weight: the logits stay within a cosine of 0.99 everywhere.
    let (min, mean) = (
        a["min_cosine"].as_f64().unwrap(),
        a["mean_cosine"].as_f64().unwrap(),
    );
    assert!(min > 0.99 && min <= mean && mean < 1.0, "{c:#}");

    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("### Weight dtypes: speed, memory and accuracy"),
        "{summary}"
    );
    let q8 = summary
        .lines()
        .find(|l| l.starts_with("| rwkv7:preset=tiny,dtype=q8_0 | q8_0 |"))
        .unwrap_or_else(|| panic!("{summary}"));
    // Decode at 16 and prefill at 64, each with its ratio to f32, then the accuracy.
    assert!(q8.matches("× [").count() == 2, "{q8}");
    assert!(q8.contains(&format!("{min:.6}")), "{q8}");
    let f32_row = summary
        .lines()
        .find(|l| l.starts_with("| rwkv7:preset=tiny | f32 |"))
        .unwrap();
    assert!(f32_row.contains("| 1× |"), "{f32_row}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Weight dtypes: speed, memory and accuracy"));

    // `report` rewrites it from the file alone.
    std::fs::remove_file(out.join("summary.md")).unwrap();
    bench()
        .arg("report")
        .arg(out.join("results.json"))
        .assert()
        .success();
    let again = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(again.contains(q8), "{again}");
}

#[test]
fn a_results_file_from_before_dtype_costs_still_reports() {
    let tmp = tempfile::tempdir().unwrap();
    bench()
        .arg("report")
        .arg("tests/fixtures/results/ci.json")
        .arg("--out")
        .arg(tmp.path())
        .assert()
        .success();
    let summary = std::fs::read_to_string(tmp.path().join("summary.md")).unwrap();
    // One dtype per model there: no dtype table.
    assert!(!summary.contains("Weight dtypes"), "{summary}");
}

#[test]
fn too_few_dtype_cost_tokens_is_one_line_naming_the_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("bad.toml");
    std::fs::write(&suite, SUITE.replace("tokens = 48", "tokens = 1")).unwrap();
    let out = bench()
        .arg("run")
        .arg(&suite)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .assert()
        .code(2)
        .get_output()
        .clone();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("bad.toml") && e.contains("`dtype_cost.tokens` is 1"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(!tmp.path().join("out").exists());
}
