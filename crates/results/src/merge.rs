//! Joining the shards of one suite (`run --shard I/N`) into one results document, as
//! if the suite had run whole: the same cells, in the order an unsharded run writes
//! them, with the analysis made over all of them.
//!
//! Shards are refused when they cannot be one run: another suite or settings, another
//! schema, another build, another machine (unless asked), a shard given twice or a cell
//! measured twice, a shard missing (unless asked).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::analysis::analyse;
use crate::record::CellKey;
use crate::schema::{Results, SCHEMA_VERSION};
use crate::shard::{Shard, ShardRecord};
use crate::spec::ModelSpec;
use crate::{Error, Result};

/// What `merge` lets through.
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeOptions {
    /// Write a file of the shards given even when some are missing (its `shards` list
    /// says which are there).
    pub partial: bool,
    /// Join shards whose machine captures differ. Each shard's records were measured on
    /// its own machine; the merged file keeps the first shard's capture, and its
    /// `shards` list names every host.
    pub mixed_machines: bool,
}

fn fail(path: &Path, message: String) -> Error {
    Error::Results {
        path: path.to_path_buf(),
        message,
    }
}

/// Checks that `b` can join `a` (the first file): same schema, suite, settings and
/// build.
fn check_compatible(a: (&Path, &Results), b: (&Path, &Results), opts: MergeOptions) -> Result<()> {
    let ((pa, ra), (pb, rb)) = (a, b);
    let name = |p: &Path| p.display().to_string();
    if ra.schema_version != rb.schema_version {
        return Err(fail(
            pb,
            format!(
                "schema_version {} but {} has {}: merge shards written by one build",
                rb.schema_version,
                name(pa),
                ra.schema_version
            ),
        ));
    }
    if ra.suite.config.name != rb.suite.config.name {
        return Err(fail(
            pb,
            format!(
                "is a run of suite `{}`, {} of suite `{}`: only shards of one suite merge",
                rb.suite.config.name,
                name(pa),
                ra.suite.config.name
            ),
        ));
    }
    if ra.suite.config != rb.suite.config || ra.suite.source != rb.suite.source {
        return Err(fail(
            pb,
            format!(
                "ran suite `{}` with other settings than {} (the suite file or a --threads/--dtype \
                 override differs): their cells are not one run",
                rb.suite.config.name,
                name(pa)
            ),
        ));
    }
    if (&ra.tool.version, &ra.tool.git_commit) != (&rb.tool.version, &rb.tool.git_commit) {
        return Err(fail(
            pb,
            format!(
                "was measured by rwkv-bench {} ({}), {} by {} ({}): run every shard with one build",
                rb.tool.version,
                rb.tool.git_commit,
                name(pa),
                ra.tool.version,
                ra.tool.git_commit
            ),
        ));
    }
    if !opts.mixed_machines && ra.machine.id() != rb.machine.id() {
        return Err(fail(
            pb,
            format!(
                "ran on {} but {} on {}: speed-ups would compare cells of different machines \
                 (pass --allow-mixed-machines to merge anyway, or compare machines with \
                 `rwkv-bench report A.json B.json`)",
                rb.machine.id(),
                name(pa),
                ra.machine.id()
            ),
        ));
    }
    Ok(())
}

/// The shards `files` hold, each once, all of one count.
fn collect_shards(files: &[(PathBuf, Results)], opts: MergeOptions) -> Result<Vec<ShardRecord>> {
    let mut seen: BTreeMap<usize, &Path> = BTreeMap::new();
    let mut shards = Vec::new();
    let mut count = None;
    for (path, r) in files {
        if r.shards.is_empty() {
            return Err(fail(
                path,
                "is a run of the whole suite, not a shard (`run --shard I/N` writes shards)".into(),
            ));
        }
        for s in &r.shards {
            match count {
                None => count = Some((s.count, path.as_path())),
                Some((n, first)) if n != s.count => {
                    return Err(fail(
                        path,
                        format!(
                            "is shard {} but {} is a shard of {n}: merge shards of one split",
                            s.shard(),
                            first.display()
                        ),
                    ))
                }
                _ => {}
            }
            if let Some(other) = seen.insert(s.index, path) {
                return Err(fail(
                    path,
                    format!(
                        "shard {} is also in {}: a shard merges once",
                        s.shard(),
                        other.display()
                    ),
                ));
            }
            shards.push(s.clone());
        }
    }
    let n = count.map_or(0, |c| c.0);
    let missing: Vec<String> = (1..=n)
        .filter(|i| !seen.contains_key(i))
        .map(|i| Shard { index: i, count: n }.to_string())
        .collect();
    if !missing.is_empty() && !opts.partial {
        return Err(fail(
            &files[0].0,
            format!(
                "shard(s) {} are missing from the merge (pass --partial to merge the {} given)",
                missing.join(", "),
                seen.len()
            ),
        ));
    }
    shards.sort_by_key(|s| s.index);
    Ok(shards)
}

/// Where a cell of `model` at `seq_len` with `task` comes in an unsharded run: length
/// by length, the suite's models in order at each, inference before training.
fn run_order<'a>(
    seq_lens: &'a [usize],
    models: &'a [ModelSpec],
) -> impl Fn(&ModelSpec, usize, bool) -> (usize, usize, bool) + 'a {
    move |model, seq_len, task| {
        let l = seq_lens
            .iter()
            .position(|&x| x == seq_len)
            .unwrap_or(usize::MAX);
        let m = models.iter().position(|x| x == model).unwrap_or(usize::MAX);
        (l, m, task)
    }
}

/// Joins shards of one suite into one results document. `files` are the shards as
/// read, with their paths for messages; the first one's machine, tool and suite stand
/// for all.
pub fn merge(files: Vec<(PathBuf, Results)>, opts: MergeOptions) -> Result<Results> {
    let Some((first_path, first)) = files.first() else {
        return Err(Error::Shard("merge needs at least one shard".into()));
    };
    for (path, r) in &files[1..] {
        check_compatible((first_path, first), (path, r), opts)?;
    }
    let shards = collect_shards(&files, opts)?;
    let mut seen: Vec<(CellKey, &Path)> = Vec::new();
    for (path, r) in &files {
        for rec in &r.records {
            let key = rec.key();
            if let Some((_, other)) = seen.iter().find(|(k, _)| *k == key) {
                return Err(fail(
                    path,
                    format!(
                        "measured {} {} @ {} as {} did: shards must not overlap",
                        rec.model,
                        rec.metric.label(),
                        rec.seq_len,
                        other.display()
                    ),
                ));
            }
            seen.push((key, path));
        }
    }

    let mut files = files;
    let (_, mut out) = files.remove(0);
    for (_, r) in files {
        out.started_at = out.started_at.min(r.started_at);
        out.finished_at = out.finished_at.max(r.finished_at);
        out.duration_s += r.duration_s;
        for m in r.models {
            if !out.models.iter().any(|x| x.spec == m.spec) {
                out.models.push(m);
            }
        }
        out.records.extend(r.records);
        out.failures.extend(r.failures);
        out.fits.extend(r.fits);
        out.dtype_costs.extend(r.dtype_costs);
        if out.settings.threads_used.is_none() {
            out.settings.threads_used = r.settings.threads_used;
        }
    }
    let c = out.suite.config.clone();
    let order = run_order(&c.seq_lens, &c.models);
    let model_pos = |m: &ModelSpec| c.models.iter().position(|x| x == m).unwrap_or(usize::MAX);
    // Stable sorts: the records of one cell keep the order their shard wrote them in.
    out.records
        .sort_by_key(|r| order(&r.model, r.seq_len, r.task.task.is_some()));
    out.failures
        .sort_by_key(|f| order(&f.model, f.seq_len, false));
    out.models.sort_by_key(|m| model_pos(&m.spec));
    out.fits.sort_by_key(|f| model_pos(&f.model));
    out.dtype_costs.sort_by_key(|d| model_pos(&d.model));
    out.schema_version = SCHEMA_VERSION;
    out.analysis = analyse(&out.models, &out.records);
    out.shards = shards;
    Ok(out)
}
