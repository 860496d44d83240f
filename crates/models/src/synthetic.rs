//! Seeded random weights with the tensor names and shapes of real checkpoints.
//!
//! Speed and memory do not depend on weight values, so benchmarks run on random weights
//! built here; the initialisation keeps activations in a realistic range (no overflow,
//! no denormals) so that the arithmetic costs what it costs on trained weights.
//! candle's CPU RNG cannot be seeded, hence our own generator.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use rand::{rngs::SmallRng, Rng, SeedableRng};

use results::Arch;

use crate::presets::Preset;
use crate::Result;

/// How one tensor is initialised.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    Const(f32),
    /// Uniform on `[lo, hi)`.
    Uniform(f32, f32),
    /// Zero-mean with the given standard deviation (uniform with matching spread, which
    /// is cheaper to draw than a normal and equivalent for timing).
    Std(f32),
}

/// The name, shape and initialisation of one tensor of a checkpoint.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl TensorSpec {
    fn new(name: impl Into<String>, shape: &[usize], init: Init) -> Self {
        Self {
            name: name.into(),
            shape: shape.to_vec(),
            init,
        }
    }
}

/// Total number of parameters in a list of tensor specs.
pub fn param_count(specs: &[TensorSpec]) -> u64 {
    specs
        .iter()
        .map(|s| s.shape.iter().product::<usize>() as u64)
        .sum()
}

/// The values of tensor number `index` of a list, from its own generator: any tensor
/// can be drawn alone, in any order (see [`LazyWeights`]), and equals the one
/// [`materialise`] draws.
fn draw(spec: &TensorSpec, seed: u64, index: usize) -> Vec<f32> {
    let stream = seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = SmallRng::seed_from_u64(stream);
    let n: usize = spec.shape.iter().product();
    match spec.init {
        Init::Const(v) => vec![v; n],
        Init::Uniform(lo, hi) => (0..n).map(|_| rng.random_range(lo..hi)).collect(),
        Init::Std(std) => {
            let a = std * 3f32.sqrt();
            (0..n).map(|_| rng.random_range(-a..a)).collect()
        }
    }
}

/// Materialises the specs as named tensors of `dtype` on `device`.
pub fn materialise(
    specs: &[TensorSpec],
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let t = Tensor::from_vec(draw(spec, seed, i), spec.shape.as_slice(), device)?
            .to_dtype(dtype)?;
        out.insert(spec.name.clone(), t);
    }
    Ok(out)
}

/// The same weights as [`materialise`], drawn when a model asks for each tensor: a
/// model that stores its matrices in 16 or fewer bits then never holds more than one
/// f32 tensor at a time (a 3B preset in q4_k builds in under 2 GB, not 12).
pub struct LazyWeights {
    specs: HashMap<String, (usize, TensorSpec)>,
    seed: u64,
}

impl LazyWeights {
    pub fn new(specs: Vec<TensorSpec>, seed: u64) -> Self {
        Self {
            specs: specs
                .into_iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), (i, s)))
                .collect(),
            seed,
        }
    }

    /// A var builder over the weights, handing them out as `dtype`.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }
}

impl SimpleBackend for LazyWeights {
    fn get(
        &self,
        shape: candle_core::Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.get_unchecked(name, dtype, dev)?;
        if t.shape() != &shape {
            candle_core::bail!("tensor `{name}`: shape {:?}, expected {shape:?}", t.dims())
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let Some((i, spec)) = self.specs.get(name) else {
            candle_core::bail!("no tensor `{name}` in the preset's weights")
        };
        Tensor::from_vec(draw(spec, self.seed, *i), spec.shape.as_slice(), dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.specs.contains_key(name)
    }
}

/// Tensors of an official RWKV-7 (x070) checkpoint of this preset's shape.
pub fn rwkv7_specs(p: &Preset) -> Vec<TensorSpec> {
    let (c, v, r) = (p.width, p.vocab, p.rwkv);
    let heads = c / r.head_size;
    let lin = |fan_in: usize| Init::Std(1.0 / (fan_in as f32).sqrt());
    let lora = |fan_in: usize| Init::Std(0.1 / (fan_in as f32).sqrt());
    let vec3 = [1, 1, c];
    let mut s = vec![TensorSpec::new("emb.weight", &[v, c], Init::Std(0.02))];
    for l in 0..p.layers {
        let b = format!("blocks.{l}");
        if l == 0 {
            s.push(TensorSpec::new(
                format!("{b}.ln0.weight"),
                &[c],
                Init::Const(1.0),
            ));
            s.push(TensorSpec::new(
                format!("{b}.ln0.bias"),
                &[c],
                Init::Const(0.0),
            ));
        }
        for ln in ["ln1", "ln2"] {
            s.push(TensorSpec::new(
                format!("{b}.{ln}.weight"),
                &[c],
                Init::Const(1.0),
            ));
            s.push(TensorSpec::new(
                format!("{b}.{ln}.bias"),
                &[c],
                Init::Const(0.0),
            ));
        }
        let a = format!("{b}.att");
        for x in ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"] {
            s.push(TensorSpec::new(
                format!("{a}.{x}"),
                &vec3,
                Init::Uniform(0.0, 1.0),
            ));
        }
        s.push(TensorSpec::new(
            format!("{a}.w0"),
            &vec3,
            Init::Uniform(-6.0, -1.0),
        ));
        s.push(TensorSpec::new(format!("{a}.w1"), &[c, r.lora_w], lora(c)));
        s.push(TensorSpec::new(
            format!("{a}.w2"),
            &[r.lora_w, c],
            lora(r.lora_w),
        ));
        s.push(TensorSpec::new(
            format!("{a}.a0"),
            &vec3,
            Init::Uniform(-1.0, 1.0),
        ));
        s.push(TensorSpec::new(format!("{a}.a1"), &[c, r.lora_a], lora(c)));
        s.push(TensorSpec::new(
            format!("{a}.a2"),
            &[r.lora_a, c],
            lora(r.lora_a),
        ));
        // Official files carry v0/v1/v2 in layer 0 too, where they are unused.
        s.push(TensorSpec::new(
            format!("{a}.v0"),
            &vec3,
            Init::Uniform(0.5, 1.5),
        ));
        s.push(TensorSpec::new(format!("{a}.v1"), &[c, r.lora_v], lora(c)));
        s.push(TensorSpec::new(
            format!("{a}.v2"),
            &[r.lora_v, c],
            lora(r.lora_v),
        ));
        s.push(TensorSpec::new(format!("{a}.g1"), &[c, r.lora_g], lora(c)));
        s.push(TensorSpec::new(
            format!("{a}.g2"),
            &[r.lora_g, c],
            lora(r.lora_g),
        ));
        s.push(TensorSpec::new(
            format!("{a}.k_k"),
            &vec3,
            Init::Uniform(0.7, 1.0),
        ));
        s.push(TensorSpec::new(
            format!("{a}.k_a"),
            &vec3,
            Init::Uniform(0.8, 1.2),
        ));
        s.push(TensorSpec::new(
            format!("{a}.r_k"),
            &[heads, r.head_size],
            Init::Std(0.1),
        ));
        for proj in ["receptance", "key", "value", "output"] {
            s.push(TensorSpec::new(
                format!("{a}.{proj}.weight"),
                &[c, c],
                lin(c),
            ));
        }
        s.push(TensorSpec::new(
            format!("{a}.ln_x.weight"),
            &[c],
            Init::Const(1.0),
        ));
        s.push(TensorSpec::new(
            format!("{a}.ln_x.bias"),
            &[c],
            Init::Const(0.0),
        ));
        let f = format!("{b}.ffn");
        s.push(TensorSpec::new(
            format!("{f}.x_k"),
            &vec3,
            Init::Uniform(0.0, 1.0),
        ));
        s.push(TensorSpec::new(
            format!("{f}.key.weight"),
            &[r.ffn, c],
            lin(c),
        ));
        s.push(TensorSpec::new(
            format!("{f}.value.weight"),
            &[c, r.ffn],
            lin(r.ffn),
        ));
    }
    s.push(TensorSpec::new("ln_out.weight", &[c], Init::Const(1.0)));
    s.push(TensorSpec::new("ln_out.bias", &[c], Init::Const(0.0)));
    s.push(TensorSpec::new("head.weight", &[v, c], lin(c)));
    s
}

/// Tensors of a Hugging Face Llama checkpoint of this preset's shape (untied head).
pub fn llama_specs(p: &Preset) -> Vec<TensorSpec> {
    let (c, v, l) = (p.width, p.vocab, p.llama);
    let head_dim = c / l.heads;
    let kv = l.kv_heads * head_dim;
    let lin = |fan_in: usize| Init::Std(1.0 / (fan_in as f32).sqrt());
    let mut s = vec![TensorSpec::new(
        "model.embed_tokens.weight",
        &[v, c],
        Init::Std(0.02),
    )];
    for i in 0..p.layers {
        let b = format!("model.layers.{i}");
        let attn = format!("{b}.self_attn");
        s.push(TensorSpec::new(
            format!("{attn}.q_proj.weight"),
            &[c, c],
            lin(c),
        ));
        s.push(TensorSpec::new(
            format!("{attn}.k_proj.weight"),
            &[kv, c],
            lin(c),
        ));
        s.push(TensorSpec::new(
            format!("{attn}.v_proj.weight"),
            &[kv, c],
            lin(c),
        ));
        s.push(TensorSpec::new(
            format!("{attn}.o_proj.weight"),
            &[c, c],
            lin(c),
        ));
        let mlp = format!("{b}.mlp");
        s.push(TensorSpec::new(
            format!("{mlp}.gate_proj.weight"),
            &[l.intermediate, c],
            lin(c),
        ));
        s.push(TensorSpec::new(
            format!("{mlp}.up_proj.weight"),
            &[l.intermediate, c],
            lin(c),
        ));
        s.push(TensorSpec::new(
            format!("{mlp}.down_proj.weight"),
            &[c, l.intermediate],
            lin(l.intermediate),
        ));
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            s.push(TensorSpec::new(
                format!("{b}.{norm}.weight"),
                &[c],
                Init::Const(1.0),
            ));
        }
    }
    s.push(TensorSpec::new("model.norm.weight", &[c], Init::Const(1.0)));
    s.push(TensorSpec::new("lm_head.weight", &[v, c], lin(c)));
    s
}

/// The tensors of a preset in the checkpoint layout of an architecture's family
/// (official RWKV-7 keys, Hugging Face Llama keys).
pub fn specs(arch: Arch, p: &Preset) -> Vec<TensorSpec> {
    match arch {
        Arch::Rwkv => rwkv7_specs(p),
        Arch::Transformer => llama_specs(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::PRESETS;

    #[test]
    fn matched_presets_agree_on_parameter_count_within_one_percent() {
        for p in PRESETS {
            let rwkv = param_count(&rwkv7_specs(p)) as f64;
            let llama = param_count(&llama_specs(p)) as f64;
            let gap = (rwkv - llama).abs() / rwkv;
            assert!(gap < 0.01, "{}: rwkv {rwkv} vs llama {llama}", p.name);
        }
    }

    #[test]
    fn preset_0_1b_has_the_official_parameter_count() {
        // RWKV-x070-World-0.1B has 191.0 M parameters (L12 D768, vocab 65536).
        let p = crate::presets::preset("0.1b").unwrap();
        let n = param_count(&rwkv7_specs(p));
        assert!((190_000_000..192_000_000).contains(&n), "{n}");
    }

    #[test]
    fn same_seed_gives_same_weights() {
        let p = crate::presets::preset("tiny").unwrap();
        let specs = &rwkv7_specs(p)[..3];
        let a = materialise(specs, 7, DType::F32, &Device::Cpu).unwrap();
        let b = materialise(specs, 7, DType::F32, &Device::Cpu).unwrap();
        let c = materialise(specs, 8, DType::F32, &Device::Cpu).unwrap();
        let flat = |m: &HashMap<String, Tensor>| {
            m["emb.weight"]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(flat(&a), flat(&b));
        assert_ne!(flat(&a), flat(&c));
    }

    #[test]
    fn lazy_weights_equal_materialised_ones_in_any_order() {
        let p = crate::presets::preset("tiny").unwrap();
        let specs = rwkv7_specs(p);
        let all = materialise(&specs, 7, DType::F32, &Device::Cpu).unwrap();
        let lazy = LazyWeights::new(specs.clone(), 7);
        for s in specs.iter().rev() {
            let t = lazy
                .get_unchecked(&s.name, DType::F32, &Device::Cpu)
                .unwrap();
            let d = (t - &all[&s.name])
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap();
            assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{}", s.name);
        }
        let vb = lazy.into_var_builder(DType::F32, &Device::Cpu);
        assert!(vb.get((3, 3), "emb.weight").is_err());
        assert!(vb.get(1, "no.such").is_err());
    }
}
