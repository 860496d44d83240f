//! `rwkv-bench import llama-bench`: llama.cpp's benchmark as records of a run, so its
//! report shows llama.cpp beside our implementations on the same machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use kernels::gguf::GgufFile;
use results::llama_bench::{self, MergeOptions, Shape, Test};
use results::machine::Machine;
use results::Results;

use crate::cli::{ImportArgs, ImportCommand, LlamaBenchArgs};

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    match args.command {
        ImportCommand::LlamaBench(args) => import_llama_bench(args),
    }
}

fn import_llama_bench(args: LlamaBenchArgs) -> anyhow::Result<()> {
    let mut tests = Vec::new();
    let mut sources = Vec::new();
    for file in &args.files {
        let text = std::fs::read_to_string(file).map_err(|e| results::Error::io(file, e))?;
        tests.extend(llama_bench::parse(file, &text)?);
        sources.push((file.clone(), text));
    }
    let (shapes, mut warnings) = shapes(&tests);
    let imported = llama_bench::build(&tests, &shapes)?;
    warnings.extend(imported.skipped.iter().cloned());
    let models = imported.models.len();

    let (path, results, added, replaced) = match (&args.into, &args.out) {
        (Some(path), _) => {
            let mut results = Results::load(path)?;
            let opts = MergeOptions {
                force: args.force,
                replace: args.replace,
            };
            let merged = llama_bench::merge(&mut results, path, &tests, imported, opts)?;
            warnings.extend(
                merged
                    .warnings
                    .iter()
                    .map(|w| format!("imported with --force: {w}")),
            );
            (path.clone(), results, merged.added, merged.replaced)
        }
        (None, Some(dir)) => {
            let path = dir.join("results.json");
            if path.exists() && !args.replace {
                return Err(results::Error::Results {
                    path,
                    message: "exists: add the tests to it with --into, or pass --replace to \
                              overwrite it"
                        .into(),
                }
                .into());
            }
            let added = imported.records.len();
            let results = llama_bench::new_results(&tests, imported, Machine::capture(), &sources)?;
            (path, results, added, 0)
        }
        (None, None) => anyhow::bail!("give --into RESULTS or --out DIR"),
    };
    results.save(&path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let written = report::write_report(&results, &dir)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let replaced = if replaced > 0 {
        format!(", replacing {replaced}")
    } else {
        String::new()
    };
    println!(
        "imported {added} records{replaced} of {models} llama.cpp model(s) from {} test(s) into {}",
        tests.len(),
        path.display()
    );
    println!(
        "wrote {}, {} and {} chart files",
        written.html.display(),
        written.markdown.display(),
        written.charts.len()
    );
    Ok(())
}

/// The shape of each model whose GGUF file is on this machine, and a warning for each
/// that is not (it then gets no efficiency).
fn shapes(tests: &[Test]) -> (BTreeMap<String, Shape>, Vec<String>) {
    let mut shapes = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut seen = Vec::new();
    for t in tests {
        if seen.contains(&&t.model_filename) {
            continue;
        }
        seen.push(&t.model_filename);
        let unknown = "its layers, width and vocabulary are unknown, so no efficiency is computed";
        let Some(path) = locate(&t.model_filename, &t.origin.file) else {
            warnings.push(format!(
                "{} ({}) is not on this machine: {unknown}",
                t.model_filename, t.origin
            ));
            continue;
        };
        match read_shape(&path, t.arch_name()) {
            Ok(shape) => {
                shapes.insert(t.model_filename.clone(), shape);
            }
            Err(e) => warnings.push(format!("{e} ({}): {unknown}", t.origin)),
        }
    }
    (shapes, warnings)
}

/// The model file llama-bench named: as written (absolute, or relative to the current
/// directory, as llama-bench was run), else relative to the JSON-lines file.
fn locate(model: &str, jsonl: &Path) -> Option<PathBuf> {
    let path = Path::new(model);
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    let beside = jsonl.parent()?.join(path);
    (path.is_relative() && beside.is_file()).then_some(beside)
}

/// Layers, width and vocabulary from a GGUF file's metadata (`{arch}.block_count`,
/// `{arch}.embedding_length`, and the rows of `token_embd`, as the model crates read
/// them), `arch` being the architecture llama-bench reported.
fn read_shape(path: &Path, arch: &str) -> candle_core::Result<Shape> {
    let file = GgufFile::open(path, &Device::Cpu)?;
    let arch = file.architecture(&[arch])?;
    let key = |k: &str| file.usize(&format!("{arch}.{k}"));
    let vocab = match file.shape("token_embd.weight") {
        Ok(&[vocab, _]) => vocab,
        _ => key("vocab_size")?,
    };
    Ok(Shape {
        layers: key("block_count")?,
        width: key("embedding_length")?,
        vocab,
        tied_embeddings: !file.contains("output.weight"),
        max_seq_len: key("context_length").ok(),
    })
}
