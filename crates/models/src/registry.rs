//! The one table of model implementations, chosen by the name in a model spec. Adding
//! an implementation: a file under `adapters/` and a line here.

use std::path::PathBuf;

use candle_core::DType;
use kernels::WeightDtype;
use results::suite::{suite_error, Suite};
use results::{ModelInfo, ModelSpec, Source, Weights};

use crate::adapters::{
    llama, llama_quantized_upstream, llama_upstream, python, rwkv7, rwkv7_upstream,
};
use crate::implementation::{BuildOptions, Implementation, Runtime, Shape, TrainSource};
use crate::model::CausalLm;
use crate::presets::{preset, preset_names, Preset};
use crate::pretrained;
use crate::trainable::Differentiable;
use crate::{Error, Result};

/// Every implementation the harness can run.
pub static REGISTRY: &[&dyn Implementation] = &[
    &rwkv7::Rwkv7Impl,
    &rwkv7_upstream::UpstreamRwkv7Impl,
    &llama_upstream::UpstreamLlamaImpl,
    &llama::LlamaImpl,
    &llama_quantized_upstream::QuantizedUpstreamLlamaImpl,
    &python::OfficialRwkv7Impl,
    &python::HfLlamaImpl,
];

/// Options a spec may carry besides `tokenizer` (a typo is an error rather than
/// silently ignored): `dtype=` stores the weights as f32, bf16, f16, q8_0 or q4_k,
/// whatever the suite says; `kv_dtype=` stores a KV cache as f32, f16 or bf16.
const OPTIONS: &[&str] = &["dtype", "kv_dtype"];

/// The KV cache dtype a spec asks for with `kv_dtype=`, if it does.
pub fn spec_kv_dtype(spec: &ModelSpec) -> Result<Option<DType>> {
    spec.options
        .iter()
        .find(|(k, _)| k == "kv_dtype")
        .map(|(_, v)| match v.as_str() {
            "f32" => Ok(DType::F32),
            "f16" => Ok(DType::F16),
            "bf16" => Ok(DType::BF16),
            other => Err(Error::spec(
                spec,
                format!("unknown kv_dtype `{other}` (known: f32, f16, bf16)"),
            )),
        })
        .transpose()
}

/// The weight dtype a spec asks for with `dtype=`, if it does.
pub fn spec_dtype(spec: &ModelSpec) -> Result<Option<WeightDtype>> {
    spec.options
        .iter()
        .find(|(k, _)| k == "dtype")
        .map(|(_, v)| v.parse().map_err(|e: String| Error::spec(spec, e)))
        .transpose()
}

/// The weight dtype a suite's model is stored in: its spec's `dtype=`, else the
/// suite's.
pub fn model_dtype(spec: &ModelSpec, suite_dtype: results::suite::Dtype) -> Result<WeightDtype> {
    Ok(spec_dtype(spec)?.unwrap_or(crate::weight_dtype(suite_dtype)))
}

/// `opts` with the spec's own `dtype=` in place of the suite's.
fn with_spec_dtype(spec: &ModelSpec, opts: &BuildOptions) -> Result<BuildOptions> {
    let mut opts = opts.clone();
    if let Some(d) = spec_dtype(spec)? {
        opts.dtype = d;
    }
    Ok(opts)
}

fn resolve_preset(spec: &ModelSpec, name: &str) -> Result<&'static Preset> {
    preset(name).ok_or_else(|| {
        Error::spec(
            spec,
            format!(
                "unknown preset `{name}` (known: {})",
                preset_names().join(", ")
            ),
        )
    })
}

/// The implementation a spec names, once its preset or path and options are checked;
/// nothing is built.
pub fn resolve(spec: &ModelSpec) -> Result<&'static dyn Implementation> {
    let imp = REGISTRY
        .iter()
        .copied()
        .find(|e| e.name() == spec.implementation)
        .ok_or_else(|| {
            Error::spec(
                spec,
                format!(
                    "unknown implementation `{}` (known: {})",
                    spec.implementation,
                    REGISTRY
                        .iter()
                        .map(|e| e.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    if let Some((key, _)) = spec
        .options
        .iter()
        .find(|(k, _)| !OPTIONS.contains(&k.as_str()))
    {
        let known = ["tokenizer"].iter().chain(OPTIONS).copied();
        return Err(Error::spec(
            spec,
            format!(
                "unknown option `{key}` (known: {})",
                known.collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    spec_dtype(spec)?;
    if spec_kv_dtype(spec)?.is_some() && !imp.kv_dtypes() {
        return Err(Error::spec(
            spec,
            format!(
                "`{}` has no KV cache dtype to choose (kv_dtype= takes llama)",
                imp.name()
            ),
        ));
    }
    if let Origin::Checkpoint(path) = origin(spec, imp)? {
        if !path.exists() {
            return Err(Error::spec(
                spec,
                format!("checkpoint {} does not exist", path.display()),
            ));
        }
    }
    Ok(imp)
}

/// Where a spec's weights come from, a shipped pair's name resolved to its file: the
/// one place `pretrained=NAME` differs from a path.
enum Origin {
    Preset(&'static Preset),
    Checkpoint(PathBuf),
}

fn origin(spec: &ModelSpec, imp: &dyn Implementation) -> Result<Origin> {
    Ok(match &spec.source {
        Source::Preset(p) => Origin::Preset(resolve_preset(spec, p)?),
        Source::Path(path) => Origin::Checkpoint(path.clone()),
        Source::Pretrained(name) => Origin::Checkpoint(pretrained::path(spec, imp.arch(), name)?),
    })
}

/// Builds the model a spec names.
pub fn build(spec: &ModelSpec, opts: &BuildOptions) -> Result<Box<dyn CausalLm>> {
    let imp = resolve(spec)?;
    let opts = &with_spec_dtype(spec, opts)?;
    match origin(spec, imp)? {
        Origin::Preset(p) => imp.build_from_preset(spec, p, opts),
        Origin::Checkpoint(path) => imp.build_from_path(spec, &path, opts),
    }
}

/// Builds the trainable model a spec names (f32).
pub fn build_trainable(spec: &ModelSpec, opts: &BuildOptions) -> Result<Box<dyn Differentiable>> {
    let imp = resolve(spec)?;
    let opts = &with_spec_dtype(spec, opts)?;
    match origin(spec, imp)? {
        Origin::Preset(p) => imp.build_trainable(spec, &TrainSource::Preset(p), opts),
        Origin::Checkpoint(path) => imp.build_trainable(spec, &TrainSource::Path(&path), opts),
    }
}

/// The longest context a spec supports, where it is known without loading weights.
pub fn max_seq_len(spec: &ModelSpec) -> Result<Option<usize>> {
    let imp = resolve(spec)?;
    Ok(match &spec.source {
        Source::Preset(p) => imp.preset_max_seq_len(resolve_preset(spec, p)?),
        Source::Path(_) | Source::Pretrained(_) => None,
    })
}

/// The hidden width of a spec, where it is known without loading weights (presets).
pub fn preset_width(spec: &ModelSpec) -> Result<Option<usize>> {
    resolve(spec)?;
    Ok(match &spec.source {
        Source::Preset(p) => Some(resolve_preset(spec, p)?.width),
        Source::Path(_) | Source::Pretrained(_) => None,
    })
}

/// What a spec's model is, as far as its shapes go, without building it: the preset's
/// shapes for a preset, and for a checkpoint (whose shapes only its file knows) the
/// implementation's `0.1b` preset as a stand-in. Enough to predict a cell's cost.
pub fn nominal_info(spec: &ModelSpec, dtype: WeightDtype) -> Result<ModelInfo> {
    let imp = resolve(spec)?;
    let name = match &spec.source {
        Source::Preset(p) => p.as_str(),
        Source::Path(_) | Source::Pretrained(_) => "0.1b",
    };
    let p = resolve_preset(spec, name)?;
    let opts = with_spec_dtype(
        spec,
        &BuildOptions {
            dtype,
            ..BuildOptions::default()
        },
    )?;
    let shape = Shape {
        params: imp.preset_params(p),
        layers: p.layers,
        width: p.width,
        vocab: p.vocab,
        tied_embeddings: false,
    };
    let weights = Weights::Random {
        preset: p.name.into(),
        seed: opts.seed,
    };
    Ok(imp.info(spec, shape, &opts, weights, imp.preset_max_seq_len(p)))
}

/// Where a spec's cells run.
pub fn runtime(spec: &ModelSpec) -> Result<Runtime> {
    Ok(resolve(spec)?.runtime())
}

/// The Python side of the cell protocol: `$RWKV_BENCH_PEERS/cell.py` when set (an
/// installed binary), else the repository's `scripts/peers/cell.py`.
pub fn peer_script() -> PathBuf {
    let dir = match std::env::var_os("RWKV_BENCH_PEERS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/peers")),
    };
    dir.join("cell.py")
}

/// The shapes a Python peer builds a preset's random weights from (the preset table
/// as JSON), `None` for a checkpoint.
pub fn preset_shapes(spec: &ModelSpec) -> Result<Option<serde_json::Value>> {
    match &spec.source {
        Source::Preset(p) => Ok(Some(
            serde_json::to_value(resolve_preset(spec, p)?)
                .map_err(|e| Error::spec(spec, e.to_string()))?,
        )),
        Source::Path(_) | Source::Pretrained(_) => Ok(None),
    }
}

/// Checks what a suite's Python peers need: an interpreter, f32 weights, and no
/// max-context search (probes run in this binary).
fn check_python_peers(suite: &Suite) -> Result<()> {
    let fail = |m: String| Error::from(suite_error(&suite.path, m));
    let c = &suite.config;
    for model in &c.models {
        if resolve(model)?.runtime() != Runtime::Python {
            continue;
        }
        let Some(python) = &c.python else {
            return Err(fail(format!(
                "`models`: {model} runs under Python: set `python = \"PATH\"` in the suite or \
                 pass --python PATH (scripts/peers/setup.sh makes an interpreter with the \
                 pinned packages)"
            )));
        };
        if python.components().count() > 1 && !python.exists() {
            return Err(fail(format!(
                "`python`: the interpreter {} does not exist (scripts/peers/setup.sh makes one)",
                python.display()
            )));
        }
        let dtype = model_dtype(model, c.dtype)?;
        if dtype != WeightDtype::F32 {
            return Err(fail(format!(
                "`models`: {model} runs in f32 only (the PyTorch peers are measured as \
                 released, cpu fp32), not {dtype}"
            )));
        }
        if c.measure.max_context {
            return Err(fail(format!(
                "`measure.max_context`: {model} runs under Python, and max-context probes \
                 run in this binary; measure its context in a suite of its own without it"
            )));
        }
        if !peer_script().exists() {
            return Err(fail(format!(
                "{model} needs {} (set RWKV_BENCH_PEERS to the repository's scripts/peers)",
                peer_script().display()
            )));
        }
    }
    Ok(())
}

/// Checks what a suite's models need from the registry: every implementation, preset
/// and checkpoint exists, and every length fits the models' context. The message names
/// the suite file.
pub fn check_suite(suite: &Suite) -> Result<()> {
    let fail = |m: String| Error::from(suite_error(&suite.path, m));
    let c = &suite.config;
    let longest = c.seq_lens.iter().max().copied().unwrap_or(0);
    for model in &c.models {
        resolve(model).map_err(|e| fail(format!("`models`: {e}")))?;
        if let Some(max) = max_seq_len(model)? {
            let needed = suite.positions_needed(longest);
            if needed > max {
                return Err(fail(format!(
                    "`seq_lens` contains {longest}, but {model} supports at most {max} positions \
                     ({} more are needed for decode steps)",
                    needed - longest
                )));
            }
        }
    }
    check_python_peers(suite)?;
    if c.measure.train && !c.models.iter().any(trains) {
        return Err(fail(
            "`measure.train`: none of the models has a backward pass (rwkv7 and llama do); \
             training cells are made for those that have one"
                .into(),
        ));
    }
    Ok(())
}

/// Whether the spec's implementation can train (unknown implementations cannot).
pub fn trains(spec: &ModelSpec) -> bool {
    resolve(spec).is_ok_and(|imp| imp.trains())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn resolve_str(raw: &str) -> Result<&'static dyn Implementation> {
        resolve(&raw.parse()?)
    }

    #[test]
    fn unknown_names_presets_and_options_list_the_known_ones() {
        let e = resolve_str("gpt9:preset=tiny").err().unwrap().to_string();
        assert!(
            e.contains("rwkv7-upstream") && e.contains("llama-upstream"),
            "{e}"
        );
        let e = resolve_str("llama-upstream:preset=huge")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("0.1b") && e.contains("tiny"), "{e}");
        let e = resolve_str("llama-upstream:/no/such/dir")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/no/such/dir"), "{e}");
        let e = resolve_str("llama:preset=tiny,chunk=8")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("unknown option `chunk`") && e.contains("tokenizer"),
            "{e}"
        );
        assert_eq!(
            resolve_str("rwkv7:preset=tiny,tokenizer=bytes")
                .unwrap()
                .name(),
            "rwkv7"
        );
    }

    #[test]
    fn tiny_presets_build_and_produce_finite_logits() {
        for imp in REGISTRY.iter().filter(|i| i.runtime() == Runtime::Native) {
            let spec: ModelSpec = format!("{}:preset=tiny", imp.name()).parse().unwrap();
            let mut m = build(&spec, &BuildOptions::default()).unwrap();
            assert_eq!(m.info().implementation, imp.name());
            assert_eq!(m.info().arch, imp.arch());
            assert_eq!(m.info().params, imp.preset_params(preset("tiny").unwrap()));
            let logits = m.prefill(&[1, 2, 3, 4]).unwrap();
            assert_eq!(logits.dims(), &[512]);
            let after = m.state_bytes();
            let next = m.step(5).unwrap().to_vec1::<f32>().unwrap();
            assert!(next.iter().all(|x| x.is_finite()), "{spec}");
            assert!(after > 0, "{spec}");
            m.reset().unwrap();
            let lp = m.log_probs(&[1, 2, 3]).unwrap();
            assert_eq!(lp.len(), 2);
            assert!(
                lp.iter().all(|&x| x < 0.0 && x.is_finite()),
                "{spec}: {lp:?}"
            );
        }
    }

    fn parse(text: &str) -> Result<()> {
        let suite = Suite::parse(Path::new("suites/test.toml"), text.to_string())?;
        check_suite(&suite)
    }

    const MINIMAL: &str = r#"
name = "t"
models = ["rwkv7-upstream:preset=tiny", "llama-upstream:preset=tiny"]
seq_lens = [16, 64]
"#;

    #[test]
    fn suites_naming_impossible_models_or_lengths_are_rejected() {
        parse(MINIMAL).unwrap();
        let e = parse(&MINIMAL.replace("[16, 64]", "[16, 100000]"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("suites/test.toml: "), "{e}");
        assert!(e.contains("100000") && e.contains("8192"), "{e}");
        let e = parse(&MINIMAL.replace("llama-upstream", "gpt"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`models`") && e.contains("unknown implementation"),
            "{e}"
        );
        parse(&MINIMAL.replace("preset=tiny\"", "preset=tiny,tokenizer=bytes\"")).unwrap();
    }

    #[test]
    fn python_peers_are_refused_by_this_binary_and_checked_in_suites() {
        for name in ["rwkv7-official", "llama-hf"] {
            let e = build(
                &format!("{name}:preset=tiny").parse().unwrap(),
                &BuildOptions::default(),
            )
            .err()
            .unwrap()
            .to_string();
            assert!(e.contains("Python child process"), "{e}");
        }
        let suite = |body: &str| Suite::parse(Path::new("s.toml"), body.into()).unwrap();
        let e = check_suite(&suite(
            "name = \"s\"\nmodels = [\"llama-hf:preset=tiny\"]\nseq_lens = [16]\n\
             python = \"/nonexistent/bin/python\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/nonexistent/bin/python") && e.contains("does not exist"),
            "{e}"
        );
        let e = check_suite(&suite(
            "name = \"s\"\nmodels = [\"rwkv7-official:preset=tiny\"]\nseq_lens = [16]\n\
             python = \"python3\"\ndtype = \"bf16\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("f32 only"), "{e}");
        let ok = suite(
            "name = \"s\"\nmodels = [\"rwkv7-official:preset=tiny\"]\nseq_lens = [16]\n\
             python = \"python3\"",
        );
        check_suite(&ok).unwrap();
        let shapes = preset_shapes(&ok.config.models[0]).unwrap().unwrap();
        assert_eq!(shapes["width"], 128);
        assert_eq!(runtime(&ok.config.models[0]).unwrap(), Runtime::Python);
    }

    #[test]
    fn shipped_suites_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let mut suite = Suite::load(&path).unwrap_or_else(|e| panic!("{e}"));
                // Python peers need an interpreter, which only the command line knows.
                if let Err(e) = check_suite(&suite) {
                    assert!(e.to_string().contains("--python PATH"), "{e}");
                    suite.config.python = Some("python3".into());
                }
                check_suite(&suite).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 3);
    }

    /// A trainable build describes its model exactly as the inference build of the same
    /// spec does: a suite's training and inference cells report one model.
    #[test]
    fn trainable_and_inference_builds_describe_a_model_alike() {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/golden");
        let specs = [
            "rwkv7:preset=tiny".to_string(),
            "llama:preset=tiny".to_string(),
            format!("rwkv7:{}", golden.join("rwkv7/tiny.pth").display()),
            format!("llama:{}", golden.join("qwen2_tied").display()),
        ];
        for raw in specs {
            let spec: ModelSpec = raw.parse().unwrap();
            let opts = BuildOptions::default();
            let inference = build(&spec, &opts).unwrap().info().clone();
            assert_eq!(
                *build_trainable(&spec, &opts).unwrap().info(),
                inference,
                "{raw}"
            );
        }
    }
}
