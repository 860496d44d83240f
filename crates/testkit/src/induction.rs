//! A hand-built copier: a two-layer Qwen2 checkpoint whose weights are set by hand, not
//! trained, so that it continues any sequence it has seen before (an induction head,
//! Olsson et al. 2022). It is the positive control of the recall tasks: it scores 100 %
//! on copying at every length where random weights score nothing, so a task generator
//! or a scorer that puts the answer in the wrong place shows up as a failed test.
//!
//! The residual stream holds four slots of [`EMBED`] dims: the current token's embedding
//! (A), the previous token's (B), the one before that (C) and the prediction (O).
//!
//! - Layer 1 has two positional heads that attend exactly 1 and 2 positions back and
//!   copy A into B and C. Their queries and keys are biases only, so the score is a sum
//!   of cosines of RoPE angles that peaks at the wanted offset.
//! - Layer 2's first head scores earlier position `j` from position `t` by
//!   `2 u(x_t)·u(x_{j-1}) + u(x_{t-1})·u(x_{j-2}) - u(x_t)·u(x_j) / 2`. A two-token
//!   match beats a one-token match of the current token, which beats a match of the
//!   previous token only, each by at least 1/2. The last term breaks the tie between
//!   positions 0 and 1 when the current token is the first one: position 0 can only
//!   attend to itself, so its "previous" token is itself. Its cost, 1/2 off the full
//!   match of a doubled token (`a a b`), leaves that match 1/2 ahead. The head copies A
//!   of the best `j` into O; the second head is zero.
//! - The output head reads O. MLPs are zero.
//!
//! Content lives in rotary pairs whose frequency is below 1e-6, so RoPE leaves it
//! unchanged up to 10^5 positions. Position lives in the 16 fastest pairs.
//! Embeddings are random ±1/√EMBED vectors. Cross-talk between two of them has a standard
//! deviation of 1/√EMBED = 0.125, well inside the unit margins above.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use serde_json::json;

use models::{Error, Result};
use results::atomic;

/// Dims of one slot of the residual stream.
pub const EMBED: usize = 64;
const SLOTS: usize = 4;
const HIDDEN: usize = SLOTS * EMBED;
const HEADS: usize = 2;
/// Rotary pairs carrying position (the fastest) and the first pair carrying content.
const POSITION_PAIRS: usize = 16;
const CONTENT_PAIR: usize = 32;
const HEAD_DIM: usize = 2 * (CONTENT_PAIR + EMBED);
/// Pair `p` turns by `ROPE_THETA^(-2p / HEAD_DIM)` per position: 1e-3 at pair 16 and
/// 1e-6 at pair 32.
const ROPE_THETA: f64 = 1e18;
/// Query and key bias of the positional heads. The score at the wanted offset beats
/// its neighbours by `0.815 * POSITION_BIAS^2 / sqrt(HEAD_DIM)` ≈ 53 nats.
const POSITION_BIAS: f32 = 30.0;
/// Nats per unit of match score in the induction head: the smallest margin, 1/2, is
/// worth 40 nats.
const MATCH_SCALE: f32 = 80.0;
/// Logit of the copied token (others get `OUTPUT_SCALE` times their cross-talk).
const OUTPUT_SCALE: f32 = 60.0;
const INTERMEDIATE: usize = 8;

/// Where a slot starts in the residual stream.
#[derive(Clone, Copy)]
enum Slot {
    Current = 0,
    Previous = 1,
    BeforePrevious = 2,
    Prediction = 3,
}

impl Slot {
    fn dim(self, i: usize) -> usize {
        self as usize * EMBED + i
    }
}

/// A row-major matrix of `rows x cols` being filled in.
struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    fn set(&mut self, row: usize, col: usize, v: f32) {
        self.data[row * self.cols + col] = v;
    }

    fn tensor(self) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.data,
            (self.rows, self.cols),
            &Device::Cpu,
        )?)
    }
}

fn vector(data: Vec<f32>) -> Result<Tensor> {
    let n = data.len();
    Ok(Tensor::from_vec(data, n, &Device::Cpu)?)
}

/// Turn per position of rotary pair `p`, as the model computes it.
fn pair_frequency(p: usize) -> f32 {
    1.0 / (ROPE_THETA as f32).powf((2 * p) as f32 / HEAD_DIM as f32)
}

/// Projection rows of head `h`, dim `i` (`i < HEAD_DIM`).
fn head_row(h: usize, i: usize) -> usize {
    h * HEAD_DIM + i
}

/// Layer 1: head `h` attends `h + 1` positions back and copies A there into B or C.
fn positional_layer(t: &mut HashMap<String, Tensor>, prefix: &str) -> Result<()> {
    let q_width = HEADS * HEAD_DIM;
    let half = HEAD_DIM / 2;
    let mut q_bias = vec![0f32; q_width];
    let mut k_bias = vec![0f32; q_width];
    let mut v = Matrix::zeros(q_width, HIDDEN);
    let mut o = Matrix::zeros(HIDDEN, q_width);
    for (h, target) in [(0, Slot::Previous), (1, Slot::BeforePrevious)] {
        let offset = (h + 1) as f32;
        for p in 0..POSITION_PAIRS {
            // q·k after RoPE is POSITION_BIAS² Σ cos((Δ - offset) θ_p): largest at
            // Δ = offset, the relative position of the key.
            let angle = offset * pair_frequency(p);
            q_bias[head_row(h, p)] = POSITION_BIAS;
            k_bias[head_row(h, p)] = POSITION_BIAS * angle.cos();
            k_bias[head_row(h, half + p)] = POSITION_BIAS * angle.sin();
        }
        for i in 0..EMBED {
            v.set(head_row(h, i), Slot::Current.dim(i), 1.0);
            o.set(target.dim(i), head_row(h, i), 1.0);
        }
    }
    let attn = format!("{prefix}.self_attn");
    t.insert(
        format!("{attn}.q_proj.weight"),
        Matrix::zeros(q_width, HIDDEN).tensor()?,
    );
    t.insert(
        format!("{attn}.k_proj.weight"),
        Matrix::zeros(q_width, HIDDEN).tensor()?,
    );
    t.insert(format!("{attn}.q_proj.bias"), vector(q_bias)?);
    t.insert(format!("{attn}.k_proj.bias"), vector(k_bias)?);
    t.insert(format!("{attn}.v_proj.weight"), v.tensor()?);
    t.insert(format!("{attn}.v_proj.bias"), vector(vec![0.0; q_width])?);
    t.insert(format!("{attn}.o_proj.weight"), o.tensor()?);
    // The input is A alone, a unit vector: RMS 1/√HIDDEN, undone here.
    norm(t, &format!("{prefix}.input_layernorm"), 1.0)
}

/// Layer 2: head 0 matches the current and previous tokens against the previous two at
/// every earlier position and copies the token found into O.
fn induction_layer(t: &mut HashMap<String, Tensor>, prefix: &str) -> Result<()> {
    let q_width = HEADS * HEAD_DIM;
    let half = HEAD_DIM / 2;
    // q·k / √HEAD_DIM = MATCH_SCALE × (match score) for unit slot vectors.
    let g = (MATCH_SCALE * (HEAD_DIM as f32).sqrt()).sqrt();
    let mut q = Matrix::zeros(q_width, HIDDEN);
    let mut k = Matrix::zeros(q_width, HIDDEN);
    let mut v = Matrix::zeros(q_width, HIDDEN);
    let mut o = Matrix::zeros(HIDDEN, q_width);
    for i in 0..EMBED {
        let (first, second) = (CONTENT_PAIR + i, half + CONTENT_PAIR + i);
        q.set(first, Slot::Current.dim(i), 2.0 * g);
        k.set(first, Slot::Previous.dim(i), g);
        k.set(first, Slot::Current.dim(i), -0.25 * g);
        q.set(second, Slot::Previous.dim(i), g);
        k.set(second, Slot::BeforePrevious.dim(i), g);
        v.set(i, Slot::Current.dim(i), 1.0);
        o.set(Slot::Prediction.dim(i), i, 1.0);
    }
    let attn = format!("{prefix}.self_attn");
    for (name, m) in [("q_proj", q), ("k_proj", k), ("v_proj", v)] {
        t.insert(format!("{attn}.{name}.weight"), m.tensor()?);
        t.insert(format!("{attn}.{name}.bias"), vector(vec![0.0; q_width])?);
    }
    t.insert(format!("{attn}.o_proj.weight"), o.tensor()?);
    // The input is A + B + C, three unit vectors in orthogonal slots.
    norm(t, &format!("{prefix}.input_layernorm"), 3.0)
}

/// An RMSNorm weight that maps a residual of `units` unit vectors in orthogonal slots
/// back to itself.
fn norm(t: &mut HashMap<String, Tensor>, name: &str, units: f32) -> Result<()> {
    let w = (units / HIDDEN as f32).sqrt();
    t.insert(format!("{name}.weight"), vector(vec![w; HIDDEN])?);
    Ok(())
}

fn zero_mlp(t: &mut HashMap<String, Tensor>, prefix: &str) -> Result<()> {
    let mlp = format!("{prefix}.mlp");
    for (name, rows, cols) in [
        ("gate_proj", INTERMEDIATE, HIDDEN),
        ("up_proj", INTERMEDIATE, HIDDEN),
        ("down_proj", HIDDEN, INTERMEDIATE),
    ] {
        t.insert(
            format!("{mlp}.{name}.weight"),
            Matrix::zeros(rows, cols).tensor()?,
        );
    }
    t.insert(
        format!("{prefix}.post_attention_layernorm.weight"),
        vector(vec![1.0; HIDDEN])?,
    );
    Ok(())
}

/// The tensors of the copier, by Hugging Face name.
pub fn tensors(vocab: usize, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let unit = 1.0 / (EMBED as f32).sqrt();
    let codes: Vec<Vec<f32>> = (0..vocab)
        .map(|_| {
            (0..EMBED)
                .map(|_| if rng.random::<bool>() { unit } else { -unit })
                .collect()
        })
        .collect();
    let mut embed = Matrix::zeros(vocab, HIDDEN);
    let mut head = Matrix::zeros(vocab, HIDDEN);
    for (token, code) in codes.iter().enumerate() {
        for (i, &c) in code.iter().enumerate() {
            embed.set(token, Slot::Current.dim(i), c);
            head.set(token, Slot::Prediction.dim(i), OUTPUT_SCALE * c);
        }
    }
    let mut t = HashMap::new();
    t.insert("model.embed_tokens.weight".into(), embed.tensor()?);
    t.insert("lm_head.weight".into(), head.tensor()?);
    positional_layer(&mut t, "model.layers.0")?;
    induction_layer(&mut t, "model.layers.1")?;
    zero_mlp(&mut t, "model.layers.0")?;
    zero_mlp(&mut t, "model.layers.1")?;
    // The final residual is A + B + C + O.
    norm(&mut t, "model.norm", 4.0)?;
    Ok(t)
}

/// The copier's `config.json`.
pub fn config(vocab: usize) -> serde_json::Value {
    json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": vocab,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": 2,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": ROPE_THETA,
        "max_position_embeddings": 65536,
        "tie_word_embeddings": false,
        "use_sliding_window": false,
        "torch_dtype": "float32",
    })
}

/// A word-level `tokenizer.json` with one word per id (`t0`, `t1`, ...; `t0` doubles as
/// the unknown token), so that token-level tasks can draw from the whole vocabulary.
pub fn tokenizer(vocab: usize) -> serde_json::Value {
    models::tokenizer::hf::word_level((0..vocab).map(|i| format!("t{i}")), "t0")
}

/// Writes the copier as a Hugging Face directory: `config.json`, `model.safetensors` and
/// `tokenizer.json`. Each file is written whole or not at all.
pub fn write(dir: &Path, vocab: usize, seed: u64) -> Result<()> {
    if vocab < 3 {
        return Err(Error::Unsupported(format!(
            "the copier needs a vocabulary of 3 ids or more, not {vocab}"
        )));
    }
    let weights = dir.join("model.safetensors");
    let tmp = atomic::temp_beside(&weights)?;
    candle_core::safetensors::save(&tensors(vocab, seed)?, tmp.path())?;
    atomic::persist(tmp, &weights)?;
    let pretty = |v: serde_json::Value| serde_json::to_vec_pretty(&v).expect("JSON values print");
    atomic::write(&dir.join("config.json"), &pretty(config(vocab)))?;
    atomic::write(&dir.join("tokenizer.json"), &pretty(tokenizer(vocab)))?;
    Ok(())
}
