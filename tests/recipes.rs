//! The scheduler recipes in `recipes/`, each run as its scheduler would run it: the
//! shard commands as parallel local processes with the environment that scheduler
//! sets (a GitHub Actions matrix, a Slurm job array, a Kubernetes Indexed Job), then
//! the recipe's merge. The suite is overridden to `suites/ci.toml` through the variable
//! each recipe reads, so the test takes seconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

const SUITE: &str = "suites/ci.toml";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// PATH with the tested binary first, as the recipes' install steps would leave it.
fn path_with_binary() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_rwkv-bench"))
        .parent()
        .unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn yaml(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    YamlLoader::load_from_str(&text).unwrap()
}

/// A shell command run as the scheduler would: `sh -c` (or bash) in `cwd` with `env`.
fn spawn(shell: &str, script: &str, cwd: &Path, env: &BTreeMap<String, String>) -> Child {
    Command::new(shell)
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("PATH", path_with_binary())
        .env("RAYON_NUM_THREADS", "1")
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_ok(children: Vec<Child>, what: &str) {
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The merged results: every shard of `n` there, every length of the suite measured.
fn check_merged(path: &Path, n: usize) {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let shards: Vec<u64> = v["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["index"].as_u64().unwrap())
        .collect();
    assert_eq!(shards, (1..=n as u64).collect::<Vec<_>>());
    let mut lengths: Vec<u64> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq_len"].as_u64().unwrap())
        .collect();
    lengths.dedup();
    assert_eq!(lengths, [16, 64, 256]);
    assert!(path.with_file_name("report.html").exists());
}

/// A checkout for a job: the repository's suites where the workflow expects them.
fn checkout(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::symlink(repo().join("suites"), dir.join("suites")).unwrap();
    dir.to_path_buf()
}

fn str_map(y: &Yaml) -> BTreeMap<String, String> {
    y.as_hash()
        .map(|h| {
            h.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Yaml::Integer(i) => i.to_string(),
                        other => other.as_str().unwrap_or_default().to_string(),
                    };
                    (k.as_str().unwrap().to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// GitHub Actions' `${{ … }}` expressions the recipe uses.
fn expand(text: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("${{{{ {k} }}}}"), v);
    }
    assert!(!out.contains("${{"), "unexpanded expression in `{out}`");
    out
}

/// A job's `run` steps with their environment, expanded, in order; the install step is
/// left out (it builds the binary this test already has on PATH).
fn run_steps(
    job: &Yaml,
    vars: &BTreeMap<&str, String>,
    env: &BTreeMap<String, String>,
) -> Vec<(String, BTreeMap<String, String>)> {
    job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter(|step| step["name"].as_str() != Some("Install rwkv-bench"))
        .filter_map(|step| {
            let script = step["run"].as_str()?;
            let mut step_env = env.clone();
            for (k, v) in str_map(&step["env"]) {
                step_env.insert(k, expand(&v, vars));
            }
            Some((expand(script, vars), step_env))
        })
        .collect()
}

/// Runs a job's steps one after the other, as a runner does (`bash -e`).
fn run_job(steps: Vec<(String, BTreeMap<String, String>)>, cwd: &Path) {
    for (script, env) in steps {
        wait_ok(
            vec![spawn(
                "bash",
                &format!("set -eo pipefail\n{script}"),
                cwd,
                &env,
            )],
            &script,
        );
    }
}

#[test]
fn github_actions_matrix_shards_and_merges() {
    let doc = &yaml("recipes/github-actions/sharded-bench.yml")[0];
    let mut env = str_map(&doc["env"]);
    env.insert("SUITE".into(), SUITE.into());
    let shard_job = &doc["jobs"]["shard"];
    let matrix = shard_job["strategy"]["matrix"]["shard"].as_vec().unwrap();
    let n = matrix.len();
    assert!(n >= 2);
    let dir = tempfile::tempdir().unwrap();
    let merge_dir = checkout(&dir.path().join("merge-job"));
    let mut jobs = Vec::new();
    let mut uploads = Vec::new();
    for shard in matrix {
        let i = shard.as_i64().unwrap();
        let vars = BTreeMap::from([
            ("matrix.shard", i.to_string()),
            ("strategy.job-total", n.to_string()),
        ]);
        let cwd = checkout(&dir.path().join(format!("shard-job-{i}")));
        for step in shard_job["steps"].as_vec().unwrap() {
            if step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact"))
            {
                let name = expand(step["with"]["name"].as_str().unwrap(), &vars);
                let path = expand(step["with"]["path"].as_str().unwrap(), &vars);
                uploads.push((name, cwd.join(path)));
            }
        }
        let steps = run_steps(shard_job, &vars, &env);
        jobs.push(std::thread::spawn(move || run_job(steps, &cwd)));
    }
    for job in jobs {
        job.join().unwrap();
    }
    // download-artifact with a pattern puts each artifact in `path/<name>/`.
    let merge_job = &doc["jobs"]["merge"];
    let download = merge_job["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/download-artifact"))
        })
        .unwrap();
    let into = merge_dir.join(download["with"]["path"].as_str().unwrap());
    for (name, file) in uploads {
        let to = into.join(name);
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
    }
    run_job(run_steps(merge_job, &BTreeMap::new(), &env), &merge_dir);
    check_merged(&merge_dir.join("merged/results.json"), n);
}

#[test]
fn slurm_job_array_shards_and_merges() {
    let script = std::fs::read_to_string(repo().join("recipes/slurm/bench.sbatch")).unwrap();
    let array = script
        .lines()
        .find_map(|l| l.strip_prefix("#SBATCH --array="))
        .unwrap();
    let (min, max) = array.split_once('-').unwrap();
    let (min, max): (u32, u32) = (min.parse().unwrap(), max.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let base = BTreeMap::from([
        ("SUITE".to_string(), SUITE.to_string()),
        ("OUT".to_string(), out.display().to_string()),
        ("SLURM_ARRAY_JOB_ID".to_string(), "4242".to_string()),
        ("SLURM_ARRAY_TASK_MIN".to_string(), min.to_string()),
        ("SLURM_ARRAY_TASK_MAX".to_string(), max.to_string()),
        (
            "SLURM_ARRAY_TASK_COUNT".to_string(),
            (max - min + 1).to_string(),
        ),
    ]);
    // sbatch runs the script with bash in the submission directory.
    let children = (min..=max)
        .map(|task| {
            let mut env = base.clone();
            env.insert("SLURM_ARRAY_TASK_ID".into(), task.to_string());
            spawn("bash", "bash recipes/slurm/bench.sbatch", &repo(), &env)
        })
        .collect();
    wait_ok(children, "array task");
    let merge = spawn("bash", "bash recipes/slurm/merge.sbatch", &repo(), &base);
    wait_ok(vec![merge], "merge job");
    check_merged(&out.join("merged/results.json"), (max - min + 1) as usize);
}

/// The first container of the Job in `docs`: its shell script and environment.
fn container(docs: &[Yaml]) -> (&Yaml, &Yaml) {
    let job = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Job"))
        .unwrap();
    (job, &job["spec"]["template"]["spec"]["containers"][0])
}

fn container_env(c: &Yaml) -> BTreeMap<String, String> {
    c["env"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `command: ["/bin/sh", "-c"]` with the script as the one argument.
fn shell_script(c: &Yaml) -> String {
    let command: Vec<&str> = c["command"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(command, ["/bin/sh", "-c"]);
    c["args"][0].as_str().unwrap().to_string()
}

#[test]
fn kubernetes_indexed_job_shards_and_merges() {
    let docs = yaml("recipes/kubernetes/indexed-job.yaml");
    let (job, c) = container(&docs);
    assert_eq!(job["spec"]["completionMode"].as_str(), Some("Indexed"));
    let completions = job["spec"]["completions"].as_i64().unwrap() as usize;
    let mut env = container_env(c);
    assert_eq!(
        env["SHARDS"],
        completions.to_string(),
        "SHARDS must equal the Job's completions"
    );
    let dir = tempfile::tempdir().unwrap();
    env.insert("SUITE".into(), SUITE.into());
    env.insert("RESULTS".into(), dir.path().display().to_string());
    let script = shell_script(c);
    let children = (0..completions)
        .map(|index| {
            let mut env = env.clone();
            env.insert("JOB_COMPLETION_INDEX".into(), index.to_string());
            spawn("/bin/sh", &script, &repo(), &env)
        })
        .collect();
    wait_ok(children, "indexed pod");

    let merge_docs = yaml("recipes/kubernetes/merge-job.yaml");
    let (_, m) = container(&merge_docs);
    let mut merge_env = container_env(m);
    merge_env.insert("RESULTS".into(), dir.path().display().to_string());
    let merge = spawn("/bin/sh", &shell_script(m), &repo(), &merge_env);
    wait_ok(vec![merge], "merge job");
    check_merged(&dir.path().join("merged/results.json"), completions);
}
