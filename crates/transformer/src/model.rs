//! The Llama-family decoder: embeddings, pre-norm blocks of attention and gated MLP,
//! final RMSNorm and the output head
//! ([Llama](https://arxiv.org/abs/2302.13971), [Llama 2](https://arxiv.org/abs/2307.09288);
//! Qwen2 and Mistral share the layout).
//!
//! One forward serves prompt and decode: a decode step is a sequence of one token. Long
//! inputs are processed in chunks of positions that go through every layer before the
//! next chunk starts, so activations are bounded by the chunk and only the KV cache
//! grows with the context.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Module, RmsNorm, VarBuilder};
use kernels::{main_storage, Logits, Matrix, VarBuilderWeights, WeightDtype, WeightSource};

use crate::attention::Attention;
use crate::config::Config;
use crate::embedding::Embedding;
use crate::kv_cache::KvCache;
use crate::linear::Linear;
use crate::mlp::Mlp;
use crate::rope::{Rope, RopeTables};
use crate::{Error, Result};

/// Positions per chunk of a long forward: large enough for efficient matrix products,
/// small enough that activations stay a few MB at the 0.1b shape.
pub const DEFAULT_CHUNK_LEN: usize = 512;

/// Capacity a cache from [`Model::new_cache`] starts with.
pub const DEFAULT_CACHE_CAPACITY: usize = 512;

#[derive(Debug, Clone)]
struct Block {
    input_norm: RmsNorm,
    attn: Attention,
    post_attention_norm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    /// Layer `{prefix}` (`model.layers.{i}`).
    fn load(w: &dyn WeightSource, prefix: &str, cfg: &Config) -> Result<Self> {
        let norm = |n: &str| rms_norm(w, &format!("{prefix}.{n}"), cfg);
        Ok(Self {
            input_norm: norm("input_layernorm")?,
            attn: Attention::load(w, &format!("{prefix}.self_attn"), cfg)?,
            post_attention_norm: norm("post_attention_layernorm")?,
            mlp: Mlp::load(w, &format!("{prefix}.mlp"), cfg)?,
        })
    }

    /// # Shapes
    /// `x`: `(B, T, hidden)` -> `(B, T, hidden)`.
    fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        cache: &KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let h = self
            .attn
            .forward(&self.input_norm.forward(x)?, rope, cache, layer)?;
        let x = (x + h)?;
        let flat = x.reshape((b * t, d))?;
        let h = self
            .mlp
            .forward(&self.post_attention_norm.forward(&flat)?)?;
        Ok((flat + h)?.reshape((b, t, d))?)
    }
}

/// The RMSNorm `{prefix}.weight`.
fn rms_norm(w: &dyn WeightSource, prefix: &str, cfg: &Config) -> Result<RmsNorm> {
    let weight = w.tensor(&format!("{prefix}.weight"), &[cfg.hidden_size])?;
    Ok(RmsNorm::new(weight, cfg.rms_norm_eps))
}

/// A Llama-family causal language model.
#[derive(Debug, Clone)]
pub struct Model {
    embed: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: Rope,
    cfg: Config,
    dtype: DType,
    device: Device,
    chunk_len: usize,
}

impl Model {
    /// Builds the model from Hugging Face tensor names under `vb` (`model.embed_tokens`,
    /// `model.layers.{i}.…`, `model.norm`, `lm_head` unless embeddings are tied). The
    /// model computes in `vb`'s dtype on `vb`'s device.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Self::with_dtype(cfg, vb, WeightDtype::F32)
    }

    /// [`Model::new`] with the embedding, every projection and the head stored as
    /// `dtype` (each converted as it is read, so the f32 copies never coexist) while
    /// activations, norms, softmax and the KV cache stay in `vb`'s dtype.
    /// [`WeightDtype::F32`] keeps the weights in `vb`'s dtype.
    pub fn with_dtype(cfg: &Config, vb: VarBuilder, weights: WeightDtype) -> Result<Self> {
        Self::from_weights(cfg, &VarBuilderWeights::new(vb, weights))
    }

    /// Builds the model from any [`WeightSource`] serving the Hugging Face names: a var
    /// builder ([`Model::with_dtype`]) or a GGUF file ([`crate::gguf::GgufWeights`]),
    /// each matrix stored as the source stores it; the model computes in the source's
    /// dtype.
    pub fn from_weights(cfg: &Config, w: &dyn WeightSource) -> Result<Self> {
        cfg.validate()?;
        let (dtype, device) = (w.dtype(), w.device().clone());
        if device.is_cpu() && dtype == DType::BF16 {
            return Err(Error::Unsupported(
                "bf16 compute on the CPU is not supported (candle 0.11 has no bf16 CPU \
                 matmul); load bf16 checkpoints as f32 (exact) or f16"
                    .into(),
            ));
        }
        let d = cfg.hidden_size;
        let embed_weight = w.matrix("model.embed_tokens.weight", (cfg.vocab_size, d))?;
        let lm_head = if cfg.tie_word_embeddings {
            Linear::new(embed_weight.clone(), None)
        } else {
            Linear::load(w, "lm_head", (d, cfg.vocab_size), false)?
        };
        let blocks = (0..cfg.num_hidden_layers)
            .map(|i| Block::load(w, &format!("model.layers.{i}"), cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed: Embedding::new(embed_weight, dtype),
            blocks,
            norm: rms_norm(w, "model.norm", cfg)?,
            lm_head,
            rope: Rope::new(cfg),
            cfg: cfg.clone(),
            dtype,
            device,
            chunk_len: DEFAULT_CHUNK_LEN,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// How the matrices are stored, as llama.cpp names the type (the one holding most
    /// of their weights, should they mix types).
    pub fn storage(&self) -> String {
        main_storage(self.matrices())
    }

    fn matrices(&self) -> impl Iterator<Item = &Matrix> {
        let head = (!self.cfg.tie_word_embeddings).then(|| self.lm_head.weight());
        self.blocks
            .iter()
            .flat_map(|b| b.attn.linears().into_iter().chain(b.mlp.linears()))
            .map(Linear::weight)
            .chain(head)
            .chain([self.embed.table()])
    }

    /// Bytes of the weights as stored: the matrices in their storage type, norms and
    /// biases in the compute dtype; a tied head counts once.
    pub fn weight_bytes(&self) -> usize {
        let linears: Vec<&Linear> = self
            .blocks
            .iter()
            .flat_map(|b| b.attn.linears().into_iter().chain(b.mlp.linears()))
            .collect();
        let head = (!self.cfg.tie_word_embeddings).then_some(&self.lm_head);
        let matrices: usize = linears
            .iter()
            .copied()
            .chain(head)
            .map(|l| l.weight().bytes())
            .sum::<usize>()
            + self.embed.table().bytes();
        let biases: usize = linears.iter().map(|l| l.bias_len()).sum();
        let norms = (2 * self.blocks.len() + 1) * self.cfg.hidden_size;
        matrices + (norms + biases) * self.dtype.size_in_bytes()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Positions per chunk of a long forward (at least 1).
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    pub fn set_chunk_len(&mut self, chunk_len: usize) {
        self.chunk_len = chunk_len.max(1);
    }

    /// An empty cache of this model's shape, dtype and device.
    pub fn new_cache(&self, batch: usize) -> Result<KvCache> {
        self.new_cache_as(batch, self.dtype)
    }

    /// An empty cache that stores keys and values as `kv_dtype`: the compute dtype, or
    /// f16/bf16 under an f32 model (half the cache's bytes; attention widens what it
    /// reads and computes in f32).
    pub fn new_cache_as(&self, batch: usize, kv_dtype: DType) -> Result<KvCache> {
        if !self.takes_cache_dtype(kv_dtype) {
            return Err(Error::Unsupported(format!(
                "a {kv_dtype:?} KV cache under a {:?} model: the cache is stored in the \
                 compute dtype, or in f16/bf16 under f32",
                self.dtype
            )));
        }
        KvCache::new(
            &self.cfg,
            batch,
            DEFAULT_CACHE_CAPACITY,
            kv_dtype,
            &self.device,
        )
    }

    fn takes_cache_dtype(&self, kv: DType) -> bool {
        kv == self.dtype || (self.dtype == DType::F32 && matches!(kv, DType::F16 | DType::BF16))
    }

    /// Runs `tokens` after the positions held in `cache`, appends their keys and values
    /// to it, and returns f32 logits.
    ///
    /// # Shapes
    /// `tokens`: `(B, T)` u32 with `T >= 1` and `B = cache.batch()` -> `(B, T, vocab)`
    /// for [`Logits::All`], `(B, vocab)` for [`Logits::Last`].
    pub fn forward(&self, tokens: &Tensor, cache: &mut KvCache, logits: Logits) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        if t == 0 || b != cache.batch() {
            return Err(Error::Unsupported(format!(
                "forward of tokens shaped ({b}, {t}) with a cache for {} sequences: \
                 needs at least one token per sequence and a matching batch",
                cache.batch()
            )));
        }
        if !self.takes_cache_dtype(cache.dtype()) || !cache.fits(&self.cfg) {
            return Err(Error::Unsupported(format!(
                "the cache ({:?}) was not made for this model ({:?}, {} layers of {} kv \
                 heads of {}); use Model::new_cache",
                cache.dtype(),
                self.dtype,
                self.cfg.num_hidden_layers,
                self.cfg.num_key_value_heads,
                self.cfg.head_dim
            )));
        }
        let mut outs = Vec::new();
        for start in (0..t).step_by(self.chunk_len) {
            let n = self.chunk_len.min(t - start);
            let last_chunk = start + n == t;
            let want = match logits {
                Logits::All => Some(Logits::All),
                Logits::Last if last_chunk => Some(Logits::Last),
                Logits::Last => None,
            };
            if let Some(out) = self.forward_chunk(&tokens.narrow(1, start, n)?, cache, want)? {
                outs.push(out);
            }
        }
        match logits {
            Logits::All if outs.len() > 1 => Ok(Tensor::cat(&outs, 1)?),
            _ => outs
                .pop()
                .ok_or_else(|| Error::Unsupported("forward produced no logits".into())),
        }
    }

    fn forward_chunk(
        &self,
        tokens: &Tensor,
        cache: &mut KvCache,
        logits: Option<Logits>,
    ) -> Result<Option<Tensor>> {
        let (b, t) = tokens.dims2()?;
        cache.reserve(t)?;
        let rope = self.rope.tables(cache.len(), t, self.dtype, &self.device)?;
        let mut x = self.embed.forward(tokens)?;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, &rope, cache, i)?;
        }
        // Positions count only once every layer holds them, so a failed forward leaves
        // the cache as it was.
        cache.commit(t);
        let d = self.cfg.hidden_size;
        let rows = match logits {
            None => return Ok(None),
            Some(Logits::All) => x.reshape((b * t, d))?,
            Some(Logits::Last) => x.narrow(1, t - 1, 1)?.reshape((b, d))?,
        };
        let out = self
            .lm_head
            .forward(&self.norm.forward(&rows)?)?
            .to_dtype(DType::F32)?;
        Ok(Some(match logits {
            Some(Logits::All) => out.reshape((b, t, self.cfg.vocab_size))?,
            _ => out,
        }))
    }
}
