//! End-to-end tests of the `rwkv-bench` binary: a real suite through real child
//! processes on tiny presets, and the errors a user gets for bad input.

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

fn records<'a>(results: &'a Value, model: &str, metric: &str) -> Vec<&'a Value> {
    let mut v: Vec<&Value> = results["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["model"] == model && r["metric"] == metric)
        .collect();
    v.sort_by_key(|r| r["seq_len"].as_u64());
    v
}

fn median(r: &Value) -> f64 {
    r["median"].as_f64().unwrap()
}

#[test]
fn ci_suite_runs_end_to_end_and_writes_valid_results() {
    let out = tempfile::tempdir().unwrap();
    let assert = bench()
        .args(["run", "suites/ci.toml", "--out"])
        .arg(out.path())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(stdout.contains("decode latency"), "{stdout}");

    let text = std::fs::read_to_string(out.path().join("results.json")).unwrap();
    let results: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(results["schema_version"], 3);
    for m in results["models"].as_array().unwrap() {
        assert_eq!(m["weights"]["kind"], "random", "{m}");
        assert_eq!(m["weights"]["preset"], "tiny", "{m}");
    }
    assert!(!results["machine"]["cpu_model"].as_str().unwrap().is_empty());
    assert!(results["machine"]["ram_bytes"].as_u64().unwrap() > 0);
    assert_eq!(results["settings"]["threads_used"], 2);
    assert!(results["suite"]["source"]
        .as_str()
        .unwrap()
        .contains("name = \"ci\""));
    assert!(results["tool"]["crate_versions"]["candle-core"].is_string());
    assert_eq!(
        results["failures"].as_array().unwrap().len(),
        0,
        "{}",
        results["failures"]
    );

    let lens = [16u64, 64, 256];
    for model in ["rwkv7-upstream:preset=tiny", "llama-upstream:preset=tiny"] {
        for metric in [
            "prefill_time",
            "prefill_throughput",
            "decode_latency",
            "peak_rss",
            "state_bytes",
        ] {
            let rs = records(&results, model, metric);
            let got: Vec<u64> = rs.iter().map(|r| r["seq_len"].as_u64().unwrap()).collect();
            assert_eq!(got, lens, "{model} {metric}");
            for r in rs {
                let (p10, med, p90) = (
                    r["p10"].as_f64().unwrap(),
                    median(r),
                    r["p90"].as_f64().unwrap(),
                );
                assert!(med > 0.0 && p10 <= med && med <= p90, "{r}");
                let (lo, hi) = (
                    r["ci"]["lo"].as_f64().unwrap(),
                    r["ci"]["hi"].as_f64().unwrap(),
                );
                assert!(lo <= med && med <= hi, "{r}");
                assert!(!r["samples"].as_array().unwrap().is_empty());
            }
        }
        let decode = records(&results, model, "decode_latency");
        assert_eq!(
            decode[0]["samples"].as_array().unwrap().len(),
            8,
            "decode_tokens = 8"
        );
        let peak = records(&results, model, "peak_rss");
        let loaded = records(&results, model, "rss_after_load");
        assert!(median(peak[0]) >= median(loaded[0]));
    }

    // Training cells for the models with a backward pass, in processes of their own.
    for model in ["rwkv7:preset=tiny", "llama:preset=tiny"] {
        for metric in ["train_step_time", "train_throughput", "train_peak_rss"] {
            let rs = records(&results, model, metric);
            let got: Vec<u64> = rs.iter().map(|r| r["seq_len"].as_u64().unwrap()).collect();
            assert_eq!(got, lens, "{model} {metric}");
        }
        for r in records(&results, model, "train_step_time") {
            assert_eq!(r["samples"].as_array().unwrap().len(), 3, "steps = 3: {r}");
            let e = r["efficiency"]["fraction"].as_f64().unwrap();
            assert!(e > 0.0 && e < 1.0, "{r}");
        }
    }
    for model in ["rwkv7-upstream:preset=tiny", "llama-upstream:preset=tiny"] {
        assert!(records(&results, model, "train_step_time").is_empty());
    }
    assert!(out.path().join("charts/train_throughput.svg").is_file());

    // The recurrent state is the same size at every length; the KV cache grows
    // linearly with it (exactly: 2 x layers x kv_heads x head_dim x 4 bytes per token).
    let rwkv = records(&results, "rwkv7-upstream:preset=tiny", "state_bytes");
    assert!(rwkv.iter().all(|r| median(r) == median(rwkv[0])));
    let kv = records(&results, "llama-upstream:preset=tiny", "state_bytes");
    assert_eq!(median(kv[0]), (2 * 4 * 128 * 4 * 16) as f64);
    assert_eq!(median(kv[2]) / median(kv[0]), 16.0);

    let analysis = &results["analysis"];
    let kv_slope = analysis["slopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["model"] == "llama-upstream:preset=tiny" && s["metric"] == "state_bytes")
        .unwrap();
    assert!((kv_slope["slope"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert!(!analysis["crossovers"].as_array().unwrap().is_empty());
    assert!(out.path().join("summary.md").is_file());
    // Written atomically: nothing but the outputs, no temporary files.
    let mut names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["charts", "report.html", "results.json", "summary.md"]
    );
    let charts = std::fs::read_dir(out.path().join("charts")).unwrap();
    assert!(charts
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .all(|n| !n.starts_with('.') && (n.ends_with(".svg") || n.ends_with(".png"))));
}

fn write_suite(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("suite.toml");
    std::fs::write(&path, body).unwrap();
    path
}

const TINY: &str = r#"name = "t"
models = ["rwkv7-upstream:preset=tiny", "llama-upstream:preset=tiny"]
seq_lens = [16]
[sampling]
repetitions = 1
decode_tokens = 2
"#;

/// Runs a suite that must succeed and returns its results.json.
fn run_ok(body: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), body);
    let out = dir.path().join("out");
    bench()
        .arg("run")
        .arg(&suite)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    results
}

/// Runs a suite that is unusable input and returns stderr; checks the exit code (2)
/// and that nothing was written.
fn expect_error(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), body);
    let out = dir.path().join("out");
    let assert = bench()
        .arg("run")
        .arg(&suite)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2);
    assert!(!out.exists(), "a failed run must not write output");
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert_eq!(stderr.trim().lines().count(), 1, "one-line error: {stderr}");
    assert!(stderr.contains("suite.toml"), "names the file: {stderr}");
    stderr
}

#[test]
fn malformed_suites_fail_with_a_one_line_error_naming_the_key() {
    let e = expect_error(&TINY.replace("seq_lens", "seq_len"));
    assert!(e.contains("seq_len") && e.contains("line 3"), "{e}");
    let e = expect_error(&TINY.replace("repetitions = 1", "repetitions = \"many\""));
    assert!(e.contains("repetitions"), "{e}");
    let e = expect_error(&TINY.replace("[16]", "[16, 0]"));
    assert!(e.contains("seq_lens"), "{e}");
    let e = expect_error(&TINY.replace("[16]", "[16, 1000000]"));
    assert!(
        e.contains("1000000") && e.contains("llama-upstream:preset=tiny"),
        "{e}"
    );
    let e = expect_error(&TINY.replace("llama-upstream:preset=tiny", "llama-upstream:preset=7b"));
    assert!(e.contains("unknown preset `7b`"), "{e}");
    let e = expect_error(&TINY.replace("llama-upstream:preset=tiny", "mamba:preset=tiny"));
    assert!(e.contains("unknown implementation `mamba`"), "{e}");
    let e = expect_error(&TINY.replace("decode_tokens = 2", "decode_tokens = 2\nprocesses = 0"));
    assert!(e.contains("sampling.processes"), "{e}");
    let e = expect_error("name = \"t\"\nmodels = [\n");
    assert!(e.contains("line"), "{e}");
}

#[test]
fn each_cell_runs_in_as_many_processes_as_asked_and_pools_their_samples() {
    let results = run_ok(&TINY.replace("decode_tokens = 2", "decode_tokens = 2\nprocesses = 3"));
    for model in ["rwkv7-upstream:preset=tiny", "llama-upstream:preset=tiny"] {
        let samples = |metric: &str| {
            let rs = records(&results, model, metric);
            assert_eq!(rs.len(), 1, "{model} {metric}");
            rs[0]["samples"].as_array().unwrap().len()
        };
        // 2 decode steps and 1 prompt run per process; memory once per process.
        assert_eq!(samples("decode_latency"), 6, "{model}");
        assert_eq!(samples("prefill_time"), 3, "{model}");
        assert_eq!(samples("peak_rss"), 3, "{model}");
    }
}

/// A model spec that names a tokenizer (for the accuracy tasks of the same suite) runs
/// its speed cells like any other: the spec is parsed once, typed, and the tokenizer is
/// not mistaken for part of the preset name.
#[test]
fn models_that_name_a_tokenizer_run_and_keep_their_spec() {
    let spec = "rwkv7:preset=tiny,tokenizer=bytes";
    let results = run_ok(&TINY.replace("rwkv7-upstream:preset=tiny", spec));
    assert_eq!(
        results["failures"].as_array().unwrap().len(),
        0,
        "{}",
        results["failures"]
    );
    assert_eq!(records(&results, spec, "decode_latency").len(), 1);
    let model = results["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["spec"] == spec)
        .unwrap();
    assert_eq!(model["implementation"], "rwkv7");
    let e = expect_error(&TINY.replace("preset=tiny\"", "preset=tiny,tokenizer=sentencepiece:x\""));
    assert!(e.contains("tokenizer") && e.contains("world:PATH"), "{e}");
}

#[test]
fn missing_suite_file_is_named() {
    let assert = bench()
        .args(["run", "suites/no-such-suite.toml"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains("suites/no-such-suite.toml"), "{stderr}");
}

/// Runs a suite whose cells fail: exit 1, and the results are written all the same.
/// Returns results.json and stderr.
fn run_failing(body: &str) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), body);
    let out = dir.path().join("out");
    let assert = bench()
        .arg("run")
        .arg(&suite)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert!(out.join("report.html").is_file());
    (results, stderr)
}

fn failures(results: &Value) -> &Vec<Value> {
    results["failures"].as_array().unwrap()
}

#[test]
fn cells_over_the_declared_memory_budget_are_an_expected_outcome_and_exit_0() {
    // Two processes per cell: a cell that failed is not run again.
    let results = run_ok(&format!(
        "{}[limits]\nmemory_budget_mb = 1\n",
        TINY.replace("decode_tokens = 2", "decode_tokens = 2\nprocesses = 2")
    ));
    let failures = failures(&results);
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures
        .iter()
        .all(|f| f["kind"] == "over_budget"
            && f["error"].as_str().unwrap().contains("memory budget")));
    // The roofline is the machine's: the cells' budget does not stop its calibration.
    assert!(
        results["machine"]["roofline"]["matmul_gflops"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[test]
fn a_cell_past_its_timeout_fails_the_run_with_exit_1_and_the_rest_is_written() {
    // A warm-up of 4k tokens through the token-by-token upstream RWKV takes seconds:
    // the cell is killed at 0.3 s, before it can predict anything; the other model's
    // 16-token cell is measured.
    let body = TINY
        .replace("seq_lens = [16]", "seq_lens = [16, 4096]")
        .replace("[sampling]\n", "[sampling]\nwarmup_tokens = 4096\n")
        + "[limits]\ncell_timeout_s = 0.3\n";
    let body = body.replace(
        "\"rwkv7-upstream:preset=tiny\", \"llama-upstream:preset=tiny\"",
        "\"rwkv7-upstream:preset=tiny\"",
    );
    let (results, stderr) = run_failing(&body);
    let kinds: Vec<&str> = failures(&results)
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"timed_out"), "{kinds:?}");
    assert!(stderr.contains("timed out"), "{stderr}");
}

#[test]
fn a_hopeless_cell_is_refused_in_seconds_with_its_prediction() {
    let started = std::time::Instant::now();
    let body = TINY
        .replace("seq_lens = [16]", "seq_lens = [100000000]")
        .replace(
            "\"rwkv7-upstream:preset=tiny\", \"llama-upstream:preset=tiny\"",
            "\"rwkv7:preset=tiny\"",
        )
        + "[limits]\ncell_timeout_s = 120\n";
    let (results, stderr) = run_failing(&body);
    let f = &failures(&results)[0];
    assert_eq!(f["kind"], "predicted_timeout", "{f}");
    let error = f["error"].as_str().unwrap();
    assert!(
        error.contains("predicted")
            && error.contains("100000000 tokens")
            && error.contains("120 s"),
        "{error}"
    );
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(
        started.elapsed().as_secs() < 60,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_cell_that_errors_fails_the_run_with_exit_1_and_is_listed() {
    // The directory exists (the suite is usable) but holds no checkpoint: the cell
    // process reports the error, the other model is measured.
    let dir = tempfile::tempdir().unwrap();
    let body = TINY.replace(
        "llama-upstream:preset=tiny",
        &format!("llama:{}", dir.path().display()),
    );
    let (results, stderr) = run_failing(&body);
    let failures = failures(&results);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["kind"], "errored");
    assert!(stderr.contains("1 cell(s) failed"), "{stderr}");
    assert!(!records(&results, "rwkv7-upstream:preset=tiny", "decode_latency").is_empty());
}

#[test]
fn info_lists_machine_and_matched_presets() {
    let assert = bench().arg("info").assert().success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(
        stdout.contains("cpu") && stdout.contains("0.1b"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rwkv7-upstream") && stdout.contains("llama-upstream"),
        "{stdout}"
    );
}
