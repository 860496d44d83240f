//! The RWKV-7 model: embedding (+ ln0), blocks of time mix and channel mix, ln_out and
//! the head. One forward path serves prompts and decode steps.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use kernels::{main_storage, Logits, Matrix, VarBuilderWeights, WeightDtype, WeightSource};

use crate::channel_mix::ChannelMix;
use crate::config::Config;
use crate::gemv::linear;
use crate::ops::{last_positions, layer_norm, AddAssign};
use crate::state::State;
use crate::time_mix::TimeMix;
use crate::{Error, Result};

/// Default prompt chunk: long enough that matrix products run at full speed, short
/// enough that a chunk's activations (about 70 bytes x C per token) stay small.
pub const DEFAULT_CHUNK_LEN: usize = 512;

struct Block {
    ln1: (Tensor, Tensor),
    ln2: (Tensor, Tensor),
    att: TimeMix,
    ffn: ChannelMix,
}

pub struct Model {
    cfg: Config,
    /// `[V, C]`; ln0 is applied to the looked-up rows.
    emb: Matrix,
    ln0: (Tensor, Tensor),
    blocks: Vec<Block>,
    ln_out: (Tensor, Tensor),
    /// `[V, C]` (`nn.Linear` layout).
    head: Matrix,
    chunk_len: usize,
}

fn norm(w: &dyn WeightSource, name: &str, c: usize) -> Result<(Tensor, Tensor)> {
    Ok((
        w.tensor(&format!("{name}.weight"), &[c])?
            .to_dtype(DType::F32)?,
        w.tensor(&format!("{name}.bias"), &[c])?
            .to_dtype(DType::F32)?,
    ))
}

impl Model {
    /// Builds the model from tensors under their official keys (see
    /// [`Config::tensor_shapes`]), e.g. from [`crate::Checkpoint::into_var_builder`].
    /// Weights are used as they are (f32 tensors are not copied); other dtypes are
    /// upcast, since every computation runs in f32.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Self::with_dtype(cfg, vb, WeightDtype::F32)
    }

    /// [`Model::new`] with the embedding, every projection and the head stored as
    /// `dtype` (each converted as it is read, so the f32 copies never coexist); norms,
    /// mixing vectors, the state and every activation stay f32.
    pub fn with_dtype(cfg: &Config, vb: VarBuilder, dtype: WeightDtype) -> Result<Self> {
        Self::from_weights(
            cfg,
            &VarBuilderWeights::new(vb.set_dtype(DType::F32), dtype),
        )
    }

    /// Builds the model from any [`WeightSource`] that serves the official keys: a var
    /// builder ([`Model::with_dtype`]) or a GGUF file ([`crate::gguf::GgufWeights`]),
    /// each matrix stored as the source stores it.
    pub fn from_weights(cfg: &Config, w: &dyn WeightSource) -> Result<Self> {
        if !w.device().is_cpu() {
            return Err(Error::Unsupported(format!(
                "the fused RWKV-7 kernels run on the CPU only, not on {:?}",
                w.device().location()
            )));
        }
        let c = cfg.width;
        let blocks = (0..cfg.layers)
            .map(|i| {
                let b = format!("blocks.{i}");
                Ok(Block {
                    ln1: norm(w, &format!("{b}.ln1"), c)?,
                    ln2: norm(w, &format!("{b}.ln2"), c)?,
                    att: TimeMix::new(cfg, i, w, &format!("{b}.att"))?,
                    ffn: ChannelMix::new(cfg, w, &format!("{b}.ffn"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: *cfg,
            emb: w.matrix("emb.weight", (cfg.vocab, c))?,
            ln0: norm(w, "blocks.0.ln0", c)?,
            blocks,
            ln_out: norm(w, "ln_out", c)?,
            head: w.matrix("head.weight", (cfg.vocab, c))?,
            chunk_len: DEFAULT_CHUNK_LEN,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// How the matrices are stored, as llama.cpp names the type: the one holding most
    /// of their weights when they mix types (a q8_0 GGUF keeps RWKV's decay LoRA in f32
    /// and rows that do not split into blocks of 32 in f16).
    pub fn storage(&self) -> String {
        main_storage(self.matrices())
    }

    /// Bytes of the weights as stored: the matrices in their storage type, every other
    /// tensor of the checkpoint at f32 (layer 0's unused value LoRA included).
    pub fn weight_bytes(&self) -> usize {
        let vectors = 4 * self.cfg.param_count() as usize;
        let (matrices, f32_equivalent) = self.matrices().fold((0, 0), |(b, e), m| {
            let (o, i) = m.dims().unwrap_or((0, 0));
            (b + m.bytes(), e + 4 * o * i)
        });
        vectors - f32_equivalent + matrices
    }

    fn matrices(&self) -> impl Iterator<Item = &Matrix> {
        [&self.emb, &self.head].into_iter().chain(
            self.blocks
                .iter()
                .flat_map(|b| b.att.matrices().chain(b.ffn.matrices())),
        )
    }

    /// Tokens processed per pass through the blocks when a prompt is longer.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// Sets the prompt chunk length (at least 1).
    pub fn set_chunk_len(&mut self, tokens: usize) {
        self.chunk_len = tokens.max(1);
    }

    /// Runs `tokens` through the model, continuing from `state` and updating it.
    ///
    /// Long inputs are processed in chunks of [`Model::chunk_len`] tokens with the
    /// state carried between them, so memory does not grow with `T` (except for the
    /// logits of [`Logits::All`]).
    ///
    /// # Shapes
    /// `tokens (B, T)` u32 or i64 -> logits `(B, T, V)` ([`Logits::All`]) or `(B, V)`
    /// ([`Logits::Last`]), f32. `state` must have batch size B.
    pub fn forward(&self, tokens: &Tensor, state: &mut State, logits: Logits) -> Result<Tensor> {
        // Run on a rayon worker: the parallel steps inside (a decode step has about 80)
        // then fork from within the pool, a deque push, instead of waking the pool from
        // outside with a cross-thread wake-up each.
        rayon::scope(|_| self.forward_in_pool(tokens, state, logits))
    }

    fn forward_in_pool(
        &self,
        tokens: &Tensor,
        state: &mut State,
        logits: Logits,
    ) -> Result<Tensor> {
        let (batch, seq) = tokens.dims2()?;
        if seq == 0 || batch == 0 {
            return Err(Error::Input(format!(
                "empty input of shape {:?}",
                tokens.dims()
            )));
        }
        if state.batch() != batch || state.layers.len() != self.blocks.len() {
            return Err(Error::Input(format!(
                "state of batch {} and {} layers does not fit input batch {batch} and a \
                 {}-layer model",
                state.batch(),
                state.layers.len(),
                self.blocks.len()
            )));
        }
        let tokens = tokens.to_dtype(DType::U32)?;
        let max = tokens.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if max as usize >= self.cfg.vocab {
            return Err(Error::Input(format!(
                "token {max} is out of range for a vocabulary of {}",
                self.cfg.vocab
            )));
        }
        let mut outputs = Vec::new();
        let mut start = 0;
        while start < seq {
            let len = self.chunk_len.min(seq - start);
            let hidden = self.blocks_forward(&tokens.narrow(1, start, len)?, state)?;
            start += len;
            match logits {
                Logits::All => {
                    outputs.push(self.head_forward(&hidden)?.reshape((batch, len, ()))?)
                }
                // The head runs on one row per sequence: `(B, V)`.
                Logits::Last if start == seq => {
                    return self.head_forward(&last_positions(&hidden, batch)?);
                }
                Logits::Last => {}
            }
        }
        Ok(Tensor::cat(&outputs, 1)?)
    }

    /// The residual stream after the last block, for one chunk.
    ///
    /// # Shapes
    /// `tokens (B, T)` u32 -> `(B*T, C)`
    fn blocks_forward(&self, tokens: &Tensor, state: &mut State) -> Result<Tensor> {
        let batch = tokens.dim(0)?;
        let ids = tokens.flatten_all()?;
        let x = layer_norm(&self.emb.embed(&ids)?, &self.ln0)?;
        let mut v_first = None;
        for (block, layer_state) in self.blocks.iter().zip(state.layers.iter_mut()) {
            let xa = layer_norm(&x, &block.ln1)?;
            let att = block.att.forward(&xa, batch, layer_state, &mut v_first)?;
            x.inplace_op2(&att, &AddAssign)?;
            let xf = layer_norm(&x, &block.ln2)?;
            let ffn = block.ffn.forward(&xf, batch, layer_state)?;
            x.inplace_op2(&ffn, &AddAssign)?;
        }
        Ok(x)
    }

    /// # Shapes
    /// `(R, C)` -> `(R, V)`
    fn head_forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = layer_norm(&x.contiguous()?, &self.ln_out)?;
        Ok(linear(&x, &self.head)?)
    }
}
