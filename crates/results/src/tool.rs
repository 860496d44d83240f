//! The tool that made a run, recorded in every results file: version, git commit and
//! the candle crates' versions (set by `build.rs`).

use std::collections::BTreeMap;

use crate::schema::Tool;

pub fn tool() -> Tool {
    let crate_versions: BTreeMap<String, String> = env!("RWKV_BENCH_DEP_VERSIONS")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Tool {
        name: "rwkv-bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        git_commit: env!("RWKV_BENCH_GIT_COMMIT").into(),
        crate_versions,
    }
}
