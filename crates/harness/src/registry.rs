//! The one table of model implementations, chosen by the name in a model spec.

use crate::adapters::{llama, llama_upstream, rwkv7, rwkv7_upstream, BuildOptions};
use crate::model::{Arch, CausalLm};
use crate::presets::{preset, preset_names, Preset};
use crate::spec::{ModelSpec, Source};
use crate::{Error, Result};

type BuildFn = fn(&ModelSpec, &Source, &BuildOptions) -> Result<Box<dyn CausalLm>>;

/// One registered implementation.
pub struct Entry {
    pub name: &'static str,
    pub arch: Arch,
    pub description: &'static str,
    /// Parameter count of a preset without building it.
    pub preset_params: fn(&Preset) -> u64,
    build: BuildFn,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("arch", &self.arch)
            .finish()
    }
}

fn boxed<M: CausalLm + 'static>(m: Result<M>) -> Result<Box<dyn CausalLm>> {
    m.map(|m| Box::new(m) as Box<dyn CausalLm>)
}

/// Every implementation the harness can run.
pub static REGISTRY: &[Entry] = &[
    Entry {
        name: rwkv7::NAME,
        arch: Arch::Rwkv,
        description: rwkv7::DESCRIPTION,
        preset_params: rwkv7::preset_params,
        build: |spec, source, opts| match source {
            Source::Preset(p) => boxed(rwkv7::from_preset(spec, resolve_preset(spec, p)?, opts)),
            Source::Path(path) => boxed(rwkv7::from_path(spec, path, opts)),
        },
    },
    Entry {
        name: rwkv7_upstream::NAME,
        arch: Arch::Rwkv,
        description: rwkv7_upstream::DESCRIPTION,
        preset_params: rwkv7_upstream::preset_params,
        build: |spec, source, opts| match source {
            Source::Preset(p) => boxed(rwkv7_upstream::from_preset(
                spec,
                resolve_preset(spec, p)?,
                opts,
            )),
            Source::Path(path) => boxed(rwkv7_upstream::from_path(spec, path, opts)),
        },
    },
    Entry {
        name: llama_upstream::NAME,
        arch: Arch::Transformer,
        description: llama_upstream::DESCRIPTION,
        preset_params: llama_upstream::preset_params,
        build: |spec, source, opts| match source {
            Source::Preset(p) => boxed(llama_upstream::from_preset(
                spec,
                resolve_preset(spec, p)?,
                opts,
            )),
            Source::Path(path) => boxed(llama_upstream::from_path(spec, path, opts)),
        },
    },
    Entry {
        name: llama::NAME,
        arch: Arch::Transformer,
        description: llama::DESCRIPTION,
        preset_params: llama::preset_params,
        build: |spec, source, opts| match source {
            Source::Preset(p) => boxed(llama::from_preset(spec, resolve_preset(spec, p)?, opts)),
            Source::Path(path) => boxed(llama::from_path(spec, path, opts)),
        },
    },
];

fn resolve_preset(spec: &ModelSpec, name: &str) -> Result<&'static Preset> {
    preset(name).ok_or_else(|| Error::Spec {
        spec: spec.raw.clone(),
        message: format!(
            "unknown preset `{name}` (known: {})",
            preset_names().join(", ")
        ),
    })
}

/// Parses a spec and checks that its implementation, preset or path exist, without
/// building anything.
pub fn resolve(raw: &str) -> Result<(&'static Entry, ModelSpec)> {
    let spec: ModelSpec = raw.parse()?;
    let entry = REGISTRY
        .iter()
        .find(|e| e.name == spec.name)
        .ok_or_else(|| Error::Spec {
            spec: spec.raw.clone(),
            message: format!(
                "unknown implementation `{}` (known: {})",
                spec.name,
                REGISTRY
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    match &spec.source {
        Source::Preset(p) => {
            resolve_preset(&spec, p)?;
        }
        Source::Path(path) if !path.exists() => {
            return Err(Error::Spec {
                spec: spec.raw.clone(),
                message: format!("checkpoint {} does not exist", path.display()),
            })
        }
        Source::Path(_) => {}
    }
    Ok((entry, spec))
}

/// Builds the model a spec names.
pub fn build(raw: &str, opts: &BuildOptions) -> Result<Box<dyn CausalLm>> {
    let (entry, spec) = resolve(raw)?;
    (entry.build)(&spec, &spec.source, opts)
}

/// The longest context a spec supports, where it is known without loading weights.
pub fn preset_max_seq_len(raw: &str) -> Result<Option<usize>> {
    let (entry, spec) = resolve(raw)?;
    Ok(match (&spec.source, entry.arch) {
        // Upstream's rope tables stop at max_position_embeddings; ours has no limit.
        (Source::Preset(p), Arch::Transformer) if entry.name == llama_upstream::NAME => {
            Some(resolve_preset(&spec, p)?.llama.max_position_embeddings)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_and_presets_list_the_known_ones() {
        let e = resolve("gpt9:preset=tiny").unwrap_err().to_string();
        assert!(
            e.contains("rwkv7-upstream") && e.contains("llama-upstream"),
            "{e}"
        );
        let e = resolve("llama-upstream:preset=huge")
            .unwrap_err()
            .to_string();
        assert!(e.contains("0.1b") && e.contains("tiny"), "{e}");
        let e = resolve("llama-upstream:/no/such/dir")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/no/such/dir"), "{e}");
    }

    #[test]
    fn tiny_presets_build_and_produce_finite_logits() {
        for name in ["rwkv7-upstream", "llama-upstream", "llama"] {
            let mut m = build(&format!("{name}:preset=tiny"), &BuildOptions::default()).unwrap();
            let logits = m.prefill(&[1, 2, 3, 4]).unwrap();
            assert_eq!(logits.dims(), &[512]);
            let after = m.state_bytes();
            let next = m.step(5).unwrap().to_vec1::<f32>().unwrap();
            assert!(next.iter().all(|x| x.is_finite()), "{name}");
            assert!(after > 0, "{name}");
            m.reset().unwrap();
            let lp = m.log_probs(&[1, 2, 3]).unwrap();
            assert_eq!(lp.len(), 2);
            assert!(
                lp.iter().all(|&x| x < 0.0 && x.is_finite()),
                "{name}: {lp:?}"
            );
        }
    }
}
