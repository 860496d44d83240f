//! A run directory: `run.json` (what is being trained), `log.jsonl` (one line per
//! step), `step-NNNNNN/` checkpoints (the model in its own format, the optimizer's
//! state, `checkpoint.json`) and `latest` naming the newest. A checkpoint directory is
//! written under a temporary name and renamed, and `latest` is replaced atomically
//! after it, so a crash never leaves `latest` pointing at half a checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};
use models::trainable::{adamw, AdamW, Differentiable};

/// Checkpoints kept besides the newest one.
const KEEP_OLDER: usize = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub step: u64,
    /// The directory of the checkpoint.
    pub dir: PathBuf,
    /// What a model spec loads (`rwkv7:<model>` / `llama:<model>`).
    pub model: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    step: u64,
    /// Relative to the checkpoint directory.
    model: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

fn step_name(step: u64) -> String {
    format!("step-{step:06}")
}

/// Writes the model and the optimizer at `step` into `out`, then points `latest` at it.
pub fn save(model: &dyn Differentiable, opt: &AdamW, out: &Path, step: u64) -> Result<Saved> {
    let name = step_name(step);
    let tmp = out.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let model_path = model.save(&tmp)?;
    let rel = model_path
        .strip_prefix(&tmp)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let state = opt.state()?;
    let mut tensors = HashMap::new();
    for (key, m, v) in state.moments {
        tensors.insert(format!("m.{key}"), m);
        tensors.insert(format!("v.{key}"), v);
    }
    let opt_path = tmp.join("optimizer.safetensors");
    candle_core::safetensors::save(&tensors, &opt_path)?;
    let manifest = serde_json::to_vec_pretty(&Manifest {
        step: state.step,
        model: rel.clone(),
    })
    .map_err(|e| Error::Training(e.to_string()))?;
    let mpath = tmp.join("checkpoint.json");
    std::fs::write(&mpath, manifest).map_err(io(&mpath))?;

    let dir = out.join(&name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
    results::atomic::write(&out.join("latest"), format!("{name}\n").as_bytes())?;
    prune(out, step)?;
    Ok(Saved {
        step,
        model: dir.join(rel),
        dir,
    })
}

/// Removes all but the newest `KEEP_OLDER` checkpoints older than `step`.
fn prune(out: &Path, step: u64) -> Result<()> {
    let mut older: Vec<(u64, PathBuf)> = std::fs::read_dir(out)
        .map_err(io(out))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let s: u64 = name.strip_prefix("step-")?.parse().ok()?;
            (s < step).then(|| (s, e.path()))
        })
        .collect();
    older.sort();
    let drop = older.len().saturating_sub(KEEP_OLDER);
    for (_, path) in older.into_iter().take(drop) {
        std::fs::remove_dir_all(&path).map_err(io(&path))?;
    }
    Ok(())
}

/// The checkpoint `latest` names, if the run directory has one.
pub fn latest(out: &Path) -> Result<Option<Saved>> {
    let pointer = out.join("latest");
    if !pointer.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&pointer).map_err(io(&pointer))?;
    let dir = out.join(name.trim());
    let mpath = dir.join("checkpoint.json");
    let text = std::fs::read_to_string(&mpath).map_err(io(&mpath))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| {
        Error::Training(format!(
            "{}: malformed checkpoint manifest: {e}",
            mpath.display()
        ))
    })?;
    Ok(Some(Saved {
        step: m.step,
        model: dir.join(&m.model),
        dir,
    }))
}

/// The optimizer state of a checkpoint, for [`AdamW::load_state`].
pub fn optimizer_state(saved: &Saved) -> Result<adamw::State> {
    let path = saved.dir.join("optimizer.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| {
        Error::Training(format!(
            "{}: {}",
            path.display(),
            results::error::one_line(&e.to_string())
        ))
    })?;
    let keys: Vec<String> = tensors
        .keys()
        .filter_map(|k| k.strip_prefix("m.").map(str::to_string))
        .collect();
    let mut moments = Vec::with_capacity(keys.len());
    for key in keys {
        let m = tensors.remove(&format!("m.{key}")).expect("listed above");
        let v: Tensor = tensors.remove(&format!("v.{key}")).ok_or_else(|| {
            Error::Training(format!("{}: no second moment for `{key}`", path.display()))
        })?;
        moments.push((key, m, v));
    }
    Ok(adamw::State {
        step: saved.step,
        moments,
    })
}
