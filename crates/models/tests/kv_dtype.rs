//! `kv_dtype=`: our Llama's KV cache in f16 or bf16 under f32 compute — half the state
//! bytes, logits within the cache's rounding — and a clear error where there is no cache
//! dtype to choose.

use models::{registry, BuildOptions};

fn logits_and_state(spec: &str, tokens: &[u32]) -> (Vec<f32>, usize) {
    let mut m = registry::build(&spec.parse().unwrap(), &BuildOptions::default()).unwrap();
    let logits = m.logits_all(tokens).unwrap();
    m.reset().unwrap();
    m.prefill(tokens).unwrap();
    let step = m.step(7).unwrap();
    let mut all = logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    all.extend(step.to_vec1::<f32>().unwrap());
    (all, m.state_bytes())
}

#[test]
fn a_16_bit_cache_halves_the_state_and_keeps_the_logits() {
    // Longer than a prompt chunk (512), so later chunks and the decode step read
    // keys and values written by earlier forwards.
    let tokens: Vec<u32> = (0..600).map(|i| (i * 37 % 500) as u32).collect();
    let (want, f32_bytes) = logits_and_state("llama:preset=tiny", &tokens);
    for (kv, tol) in [("f16", 2e-3), ("bf16", 2e-2)] {
        let (got, bytes) = logits_and_state(&format!("llama:preset=tiny,kv_dtype={kv}"), &tokens);
        assert_eq!(bytes * 2, f32_bytes, "{kv}");
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // Keys and values rounded to 11 (f16) or 8 (bf16) significant bits.
        assert!(diff <= tol * scale, "{kv}: {diff} (max |logit| {scale})");
        assert!(diff > 0.0, "{kv}: the cache was not rounded");
    }
    let (same, bytes) = logits_and_state("llama:preset=tiny,kv_dtype=f32", &tokens);
    assert_eq!((same, bytes), (want, f32_bytes));
}

#[test]
fn kv_dtype_is_refused_where_there_is_no_cache_dtype_to_choose() {
    for (spec, needle) in [
        ("rwkv7:preset=tiny,kv_dtype=f16", "no KV cache dtype"),
        (
            "llama-upstream:preset=tiny,kv_dtype=f16",
            "no KV cache dtype",
        ),
        ("llama:preset=tiny,kv_dtype=q8_0", "unknown kv_dtype `q8_0`"),
    ] {
        let e = registry::resolve(&spec.parse().unwrap())
            .err()
            .unwrap_or_else(|| panic!("{spec} was accepted"))
            .to_string();
        assert!(e.contains(needle) && !e.contains('\n'), "{spec}: {e}");
    }
}
