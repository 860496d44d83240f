//! `import llama-bench` through the real binary: llama.cpp's tests join a run's results
//! and report (with layers and width read from the GGUF fixture they name), a run on
//! another CPU or thread count and a truncated line are refused with exit code 2 and
//! the results file left as it was, and `--out` makes a run of the import alone.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{json, Value};

const SAMPLE: &str = "tests/fixtures/llama-bench/sample.jsonl";
const SPEC: &str = "llama.cpp:tests/fixtures/gguf/llama_gqa.q8_0.gguf";
/// The CPU the sample's tests ran on.
const SAMPLE_CPU: &str = "AMD EPYC 9B14";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwkv-bench"));
    cmd.current_dir(repo()).env("RAYON_NUM_THREADS", "2");
    cmd
}

fn import(results: &Path, jsonl: &Path) -> Command {
    let mut cmd = bench();
    cmd.args(["import", "llama-bench"])
        .arg(jsonl)
        .arg("--into")
        .arg(results);
    cmd
}

/// The ci fixture run copied into `dir` as a run on `cpu` with `threads` threads and a
/// calibrated roofline.
fn run_on(dir: &Path, cpu: &str, threads: usize) -> PathBuf {
    let fixture = repo().join("tests/fixtures/results/ci.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    v["machine"]["cpu_model"] = cpu.into();
    v["settings"]["threads_used"] = threads.into();
    v["machine"]["roofline"] = json!({
        "matmul_gflops": 150.0, "matmul": [], "read_gb_s": 30.0,
        "read_buffer_bytes": 1u64 << 30, "threads": threads, "dtype": "f32", "seconds": 1.5
    });
    let path = dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    path
}

fn load(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// The one `Error:` line of a refused command.
fn refusal(cmd: &mut Command) -> String {
    let a = cmd.assert().code(2);
    let err = stderr(&a);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("Error: "), "{err}");
    lines[0].to_string()
}

fn llama_cpp_records(v: &Value) -> Vec<&Value> {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["impl"] == "llama.cpp")
        .collect()
}

/// The Markdown section under `### title`.
fn section<'a>(md: &'a str, title: &str) -> &'a str {
    let start = md
        .find(&format!("### {title}"))
        .unwrap_or_else(|| panic!("no {title} table:\n{md}"));
    let rest = &md[start + 4..];
    &rest[..rest.find("\n### ").unwrap_or(rest.len())]
}

#[test]
fn import_into_adds_llama_cpp_to_the_run_and_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let results = run_on(dir.path(), SAMPLE_CPU, 2);
    let ours = load(&results)["records"].as_array().unwrap().len();
    let a = import(&results, Path::new(SAMPLE)).assert().success();
    let err = stderr(&a);
    assert!(
        err.contains(&format!("warning: {SAMPLE} line 7: pp64 @ d256 skipped")),
        "{err}"
    );
    assert!(
        err.contains(&format!("warning: {SAMPLE} line 8: tg16 skipped")),
        "{err}"
    );
    assert!(
        !err.contains("not on this machine"),
        "the GGUF is read: {err}"
    );

    let v = load(&results);
    // Three pp tests (time and throughput each) and three tg tests at depths; the pp
    // at a depth and the tg from an empty context are skipped.
    let imported = llama_cpp_records(&v);
    assert_eq!(imported.len(), 9);
    assert_eq!(v["records"].as_array().unwrap().len(), ours + 9);
    let model = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["spec"] == SPEC)
        .expect("the llama.cpp model");
    assert_eq!(model["implementation"], "llama.cpp");
    assert_eq!(model["arch"], "transformer");
    assert_eq!(model["version"], "build 0c1e5709 (7100)");
    assert_eq!(
        (&model["layers"], &model["width"], &model["vocab"]),
        (&json!(2), &json!(64), &json!(128)),
        "read from the GGUF fixture"
    );
    assert_eq!(model["dtype"], "q8_0");
    let decode: Vec<&&Value> = imported
        .iter()
        .filter(|r| r["metric"] == "decode_latency")
        .collect();
    let mut depths: Vec<u64> = decode
        .iter()
        .map(|r| r["seq_len"].as_u64().unwrap())
        .collect();
    depths.sort_unstable();
    assert_eq!(depths, [16, 64, 256]);
    let at_64 = decode.iter().find(|r| r["seq_len"] == 64).unwrap();
    // 1.503 ms over 16 tokens.
    assert!((at_64["samples"][0].as_f64().unwrap() - 1.503 / 16.0).abs() < 1e-12);
    for r in &imported {
        let has = r.get("efficiency").is_some();
        assert_eq!(has, r["metric"] == "prefill_time", "{r}");
    }
    assert!(
        v["analysis"]["speedups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["baseline"] == SPEC && s["candidate"] == "rwkv7-upstream:preset=tiny"),
        "llama.cpp is a transformer baseline"
    );

    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    let models = section(&md, "Models");
    assert!(
        models.contains("llama.cpp's llama-bench, 2 threads")
            && models.contains("build 0c1e5709 (7100)"),
        "{models}"
    );
    // The prefill row of the fairness table: llama.cpp with its build, and the share of
    // the roofline its prefill reached at each prompt length.
    let fairness = section(&md, "Fairness");
    let row = fairness
        .lines()
        .find(|l| l.starts_with(&format!("| {SPEC} | llama.cpp")) && l.contains("prefill"))
        .unwrap_or_else(|| panic!("no llama.cpp prefill row:\n{fairness}"));
    assert!(
        row.contains("0c1e5709") && row.matches(" % (").count() == 3,
        "{row}"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("build 0c1e5709 (7100)"));
    assert!(!html.contains("NaN"));
    for chart in ["prefill_time", "decode_latency"] {
        let svg = std::fs::read_to_string(dir.path().join(format!("charts/{chart}.svg"))).unwrap();
        assert!(svg.contains(SPEC), "{chart} has no llama.cpp series");
    }

    // The same tests again: refused, naming a cell, unless --replace.
    let before = std::fs::read(&results).unwrap();
    let e = refusal(&mut import(&results, Path::new(SAMPLE)));
    assert!(
        e.contains(&format!("already holds {SPEC} prefill time at 16")) && e.contains("--replace"),
        "{e}"
    );
    assert_eq!(std::fs::read(&results).unwrap(), before, "untouched");
    import(&results, Path::new(SAMPLE))
        .arg("--replace")
        .assert()
        .success();
    assert_eq!(llama_cpp_records(&load(&results)).len(), 9);
}

#[test]
fn a_run_on_another_cpu_or_thread_count_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let results = run_on(dir.path(), "Intel(R) Xeon(R) Processor", 2);
    let before = std::fs::read(&results).unwrap();
    let e = refusal(&mut import(&results, Path::new(SAMPLE)));
    assert!(
        e.contains(&results.display().to_string())
            && e.contains(&format!("`{SAMPLE_CPU}`"))
            && e.contains("`Intel(R) Xeon(R) Processor`")
            && e.contains("--force"),
        "{e}"
    );
    assert_eq!(std::fs::read(&results).unwrap(), before);
    assert!(
        !dir.path().join("report.html").exists(),
        "no report written"
    );

    let results = run_on(dir.path(), SAMPLE_CPU, 1);
    let before = std::fs::read(&results).unwrap();
    let e = refusal(&mut import(&results, Path::new(SAMPLE)));
    assert!(
        e.contains("used 2 threads") && e.contains("the run 1"),
        "{e}"
    );
    assert_eq!(std::fs::read(&results).unwrap(), before);

    let a = import(&results, Path::new(SAMPLE))
        .arg("--force")
        .assert()
        .success();
    assert!(
        stderr(&a).contains("warning: imported with --force: llama-bench used 2 threads"),
        "{}",
        stderr(&a)
    );
    let v = load(&results);
    let model = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["spec"] == SPEC)
        .unwrap();
    assert!(
        model["description"]
            .as_str()
            .unwrap()
            .contains("Imported with --force: llama-bench used 2 threads"),
        "{model}"
    );
}

#[test]
fn a_truncated_line_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let results = run_on(dir.path(), SAMPLE_CPU, 2);
    let before = std::fs::read(&results).unwrap();
    let text = std::fs::read_to_string(repo().join(SAMPLE)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = format!(
        "{}\n{}\n{}",
        lines[0],
        lines[1],
        &lines[2][..lines[2].len() / 2]
    );
    let jsonl = dir.path().join("cut.jsonl");
    std::fs::write(&jsonl, cut).unwrap();
    let e = refusal(&mut import(&results, &jsonl));
    assert!(
        e.contains(&format!("{}: line 3: truncated JSON", jsonl.display())),
        "{e}"
    );
    assert_eq!(std::fs::read(&results).unwrap(), before);
}

/// This machine's CPU as llama.cpp's CPU backend names it on Linux.
fn this_cpu() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

#[test]
fn out_makes_a_run_of_the_import_alone_on_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imported");
    if this_cpu().as_deref() != Some(SAMPLE_CPU) {
        let mut cmd = bench();
        cmd.args(["import", "llama-bench", SAMPLE, "--out"])
            .arg(&out);
        let e = refusal(&mut cmd);
        assert!(
            e.contains(&format!("`{SAMPLE_CPU}`, not on this machine")) && e.contains("--into"),
            "{e}"
        );
        assert!(!out.exists());
    }
    let Some(cpu) = this_cpu() else {
        eprintln!("skipped: no model name in /proc/cpuinfo");
        return;
    };
    let text = std::fs::read_to_string(repo().join(SAMPLE)).unwrap();
    let jsonl = dir.path().join("here.jsonl");
    let here = serde_json::to_string(&cpu).unwrap();
    std::fs::write(&jsonl, text.replace(&format!("\"{SAMPLE_CPU}\""), &here)).unwrap();
    let mut cmd = bench();
    cmd.args(["import", "llama-bench"])
        .arg(&jsonl)
        .arg("--out")
        .arg(&out);
    cmd.assert().success();
    let v = load(&out.join("results.json"));
    assert_eq!(v["records"].as_array().unwrap().len(), 9);
    assert_eq!(llama_cpp_records(&v).len(), 9, "the import alone");
    assert_eq!(v["settings"]["threads_used"], 2);
    assert_eq!(v["machine"]["cpu_model"], cpu.as_str());
    assert!(out.join("report.html").exists());
    // An existing file is not overwritten without --replace.
    let e = refusal(&mut cmd);
    assert!(e.contains("--into") && e.contains("--replace"), "{e}");
}
