//! `config.json` parsing: both transformers layouts, tied embeddings, Qwen2 biases, and
//! unsupported options rejected with the key named.

mod common;

use candle_core::DType;
use common::fixture;
use transformer::Config;

fn read(name: &str) -> Config {
    Config::from_file(&fixture(name).join("config.json")).unwrap()
}

#[test]
fn transformers_4_layout_reads_top_level_rope_theta_and_torch_dtype() {
    let c = read("llama_gqa");
    assert_eq!(c.rope_theta, 1e4);
    assert_eq!(c.checkpoint_dtype, Some(DType::F32));
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        (4, 2, 16)
    );
    assert!(!c.tie_word_embeddings && !c.qkv_bias && !c.o_bias);
}

#[test]
fn transformers_5_layout_reads_rope_parameters_and_dtype() {
    let c = read("llama_sharded");
    assert_eq!(c.rope_theta, 1e4);
    assert_eq!(c.checkpoint_dtype, Some(DType::BF16));
    // 1e4 is also the default, so check a value that differs from it.
    let text = std::fs::read_to_string(fixture("llama_sharded").join("config.json"))
        .unwrap()
        .replace("\"rope_theta\": 10000.0", "\"rope_theta\": 500000.0");
    assert_eq!(Config::from_json(&text).unwrap().rope_theta, 5e5);
}

#[test]
fn qwen2_has_qkv_bias_tied_embeddings_and_derived_head_dim() {
    let c = read("qwen2_tied");
    assert_eq!(c.rope_theta, 1e6);
    assert!(c.tie_word_embeddings);
    assert!(c.qkv_bias && !c.o_bias && !c.mlp_bias);
    assert_eq!((c.num_key_value_heads, c.head_dim), (1, 16));
    assert_eq!(c.rms_norm_eps, 1e-6);
}

#[test]
fn explicit_head_dim_wins_over_hidden_over_heads() {
    let text = std::fs::read_to_string(fixture("llama_gqa").join("config.json"))
        .unwrap()
        .replace("\"head_dim\": 16", "\"head_dim\": 32");
    let c = Config::from_json(&text).unwrap();
    assert_eq!(c.head_dim, 32);
    assert_eq!(c.param_count(), {
        let mut d = read("llama_gqa");
        d.head_dim = 32;
        d.param_count()
    });
}

/// Writes the Llama fixture's config with the keys of `patch` set (or removed, for
/// `remove`) and returns the error text, which must name the file.
fn rejected(patch: serde_json::Value, remove: Option<&str>) -> String {
    let text = std::fs::read_to_string(fixture("llama_gqa").join("config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let map = json.as_object_mut().unwrap();
    for (k, v) in patch.as_object().unwrap() {
        map.insert(k.clone(), v.clone());
    }
    if let Some(key) = remove {
        map.remove(key);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, json.to_string()).unwrap();
    let e = Config::from_file(&path).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "no file in: {e}");
    e
}

#[test]
fn unsupported_options_are_errors_naming_the_key() {
    use serde_json::json;
    let cases = [
        (
            "sliding_window",
            json!({"model_type": "mistral", "sliding_window": 4096}),
        ),
        (
            "use_sliding_window",
            json!({"model_type": "qwen2", "use_sliding_window": true}),
        ),
        (
            "layer_types",
            json!({"layer_types": ["full_attention", "sliding_attention"]}),
        ),
        (
            "rope_scaling.rope_type",
            json!({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}),
        ),
        (
            "rope_scaling.type",
            json!({"rope_scaling": {"type": "linear", "factor": 2.0}}),
        ),
        (
            "rope_parameters.rope_type",
            json!({"rope_parameters": {"rope_type": "dynamic", "rope_theta": 10000.0}}),
        ),
        (
            "rope_scaling.low_freq_factor",
            json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}),
        ),
        ("hidden_act", json!({"hidden_act": "gelu"})),
        ("model_type", json!({"model_type": "gemma"})),
        (
            "quantization_config",
            json!({"quantization_config": {"quant_method": "gptq"}}),
        ),
        (
            "partial_rotary_factor",
            json!({"partial_rotary_factor": 0.5}),
        ),
        ("torch_dtype", json!({"torch_dtype": "float64"})),
        ("num_key_value_heads", json!({"num_key_value_heads": 3})),
        (
            "rope_theta",
            json!({"rope_parameters": {"rope_type": "default", "rope_theta": 5.0}}),
        ),
    ];
    for (key, patch) in cases {
        let e = rejected(patch, None);
        assert!(e.contains(&format!("`{key}`")), "expected `{key}` in: {e}");
    }
}

#[test]
fn missing_required_keys_are_named() {
    let e = rejected(serde_json::json!({}), Some("hidden_size"));
    assert!(e.contains("`hidden_size`"), "{e}");
}

#[test]
fn harmless_sliding_window_settings_are_accepted() {
    // Qwen2 configs carry `sliding_window` with `use_sliding_window: false`, Mistral
    // v0.2+ `sliding_window: null`; neither enables a window.
    let text = std::fs::read_to_string(fixture("qwen2_tied").join("config.json")).unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&text).unwrap();
    j["sliding_window"] = serde_json::json!(4096);
    Config::from_json(&j.to_string()).unwrap();
    j["model_type"] = serde_json::json!("mistral");
    j["sliding_window"] = serde_json::Value::Null;
    Config::from_json(&j.to_string()).unwrap();
}
