//! llama.cpp's own benchmark as records of a run: each line `llama-bench -o jsonl`
//! writes (one JSON object per test) becomes records labelled as llama.cpp, so a report
//! shows llama.cpp on the same machine beside the implementations rwkv-bench builds.
//!
//! A `pp` test (a prompt of `n_prompt` tokens into an empty context) is a prefill cell
//! at `seq_len = n_prompt`: prefill time and throughput, one sample per repetition. A
//! `tg` test (`n_gen` tokens generated after `n_depth` tokens of context) is a decode
//! cell at `seq_len = n_depth`, each repetition's sample its mean step time. A `pp` at
//! a depth and a combined `pg` test have no rwkv-bench cell and are skipped with a
//! note. llama-bench does not write a model's layers, width or vocabulary: the caller
//! reads them from the GGUF file where it can ([`Shape`]); without them no efficiency
//! is computed.

mod into_run;
mod parse;
mod records;
mod test;

pub use into_run::*;
pub use parse::*;
pub use records::*;
pub use test::*;

/// The implementation name of imported models and records.
pub const IMPLEMENTATION: &str = "llama.cpp";
/// The suite name imported records carry.
pub const SUITE: &str = "llama-bench";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use serde_json::{json, Value};

    use super::*;
    use crate::model_info::Arch;
    use crate::record::{Metric, Record};
    use crate::roofline::Roofline;
    use crate::schema::Results;
    use crate::Result;

    const PP: &str = r#"{"build_commit": "0c1e5709", "build_number": 7100, "cpu_info": "AMD EPYC 9B14", "gpu_info": "", "backends": "CPU", "model_filename": "/m/llama-0.1b.q4_k.gguf", "model_type": "llama ?B Q4_K - Medium", "model_size": 73400320, "model_n_params": 110000000, "n_batch": 2048, "n_ubatch": 512, "n_threads": 2, "cpu_mask": "0x0", "cpu_strict": false, "poll": 50, "type_k": "f16", "type_v": "f16", "n_gpu_layers": 99, "split_mode": "layer", "main_gpu": 0, "no_kv_offload": false, "flash_attn": false, "tensor_split": "0.00", "use_mmap": true, "embeddings": false, "n_prompt": 512, "n_gen": 0, "n_depth": 0, "test_time": "2026-12-05T20:11:03Z", "avg_ns": 250000000, "stddev_ns": 1234567, "avg_ts": 2048.0, "stddev_ts": 12.1, "samples_ns": [250000000, 256000000, 244000000], "samples_ts": [2048.0, 2000.0, 2098.4]}"#;

    /// `PP` with fields replaced (a `null` drops one).
    fn line(changes: &[(&str, Value)]) -> String {
        let mut v: Value = serde_json::from_str(PP).unwrap();
        for (k, x) in changes {
            if x.is_null() {
                v.as_object_mut().unwrap().remove(*k);
            } else {
                v[*k] = x.clone();
            }
        }
        v.to_string()
    }

    fn tg(n_gen: u64, depth: u64, ns: &[u64]) -> String {
        line(&[
            ("n_prompt", json!(0)),
            ("n_gen", json!(n_gen)),
            ("n_depth", json!(depth)),
            ("samples_ns", json!(ns)),
        ])
    }

    fn parse_str(text: &str) -> Result<Vec<Test>> {
        parse(Path::new("bench.jsonl"), text)
    }

    fn import(text: &str) -> Imported {
        build(&parse_str(text).unwrap(), &BTreeMap::new()).unwrap()
    }

    fn record(im: &Imported, metric: Metric, seq_len: usize) -> &Record {
        im.records
            .iter()
            .find(|r| r.metric == metric && r.seq_len == seq_len)
            .unwrap_or_else(|| panic!("no {metric:?} at {seq_len}"))
    }

    #[test]
    fn a_pp_test_is_prefill_time_and_throughput_at_its_prompt_length() {
        let im = import(PP);
        assert_eq!(im.records.len(), 2);
        let time = record(&im, Metric::PrefillTime, 512);
        assert_eq!(time.samples, vec![250.0, 256.0, 244.0]);
        assert_eq!(time.summary.median, 250.0);
        assert_eq!(time.unit, crate::Unit::Ms);
        let tput = record(&im, Metric::PrefillThroughput, 512);
        assert_eq!(tput.samples[0], 2048.0);
        assert!((tput.samples[2] - 512.0 / 0.244).abs() < 1e-9);
        assert_eq!(time.implementation, "llama.cpp");
        assert_eq!(time.suite, "llama-bench");
        assert_eq!(time.arch, Arch::Transformer);
        assert_eq!(time.model.to_string(), "llama.cpp:/m/llama-0.1b.q4_k.gguf");
        assert_eq!(im.origins[0].to_string(), "bench.jsonl line 1");
    }

    #[test]
    fn a_tg_test_is_decode_latency_per_token_at_its_depth() {
        let im = import(&tg(128, 4096, &[1_280_000_000, 1_408_000_000]));
        assert_eq!(im.records.len(), 1);
        let r = record(&im, Metric::DecodeLatency, 4096);
        // 1.28 s over 128 tokens: 10 ms a token.
        assert_eq!(r.samples, vec![10.0, 11.0]);
        assert_eq!(r.unit, crate::Unit::MsPerToken);
    }

    #[test]
    fn samples_ts_stand_in_for_missing_samples_ns() {
        let text = line(&[("samples_ns", Value::Null), ("samples_ts", json!([1024.0]))]);
        let t = &parse_str(&text).unwrap()[0];
        assert_eq!(t.samples_ns, vec![5e8]);
        let e = parse_str(&line(&[
            ("samples_ns", Value::Null),
            ("samples_ts", Value::Null),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("samples_ns") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn prefill_at_a_depth_and_combined_tests_are_skipped_with_a_reason() {
        let text = [
            PP.to_string(),
            line(&[("n_depth", json!(4096))]),
            line(&[("n_gen", json!(128))]),
        ]
        .join("\n");
        let im = import(&text);
        assert_eq!(im.records.len(), 2, "only the first line's cells");
        assert_eq!(im.skipped.len(), 2);
        assert!(
            im.skipped[0].starts_with("bench.jsonl line 2: pp512 @ d4096 skipped")
                && im.skipped[0].contains("empty context"),
            "{}",
            im.skipped[0]
        );
        assert!(im.skipped[1].contains("pp512+tg128"), "{}", im.skipped[1]);
    }

    #[test]
    fn a_malformed_line_names_the_file_and_line() {
        let text = format!("{PP}\n\n{}", &PP[..PP.len() / 2]);
        let e = parse_str(&text).unwrap_err().to_string();
        assert!(e.starts_with("bench.jsonl: line 3: truncated JSON"), "{e}");
        let e = parse_str(&format!("{PP}\n{{\"n_prompt\": x}}"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bench.jsonl: line 2: not valid JSON"), "{e}");
        let e = parse_str("[\n").unwrap_err().to_string();
        assert!(e.contains("-o jsonl"), "{e}");
        let e = parse_str("\n").unwrap_err().to_string();
        assert!(e.contains("no tests"), "{e}");
        assert!(!parse_str("[1, 2]").unwrap_err().to_string().contains('\n'));
    }

    #[test]
    fn a_missing_or_mistyped_field_is_named() {
        for field in [
            "n_prompt",
            "n_gen",
            "n_depth",
            "model_filename",
            "build_commit",
            "model_type",
        ] {
            let e = parse_str(&line(&[(field, Value::Null)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("no `{field}`")), "{e}");
        }
        let e = parse_str(&line(&[("n_prompt", json!("512"))]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`n_prompt` is \"512\""), "{e}");
        let e = parse_str(&line(&[("samples_ns", json!([1, -2]))]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`samples_ns`"), "{e}");
        // Fields some builds do not write are optional.
        let t = &parse_str(&line(&[
            ("type_k", Value::Null),
            ("flash_attn", Value::Null),
            ("build_number", Value::Null),
            ("backends", Value::Null),
        ]))
        .unwrap()[0];
        assert_eq!((t.type_k.as_str(), t.flash_attn.as_deref()), ("f16", None));
        assert_eq!(t.version(), "build 0c1e5709");
    }

    #[test]
    fn the_model_says_what_llama_bench_ran() {
        let im = import(PP);
        let m = &im.models[0];
        assert_eq!(m.version.as_deref(), Some("build 0c1e5709 (7100)"));
        assert!(
            m.description.starts_with("llama.cpp's llama-bench, 2 threads, batch 2048 / ubatch 512, KV cache f16/f16, flash attention off, backends CPU, `llama ?B Q4_K - Medium`"),
            "{}",
            m.description
        );
        assert_eq!((m.params, m.weight_bytes), (110_000_000, Some(73_400_320)));
        assert_eq!((m.dtype.as_str(), m.device.as_str()), ("q4_k", "cpu"));
        assert_eq!((m.layers, m.width, m.vocab), (0, 0, 0));
        let shape = Shape {
            layers: 12,
            width: 768,
            vocab: 32000,
            tied_embeddings: true,
            max_seq_len: Some(2048),
        };
        let shapes = BTreeMap::from([("/m/llama-0.1b.q4_k.gguf".to_string(), shape)]);
        let m = &build(&parse_str(PP).unwrap(), &shapes).unwrap().models[0];
        assert_eq!((m.layers, m.width, m.vocab), (12, 768, 32000));
        assert!(m.tied_embeddings && m.max_seq_len == Some(2048));

        let rwkv = line(&[
            ("model_type", json!("rwkv7 0.1B Q8_0")),
            ("type_k", json!("q8_0")),
            ("flash_attn", json!(-1)),
        ]);
        let m = &import(&rwkv).models[0];
        assert_eq!(m.arch, Arch::Rwkv);
        assert_eq!(m.dtype, "q8_0");
        assert_eq!(
            m.spec.to_string(),
            "llama.cpp:/m/llama-0.1b.q4_k.gguf,type_k=q8_0"
        );
        assert!(m.description.contains("flash attention auto"));
    }

    #[test]
    fn file_types_get_short_storage_names() {
        for (ftype, name) in [
            ("Q4_K - Medium", "q4_k"),
            ("Q4_K - Small", "q4_k"),
            ("Q8_0", "q8_0"),
            ("all F32", "f32"),
            ("F16", "f16"),
            ("BF16", "bf16"),
            ("IQ4_NL - 4.5 bpw", "iq4_nl"),
            ("Q6_K (guessed)", "q6_k"),
            ("", "unknown"),
        ] {
            assert_eq!(quant_name(ftype), name, "{ftype}");
        }
    }

    #[test]
    fn cpu_names_match_across_spellings_but_not_across_models() {
        assert!(same_cpu("AMD EPYC 9B14", "AMD EPYC 9B14"));
        assert!(same_cpu("amd  epyc 9b14\0", " AMD EPYC 9B14"));
        assert!(same_cpu(
            "AMD Ryzen 9 5950X 16-Core Processor",
            "AMD Ryzen 9 5950X"
        ));
        assert!(same_cpu(
            "Intel(R) Xeon(R) CPU @ 2.20GHz",
            "Intel Xeon @ 2.20GHz"
        ));
        assert!(same_cpu("AMD EPYC 9B14, BLAS", "AMD EPYC 9B14"));
        assert!(!same_cpu("AMD EPYC 9B14", "AMD EPYC"));
        assert!(!same_cpu("AMD EPYC", "AMD EPYC 9B14"));
        assert!(!same_cpu("", ""));
    }

    #[test]
    fn tests_of_one_model_must_agree_and_not_repeat_a_cell() {
        let text = [PP.to_string(), line(&[("n_threads", json!(4))])].join("\n");
        let e = build(&parse_str(&text).unwrap(), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("n_threads 2 vs 4") && e.contains("line 1"),
            "{e}"
        );
        let text = [PP, PP].join("\n");
        let e = build(&parse_str(&text).unwrap(), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("same cell as bench.jsonl line 1"), "{e}");
    }

    fn run() -> Results {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/results/ci.json");
        let mut r = Results::load(&path).unwrap();
        r.machine.cpu_model = "AMD EPYC 9B14".into();
        r.settings.threads_used = Some(2);
        r
    }

    #[test]
    fn merging_checks_the_machine_and_refuses_to_overwrite() {
        let text = [PP.to_string(), tg(16, 64, &[160_000_000])].join("\n");
        let tests = parse_str(&text).unwrap();
        let im = build(&tests, &BTreeMap::new()).unwrap();
        let path = Path::new("run/results.json");

        let mut other = run();
        other.machine.cpu_model = "Intel(R) Xeon(R) Processor".into();
        let before = other.clone();
        let e = merge(
            &mut other,
            path,
            &tests,
            im.clone(),
            MergeOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("run/results.json: llama-bench ran on `AMD EPYC 9B14` (bench.jsonl line 1), not on the run's `Intel(R) Xeon(R) Processor`")
                && e.ends_with("pass --force to import anyway"),
            "{e}"
        );
        assert_eq!(other, before, "untouched");
        let mut threads = run();
        threads.settings.threads_used = Some(1);
        let e = merge(
            &mut threads,
            path,
            &tests,
            im.clone(),
            MergeOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("used 2 threads (bench.jsonl line 1), the run 1"),
            "{e}"
        );
        let forced = MergeOptions {
            force: true,
            replace: false,
        };
        let m = merge(&mut threads, path, &tests, im.clone(), forced).unwrap();
        assert_eq!(m.warnings.len(), 1);
        let model = threads
            .models
            .iter()
            .find(|m| m.implementation == "llama.cpp");
        assert!(model.unwrap().description.contains("Imported with --force"));

        let mut r = run();
        let n = r.records.len();
        let m = merge(&mut r, path, &tests, im.clone(), MergeOptions::default()).unwrap();
        assert_eq!((m.added, m.replaced, r.records.len()), (3, 0, n + 3));
        assert!(r
            .analysis
            .speedups
            .iter()
            .any(|s| s.baseline.implementation == "llama.cpp"));
        let e = merge(&mut r, path, &tests, im.clone(), MergeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("already holds llama.cpp:/m/llama-0.1b.q4_k.gguf prefill time at 512")
                && e.contains("--replace"),
            "{e}"
        );
        let replace = MergeOptions {
            force: false,
            replace: true,
        };
        let m = merge(&mut r, path, &tests, im, replace).unwrap();
        assert_eq!((m.added, m.replaced, r.records.len()), (3, 3, n + 3));
    }

    #[test]
    fn prefill_efficiency_needs_the_roofline_and_the_shape() {
        let tests = parse_str(PP).unwrap();
        let shape = Shape {
            layers: 12,
            width: 768,
            vocab: 32000,
            ..Shape::default()
        };
        let shapes = BTreeMap::from([("/m/llama-0.1b.q4_k.gguf".to_string(), shape)]);
        let mut r = run();
        r.machine.roofline = Some(Roofline {
            matmul_gflops: 100.0,
            matmul: Vec::new(),
            read_gb_s: 20.0,
            read_buffer_bytes: 0,
            threads: 2,
            dtype: "f32".into(),
            seconds: 1.0,
        });
        let mut bare = r.clone();
        let path = Path::new("results.json");
        let opts = MergeOptions::default();
        merge(&mut r, path, &tests, build(&tests, &shapes).unwrap(), opts).unwrap();
        let imported = |r: &Results, m: Metric| {
            r.records
                .iter()
                .find(|x| x.implementation == "llama.cpp" && x.metric == m)
                .unwrap()
                .efficiency
        };
        let e = imported(&r, Metric::PrefillTime).expect("efficiency");
        assert!(e.achieved > 0.0 && e.fraction > 0.0);
        assert!(imported(&r, Metric::PrefillThroughput).is_none());
        let no_shape = build(&tests, &BTreeMap::new()).unwrap();
        merge(&mut bare, path, &tests, no_shape, opts).unwrap();
        assert!(imported(&bare, Metric::PrefillTime).is_none());
    }

    #[test]
    fn a_new_run_holds_only_the_import_on_this_machine() {
        let text = [PP.to_string(), tg(16, 64, &[160_000_000])].join("\n");
        let tests = parse_str(&text).unwrap();
        let im = build(&tests, &BTreeMap::new()).unwrap();
        let mut machine = run().machine;
        let sources = [(PathBuf::from("bench.jsonl"), text.clone())];
        let r = new_results(&tests, im.clone(), machine.clone(), &sources).unwrap();
        assert_eq!(r.records.len(), 3);
        assert_eq!(r.models.len(), 1);
        assert_eq!(r.settings.threads_used, Some(2));
        assert_eq!(r.suite.config.seq_lens, vec![64, 512]);
        assert_eq!(r.suite.source, text);
        assert_eq!(r.started_at, "2026-12-05T20:11:03Z");
        let back: Results = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        machine.cpu_model = "AMD EPYC".into();
        let e = new_results(&tests, im, machine, &sources)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`AMD EPYC 9B14`") && e.contains("`AMD EPYC`") && e.contains("--into"),
            "{e}"
        );
    }
}
