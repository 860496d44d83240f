//! Reading `llama-bench -o jsonl` files: one test a line, strict on the fields a
//! record needs, tolerant of the ones builds add or drop.

use std::path::Path;

use serde_json::{Map, Value};

use crate::{Error, Result};

use super::*;

/// Reads the tests of a `llama-bench -o jsonl` file. Blank lines are skipped; a line
/// that is not a complete JSON object, or lacks a field rwkv-bench needs, is an error
/// naming the file and the line.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Test>> {
    let mut tests = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let origin = Origin {
            file: path.to_path_buf(),
            line: i + 1,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if tests.is_empty() && line == "[" {
            return Err(origin.error(
                "this is `llama-bench -o json` output (one array); run llama-bench with \
                 `-o jsonl` (one test per line)",
            ));
        }
        tests.push(parse_line(origin, line)?);
    }
    if tests.is_empty() {
        return Err(Error::Results {
            path: path.to_path_buf(),
            message: "no tests: expected the output of `llama-bench -o jsonl`, one JSON \
                      object a line"
                .into(),
        });
    }
    Ok(tests)
}

/// The fields of one line.
pub(super) struct Fields<'a> {
    origin: &'a Origin,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    /// A field that is absent or `null` reads as `None`.
    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn required(&self, name: &str) -> Result<&Value> {
        self.get(name).ok_or_else(|| {
            self.origin.error(format!(
                "no `{name}`, which rwkv-bench needs (is this `llama-bench -o jsonl` output?)"
            ))
        })
    }

    fn wrong(&self, name: &str, v: &Value, expected: &str) -> Error {
        self.origin
            .error(format!("`{name}` is {v}, expected {expected}"))
    }

    fn uint_value(&self, name: &str, v: &Value) -> Result<u64> {
        let n = v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x < u64::MAX as f64)
                .map(|x| x as u64)
        });
        n.ok_or_else(|| self.wrong(name, v, "a non-negative integer"))
    }

    fn uint(&self, name: &str) -> Result<usize> {
        let v = self.required(name)?;
        Ok(self.uint_value(name, v)? as usize)
    }

    fn opt_uint(&self, name: &str) -> Result<Option<u64>> {
        self.get(name).map(|v| self.uint_value(name, v)).transpose()
    }

    fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        self.get(name)
            .map(|v| v.as_i64().ok_or_else(|| self.wrong(name, v, "an integer")))
            .transpose()
    }

    fn string(&self, name: &str) -> Result<String> {
        let v = self.required(name)?;
        v.as_str()
            .map(String::from)
            .ok_or_else(|| self.wrong(name, v, "a string"))
    }

    fn opt_string(&self, name: &str) -> Result<Option<String>> {
        self.get(name)
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| self.wrong(name, v, "a string"))
            })
            .transpose()
    }

    /// A bool (older builds) or -1 / 0 / 1 (newer: auto, off, on).
    fn flash_attn(&self) -> Result<Option<String>> {
        let Some(v) = self.get("flash_attn") else {
            return Ok(None);
        };
        let s = match (v.as_bool(), v.as_i64(), v.as_str()) {
            (Some(true), _, _) | (_, Some(1), _) => "on".to_string(),
            (Some(false), _, _) | (_, Some(0), _) => "off".to_string(),
            (_, Some(-1), _) => "auto".to_string(),
            (_, _, Some(s)) => s.to_string(),
            _ => return Err(self.wrong("flash_attn", v, "a bool or -1, 0, 1")),
        };
        Ok(Some(s))
    }

    /// Positive finite numbers of array `name`, if the line has it.
    fn samples(&self, name: &str) -> Result<Option<Vec<f64>>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let bad = || self.wrong(name, v, "an array of positive numbers");
        let items = v.as_array().ok_or_else(bad)?;
        let xs: Option<Vec<f64>> = items
            .iter()
            .map(|x| x.as_f64().filter(|x| x.is_finite() && *x > 0.0))
            .collect();
        match xs {
            Some(xs) if !xs.is_empty() => Ok(Some(xs)),
            Some(_) => Err(self
                .origin
                .error(format!("`{name}` is empty: no repetitions"))),
            None => Err(bad()),
        }
    }
}

pub(super) fn parse_line(origin: Origin, line: &str) -> Result<Test> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        if e.is_eof() {
            origin.error(format!("truncated JSON ({e})"))
        } else {
            origin.error(format!("not valid JSON ({e})"))
        }
    })?;
    let Some(map) = value.as_object() else {
        return Err(origin.error("not a JSON object: expected one llama-bench test a line"));
    };
    let f = Fields {
        origin: &origin,
        map,
    };
    let n_prompt = f.uint("n_prompt")?;
    let n_gen = f.uint("n_gen")?;
    let n_depth = f.uint("n_depth")?;
    if n_prompt == 0 && n_gen == 0 {
        return Err(origin.error("n_prompt and n_gen are both 0: the test measures nothing"));
    }
    // llama-bench derives samples_ts from samples_ns: tokens (prompt + generated, not
    // the depth) over each repetition's time.
    let samples_ns = match f.samples("samples_ns")? {
        Some(ns) => ns,
        None => match f.samples("samples_ts")? {
            Some(ts) => ts
                .iter()
                .map(|t| 1e9 * (n_prompt + n_gen) as f64 / t)
                .collect(),
            None => {
                return Err(origin
                    .error("no `samples_ns` or `samples_ts`: the repetitions' times are needed"))
            }
        },
    };
    let kv_type =
        |name: &str| -> Result<String> { Ok(f.opt_string(name)?.unwrap_or_else(|| "f16".into())) };
    Ok(Test {
        build_commit: f.string("build_commit")?,
        build_number: f.opt_uint("build_number")?,
        cpu_info: f.opt_string("cpu_info")?.unwrap_or_default(),
        gpu_info: f.opt_string("gpu_info")?.unwrap_or_default(),
        backends: f.opt_string("backends")?,
        model_filename: f.string("model_filename")?,
        model_type: f.string("model_type")?,
        model_size: f.opt_uint("model_size")?,
        model_n_params: f.opt_uint("model_n_params")?,
        n_batch: f.opt_uint("n_batch")?,
        n_ubatch: f.opt_uint("n_ubatch")?,
        n_threads: f.opt_uint("n_threads")?.map(|n| n as usize),
        n_gpu_layers: f.opt_int("n_gpu_layers")?,
        type_k: kv_type("type_k")?,
        type_v: kv_type("type_v")?,
        flash_attn: f.flash_attn()?,
        n_prompt,
        n_gen,
        n_depth,
        test_time: f.opt_string("test_time")?,
        samples_ns,
        origin,
    })
}
