//! Checkpoints shipped with the repository under `assets/pretrained/`, named by
//! `pretrained=NAME` in a model spec (`rwkv7:pretrained=recall-small`): matched pairs
//! trained by `rwkv-bench train` (the recipes are `scripts/pairs/`), in the official
//! formats, so accuracy claims have trained weights on a fresh clone.

use std::path::PathBuf;

use results::{Arch, ModelSpec};

use crate::{Error, Result};

/// One shipped pair: where each architecture's checkpoint lies, relative to the
/// assets directory (a `.pth` file for RWKV-7, a Hugging Face directory for Llama).
pub struct Pretrained {
    pub name: &'static str,
    pub rwkv7: &'static str,
    pub llama: &'static str,
    /// What it was trained on, for `rwkv-bench info` and error messages.
    pub about: &'static str,
}

pub const PRETRAINED: &[Pretrained] = &[Pretrained {
    name: "recall-small",
    rwkv7: "recall-small/rwkv7/model.pth",
    llama: "recall-small/llama",
    about:
        "2 layers, width 128, trained on multi-query associative recall (scripts/pairs/recall.sh)",
}];

/// Where the shipped checkpoints are: `$RWKV_BENCH_ASSETS` when set (an installed
/// binary), else the repository the binary was built from.
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("RWKV_BENCH_ASSETS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../assets/pretrained"
        )),
    }
}

/// The checkpoint of `name` for the architecture `arch` (checked to exist).
pub fn path(spec: &ModelSpec, arch: Arch, name: &str) -> Result<PathBuf> {
    let Some(p) = PRETRAINED.iter().find(|p| p.name == name) else {
        return Err(Error::spec(
            spec,
            format!(
                "unknown pretrained pair `{name}` (shipped: {})",
                PRETRAINED
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let rel = match arch {
        Arch::Rwkv => p.rwkv7,
        Arch::Transformer => p.llama,
    };
    let path = assets_dir().join(rel);
    if !path.exists() {
        return Err(Error::spec(
            spec,
            format!(
                "the pretrained checkpoint {} is missing (it ships in the repository's \
                 assets/pretrained; set RWKV_BENCH_ASSETS to that directory)",
                path.display()
            ),
        ));
    }
    Ok(path)
}
