//! Sharded sweeps end to end: `run --shard I/N` as parallel processes, `merge`, and the
//! shards `merge` must refuse.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwkv-bench"));
    cmd.current_dir(repo()).env("RAYON_NUM_THREADS", "1");
    cmd
}

fn load(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Runs `suites/ci.toml` as shards 1..=n of n, all at once, into `dir/shard-I`.
fn run_shards(dir: &Path, n: usize) -> Vec<PathBuf> {
    let children: Vec<_> = (1..=n)
        .map(|i| {
            bench()
                .args([
                    "run",
                    "suites/ci.toml",
                    "--shard",
                    &format!("{i}/{n}"),
                    "--out",
                ])
                .arg(dir.join(format!("shard-{i}")))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (1..=n)
        .map(|i| dir.join(format!("shard-{i}/results.json")))
        .collect()
}

fn merge(shards: &[PathBuf], out: &Path, extra: &[&str]) -> std::process::Output {
    bench()
        .arg("merge")
        .args(shards)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// What makes two runs the same cells: each record's cell, sample and process counts,
/// and the values that do not depend on timing (state bytes).
fn cells(results: &Value) -> Vec<String> {
    results["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let exact = if r["metric"] == "state_bytes" {
                r["median"].to_string()
            } else {
                String::new()
            };
            format!(
                "{} {} @{} n={} processes={} {exact}",
                r["model"],
                r["metric"],
                r["seq_len"],
                r["samples"].as_array().unwrap().len(),
                r["processes"]
            )
        })
        .collect()
}

fn specs(results: &Value) -> Vec<String> {
    let mut v: Vec<String> = results["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["spec"].to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn shards_of_the_ci_suite_merge_into_the_unsharded_run_cell_for_cell() {
    let dir = tempfile::tempdir().unwrap();
    let whole = bench()
        .args(["run", "suites/ci.toml", "--out"])
        .arg(dir.path().join("whole"))
        .output()
        .unwrap();
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    let shards = run_shards(dir.path(), 2);
    let merged_dir = dir.path().join("merged");
    // Given in reverse: the order of the files does not matter.
    let out = merge(&[shards[1].clone(), shards[0].clone()], &merged_dir, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let whole = load(&dir.path().join("whole/results.json"));
    let merged = load(&merged_dir.join("results.json"));
    assert_eq!(
        cells(&merged),
        cells(&whole),
        "same cells, in the same order"
    );
    assert_eq!(specs(&merged), specs(&whole));
    assert_eq!(merged["failures"], whole["failures"]);
    assert_eq!(merged["suite"]["config"], whole["suite"]["config"]);
    // The analysis covers every length again: one slope per model and metric.
    assert_eq!(
        merged["analysis"]["slopes"].as_array().unwrap().len(),
        whole["analysis"]["slopes"].as_array().unwrap().len()
    );
    let listed: Vec<u64> = merged["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["index"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, [1, 2]);
    // Each shard holds whole lengths: every model's cells at a length are in one file.
    let lengths = |p: &Path| {
        let mut l: Vec<u64> = load(p)["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq_len"].as_u64().unwrap())
            .collect();
        l.sort();
        l.dedup();
        l
    };
    let (a, b) = (lengths(&shards[0]), lengths(&shards[1]));
    assert!(!a.is_empty() && !b.is_empty() && a.iter().all(|l| !b.contains(l)));
    assert!(merged_dir.join("report.html").exists());
}

#[test]
fn more_shards_than_lengths_leave_an_empty_shard_that_still_merges() {
    let dir = tempfile::tempdir().unwrap();
    // ci.toml has three lengths and no other units: one of four shards is empty.
    let shards = run_shards(dir.path(), 4);
    let empty: Vec<&PathBuf> = shards
        .iter()
        .filter(|p| load(p)["records"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(empty.len(), 1);
    assert_eq!(load(empty[0])["shards"][0]["units"], serde_json::json!([]));
    let out = merge(&shards, &dir.path().join("merged"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = load(&dir.path().join("merged/results.json"));
    let lengths: std::collections::BTreeSet<u64> = merged["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq_len"].as_u64().unwrap())
        .collect();
    assert_eq!(lengths.into_iter().collect::<Vec<_>>(), [16, 64, 256]);
}

/// Writes a copy of `shard` changed by `edit` into `dir/name.json`.
fn edited(dir: &Path, shard: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut v = load(shard);
    edit(&mut v);
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    path
}

#[test]
fn merge_refuses_shards_that_are_not_one_run_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shards = run_shards(d, 2);
    let (s1, s2) = (&shards[0], &shards[1]);
    let whole = edited(d, s1, "whole", |v| v["shards"] = serde_json::json!([]));
    let schema = edited(d, s2, "schema", |v| v["schema_version"] = 2.into());
    let suite = edited(d, s2, "suite", |v| {
        v["suite"]["config"]["name"] = "quick".into()
    });
    let settings = edited(d, s2, "settings", |v| {
        v["suite"]["config"]["threads"] = 7.into()
    });
    let build = edited(d, s2, "build", |v| {
        v["tool"]["git_commit"] = "0123abc".into()
    });
    let machine = edited(d, s2, "machine", |v| {
        v["machine"]["cpu_model"] = "Ampere Altra".into()
    });
    let overlap = edited(d, s2, "overlap", |v| {
        let extra = load(s1)["records"][0].clone();
        v["records"].as_array_mut().unwrap().push(extra);
    });
    let other_split = edited(d, s2, "split", |v| {
        v["shards"][0]["index"] = 2.into();
        v["shards"][0]["count"] = 3.into();
    });
    let cases: [(&[&PathBuf], &str); 9] = [
        (&[s1], "shard(s) 2/2 are missing"),
        (&[s1, s1], "shard 1/2 is also in"),
        (&[s1, &whole], "not a shard"),
        (&[s1, &schema], "schema_version 2"),
        (&[s1, &suite], "suite `quick`"),
        (&[s1, &settings], "other settings"),
        (&[s1, &build], "0123abc"),
        (&[s1, &machine], "Ampere Altra"),
        (&[s1, &overlap], "must not overlap"),
    ];
    for (i, (files, message)) in cases.iter().enumerate() {
        let out_dir = d.join(format!("out-{i}"));
        let files: Vec<PathBuf> = files.iter().map(|p| p.to_path_buf()).collect();
        let out = merge(&files, &out_dir, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{message}: {stderr}");
        assert!(
            stderr.contains(message),
            "expected `{message}` in: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            !out_dir.exists(),
            "nothing is written when a merge is refused"
        );
    }
    let out = merge(&[s1.clone(), other_split], &d.join("split"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a shard of 2"));

    // What the flags let through, said in the merged file.
    let out = merge(std::slice::from_ref(s1), &d.join("partial"), &["--partial"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        load(&d.join("partial/results.json"))["shards"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let out = merge(
        &[s1.clone(), machine],
        &d.join("mixed"),
        &["--allow-mixed-machines"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_malformed_shard_is_refused_before_anything_runs() {
    for bad in ["0/2", "3/2", "1/0", "half"] {
        let out = bench()
            .args([
                "run",
                "suites/ci.toml",
                "--shard",
                bad,
                "--out",
                "/nonexistent/x",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains(bad), "{stderr}");
    }
}

#[test]
fn searches_and_dtype_costs_are_units_of_their_own_and_merge_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let suite = d.join("all.toml");
    std::fs::write(
        &suite,
        r#"name = "all-units"
models = ["rwkv7:preset=tiny", "llama:preset=tiny"]
seq_lens = [16, 64]
dtype = "q8_0"
[measure]
max_context = true
dtype_cost = true
[sampling]
warmup_tokens = 8
repetitions = 2
max_seconds_per_cell = 2
decode_warmup = 1
decode_tokens = 4
processes = 1
[fit]
budget_mb = 2048
cap = 512
start = 64
[dtype_cost]
tokens = 32
"#,
    )
    .unwrap();
    let run = |extra: &[&str], out: &Path| {
        let o = bench()
            .arg("run")
            .arg(&suite)
            .args(extra)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        load(&out.join("results.json"))
    };
    let whole = run(&[], &d.join("whole"));
    // Two lengths, two searches, two dtype costs: six units over three shards.
    let shards: Vec<PathBuf> = (1..=3)
        .map(|i| {
            let out = d.join(format!("shard-{i}"));
            run(&["--shard", &format!("{i}/3")], &out);
            out.join("results.json")
        })
        .collect();
    let units: usize = shards
        .iter()
        .map(|p| load(p)["shards"][0]["units"].as_array().unwrap().len())
        .sum();
    assert_eq!(units, 6);
    let out = merge(&shards, &d.join("merged"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = load(&d.join("merged/results.json"));
    assert_eq!(cells(&merged), cells(&whole));
    let models = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["model"].to_string())
            .collect()
    };
    assert_eq!(models(&merged, "fits"), models(&whole, "fits"));
    assert_eq!(
        models(&merged, "dtype_costs"),
        models(&whole, "dtype_costs")
    );
    assert_eq!(models(&merged, "fits").len(), 2);
}
