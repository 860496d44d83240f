//! End-to-end tests of `rwkv-bench eval` on tiny random-weight presets: accuracy records
//! in results JSON, gates that fail the process, task-file errors with line numbers,
//! perplexity by position, resuming an interrupted run, and the shipped suite.

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

fn results(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn records<'a>(r: &'a Value, metric: &str) -> Vec<&'a Value> {
    r["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["metric"] == metric)
        .collect()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn synthetic_tasks_write_accuracy_records_and_a_failed_gate_exits_1() {
    let out = tempfile::tempdir().unwrap();
    let run = bench()
        .args([
            "eval",
            "--model",
            "rwkv7-upstream:preset=tiny",
            "--model",
            "llama-upstream:preset=tiny",
            "--task",
            "passkey",
            "--task",
            "copy",
            "--task",
            "mqar",
            "--lengths",
            "512",
            "--examples",
            "2",
            "--depths",
            "0,1",
            "--min",
            "copy=0.5",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let log = text(&run);
    assert_eq!(run.status.code(), Some(1), "{log}");
    assert!(
        log.contains("FAIL") && log.contains("gates failed"),
        "{log}"
    );
    assert!(log.contains("random weights"), "{log}");

    let r = results(out.path());
    assert_eq!(r["schema_version"], 3);
    // One copy gate per model, both failed, kept in the results.
    let gates = r["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 2, "{gates:?}");
    assert!(gates
        .iter()
        .all(|g| g["passed"] == false && g["task"] == "copy"));
    let acc = records(&r, "accuracy");
    // Per model: passkey at two depths, copy, mqar.
    assert_eq!(acc.len(), 2 * 4, "{acc:?}");
    for rec in &acc {
        assert_eq!(rec["unit"], "fraction");
        assert_eq!(rec["seq_len"], 512);
        assert_eq!(rec["seed"], 0);
        let samples = rec["samples"].as_array().unwrap();
        assert!(samples.iter().all(|s| s == 0.0 || s == 1.0), "{rec}");
        let (lo, hi) = (
            rec["wilson"]["lo"].as_f64().unwrap(),
            rec["wilson"]["hi"].as_f64().unwrap(),
        );
        let mean = rec["mean"].as_f64().unwrap();
        assert!(lo <= mean && mean <= hi && hi <= 1.0, "{rec}");
        assert!(rec["chance"].as_f64().unwrap() < 0.05, "{rec}");
    }
    let passkey: Vec<_> = acc.iter().filter(|x| x["task"] == "passkey").collect();
    let mut depths: Vec<f64> = passkey
        .iter()
        .map(|x| x["depth"].as_f64().unwrap())
        .collect();
    depths.sort_by(f64::total_cmp);
    assert_eq!(depths, vec![0.0, 0.0, 1.0, 1.0]);
    assert!(acc
        .iter()
        .filter(|x| x["task"] != "passkey")
        .all(|x| x.get("depth").is_none()));
    assert_eq!(records(&r, "answer_log_likelihood").len(), 8);
    // The report renders with the accuracy table and chart.
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(
        summary.contains("### Accuracy") && summary.contains("chance"),
        "{summary}"
    );
    assert!(out.path().join("charts/accuracy.svg").is_file());
    assert!(
        summary.contains("random weights score at chance"),
        "{summary}"
    );
}

#[test]
fn the_hand_built_copier_passes_its_gates() {
    // A Hugging Face directory whose weights are set by hand to copy (an induction
    // head), with its own word-level tokenizer of 4096 ids.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("copier");
    testkit::induction::write(&model, 4096, 0).unwrap();
    let spec = format!("llama:{}", model.display());
    let out = dir.path().join("out");
    let run = bench()
        .args(["eval", "--model", &spec, "--task", "copy", "--task", "mqar"])
        .args(["--lengths", "512", "--examples", "3", "--threads", "1"])
        .args(["--min", "copy=1", "--min", "mqar=1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let log = text(&run);
    assert!(run.status.success(), "{log}");
    assert!(log.contains("all 2 gates passed"), "{log}");
    let r = results(&out);
    let acc = records(&r, "accuracy");
    assert_eq!(acc.len(), 2, "{acc:?}");
    for rec in &acc {
        assert_eq!(rec["mean"], 1.0, "{rec}");
        assert_eq!(rec["model"], spec.as_str(), "{rec}");
    }
    // The test runs with RAYON_NUM_THREADS=2: eval reran itself with the one asked for.
    assert_eq!(r["settings"]["threads_requested"], 1);
    assert_eq!(r["settings"]["threads_used"], 1);
    // The gates are in the results, and the tokenizer has a field of its own.
    let gates = r["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 2, "{gates:?}");
    assert!(gates
        .iter()
        .all(|g| g["passed"] == true && g["score"] == 1.0));
    let info = &r["models"][0];
    assert!(
        info["tokenizer"]
            .as_str()
            .unwrap()
            .contains("tokenizer.json"),
        "{info}"
    );
    assert_eq!(info["weights"]["kind"], "checkpoint", "{info}");
    assert!(
        !info["weights"]["path"]
            .as_str()
            .unwrap()
            .contains("tokenizer"),
        "{info}"
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(!summary.contains("random weights"), "{summary}");
    assert!(summary.contains("### Gates"), "{summary}");

    // In a run history, copy and mqar at the same length are two cells, kept by their
    // mean (the median of 0/1 samples says nothing), and charted as a trend.
    let history = dir.path().join("history.jsonl");
    for _ in 0..2 {
        let append = bench()
            .args(["history", "append"])
            .arg(out.join("results.json"))
            .arg("--file")
            .arg(&history)
            .output()
            .unwrap();
        assert!(append.status.success(), "{}", text(&append));
    }
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(&history)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let points: Vec<&Value> = line["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metric"] == "accuracy")
        .collect();
    let mut tasks: Vec<&str> = points.iter().map(|p| p["task"].as_str().unwrap()).collect();
    tasks.sort_unstable();
    assert_eq!(tasks, ["copy", "mqar"]);
    assert!(points.iter().all(|p| p["mean"] == 1.0), "{points:?}");
    let charts = dir.path().join("trend");
    let chart = bench()
        .args(["history", "chart"])
        .arg(&history)
        .arg("--out")
        .arg(&charts)
        .output()
        .unwrap();
    assert!(chart.status.success(), "{}", text(&chart));
    let svg = std::fs::read_to_string(charts.join("accuracy_trend.svg")).unwrap();
    assert!(svg.contains("copy") && svg.contains("mqar"), "two series");
}

#[test]
fn task_file_gates_pass_and_fail_on_their_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qa.jsonl");
    std::fs::write(
        &file,
        "{\"context\": \"2 + 2 =\", \"choices\": [\" 3\", \" 4\"], \"answer\": 1}\n\
         {\"context\": \"The sky is\", \"choices\": [\" blue\", \" green\", \" red\"], \"answer\": 0}\n\
         {\"prompt\": \"Say yes:\", \"answer\": \" yes\", \"max_tokens\": 4}\n",
    )
    .unwrap();
    let eval = |min: &str, out: &Path| {
        bench()
            .args(["eval", "--model", "llama:preset=tiny", "--task-file"])
            .arg(&file)
            .args(["--min", min, "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    // Nothing scores above 100 %: this gate must fail, with a non-zero exit.
    let failed = eval("qa=1.01", &dir.path().join("a"));
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(
        text(&failed).contains("FAIL llama:preset=tiny qa"),
        "{}",
        text(&failed)
    );
    let passed = eval("qa=0", &dir.path().join("b"));
    assert!(passed.status.success(), "{}", text(&passed));
    assert!(
        text(&passed).contains("all 1 gates passed"),
        "{}",
        text(&passed)
    );

    let r = results(&dir.path().join("b"));
    let acc = records(&r, "accuracy");
    assert_eq!(acc.len(), 1);
    assert_eq!(acc[0]["task"], "qa");
    assert_eq!(acc[0]["samples"].as_array().unwrap().len(), 3);
    let norm = records(&r, "accuracy_norm");
    assert_eq!(
        norm[0]["samples"].as_array().unwrap().len(),
        2,
        "choice items only"
    );
}

#[test]
fn a_malformed_task_file_line_is_reported_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"prompt\": \"a\", \"answer\": \"b\"}\n\n{\"context\": \"a\", \"choices\": [\"x\", \"y\"], \"answer\": 5}\n",
    )
    .unwrap();
    let out = bench()
        .args(["eval", "--model", "llama:preset=tiny", "--task-file"])
        .arg(&file)
        .args(["--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = text(&out);
    assert!(log.contains("bad.jsonl:3:"), "{log}");
    assert!(log.contains("only 2 choices"), "{log}");
}

#[test]
fn perplexity_by_position_and_bits_per_byte() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    let doc = "It was the best of times, it was the worst of times. ".repeat(8);
    std::fs::write(corpus.join("a.txt"), &doc).unwrap();
    std::fs::write(corpus.join("b.txt"), doc.to_uppercase()).unwrap();
    let out = dir.path().join("out");
    bench()
        .args(["eval", "--model", "llama:preset=tiny", "--text"])
        .arg(&corpus)
        .args(["--lengths", "64,256", "--out"])
        .arg(&out)
        .assert()
        .success();
    let r = results(&out);
    let bpb = records(&r, "bits_per_byte");
    let lens: Vec<u64> = bpb.iter().map(|x| x["seq_len"].as_u64().unwrap()).collect();
    assert_eq!(lens, vec![64, 256]);
    for x in &bpb {
        assert_eq!(x["task"], "corpus");
        assert_eq!(x["samples"].as_array().unwrap().len(), 2, "two documents");
        let v = x["mean"].as_f64().unwrap();
        assert!(v > 4.0 && v < 14.0, "random model over 512 ids: {v}");
    }
    let by_pos = records(&r, "loss_by_position");
    let ends: Vec<u64> = by_pos
        .iter()
        .map(|x| x["seq_len"].as_u64().unwrap())
        .collect();
    assert_eq!(ends, vec![64, 128, 256], "buckets of the longest window");
}

#[test]
fn an_interrupted_evaluation_resumes_from_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let eval = |tasks: &[&str], resume: bool| {
        let mut cmd = bench();
        cmd.args(["eval", "--model", "llama:preset=tiny", "--lengths", "128"]);
        for t in tasks {
            cmd.args(["--task", t]);
        }
        cmd.args(["--examples", "2", "--out"]).arg(&out);
        if resume {
            cmd.arg("--resume");
        }
        cmd.output().unwrap()
    };
    // The first run is "interrupted" after copy; the resumed one adds mqar only.
    let first = eval(&["copy"], false);
    assert!(first.status.success(), "{}", text(&first));
    let before = results(&out);
    let second = eval(&["copy", "mqar"], true);
    assert!(second.status.success(), "{}", text(&second));
    let log = text(&second);
    assert!(log.contains("resumed") && log.contains("copy"), "{log}");
    let after = results(&out);
    let copy = |r: &Value| {
        records(r, "accuracy")
            .into_iter()
            .find(|x| x["task"] == "copy")
            .cloned()
    };
    assert_eq!(
        copy(&before),
        copy(&after),
        "the copy cell was kept, not rerun"
    );
    assert!(records(&after, "accuracy")
        .iter()
        .any(|x| x["task"] == "mqar"));
    assert_eq!(after["started_at"], before["started_at"]);

    // Another seed cannot be resumed into the same results.
    let mut cmd = bench();
    cmd.args([
        "eval",
        "--model",
        "llama:preset=tiny",
        "--lengths",
        "128",
        "--task",
        "copy",
        "--examples",
        "2",
        "--seed",
        "9",
        "--resume",
        "--out",
    ])
    .arg(&out);
    let clash = cmd.output().unwrap();
    assert_eq!(clash.status.code(), Some(2), "{}", text(&clash));
    assert!(
        text(&clash).contains("cannot be resumed"),
        "{}",
        text(&clash)
    );
}

#[test]
fn the_shipped_accuracy_suite_runs_and_its_gates_fail_on_random_weights() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench()
        .args([
            "eval",
            "suites/accuracy.toml",
            "--lengths",
            "512",
            "--examples",
            "1",
            "--depths",
            "0.5",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    let r = results(dir.path());
    assert_eq!(
        r["failures"].as_array().unwrap().len(),
        2,
        "niah needs more than 512 bytes"
    );
    let tasks: std::collections::BTreeSet<String> = records(&r, "accuracy")
        .iter()
        .map(|x| x["task"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tasks.into_iter().collect::<Vec<_>>(),
        vec!["copy", "example", "mqar", "passkey"]
    );
    assert!(
        log.contains("FAIL rwkv7-upstream:preset=tiny passkey"),
        "{log}"
    );
}

/// The recall suite as a fresh clone runs it: only shipped files, every length and
/// key-value count, the state each model held, and a verdict on the recall claim.
#[test]
fn the_recall_suite_gives_the_recall_claim_a_verdict_from_the_shipped_pair() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench()
        .args(["eval", "suites/recall.toml", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let r = results(dir.path());
    let acc = records(&r, "accuracy");
    // 2 models x 3 lengths x 3 key-value counts.
    assert_eq!(acc.len(), 18, "{log}");
    assert!(acc.iter().all(|x| x["pairs"].as_u64().is_some()));
    assert_eq!(records(&r, "state_bytes").len(), 18);
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    let row = summary
        .lines()
        .find(|l| l.contains("RWKV underperforms on some reasoning/recall tasks"))
        .unwrap();
    assert!(!row.contains("not measured"), "{row}");
    assert!(row.contains("supported"), "{row}");
    assert!(dir.path().join("charts/recall_state.svg").exists());
}
