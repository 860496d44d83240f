//! candle-transformers' own `rwkv_v7`, as a peer to beat and an oracle to agree with.
//!
//! Its `forward_seq` runs every token through every block one at a time: the prompt is
//! processed as a sequence of single-token steps, not as batched matrix work.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::rwkv_v7::{Config, Model, ModelVersion, State};
use results::{Arch, ModelInfo, ModelSpec, Weights};

use crate::checkpoint::{checkpoint_error, dims_of, read_tensors};
use crate::implementation::{
    checkpoint_weights, random_weights, About, BuildOptions, Implementation, Shape,
};
use crate::model::CausalLm;
use crate::presets::Preset;
use crate::synthetic::{materialise, rwkv7_specs};
use crate::Result;

/// candle-transformers' `rwkv_v7`, `rwkv7-upstream` in specs.
pub struct UpstreamRwkv7Impl;

const ABOUT: About = About {
    name: "rwkv7-upstream",
    arch: Arch::Rwkv,
    description: "candle-transformers 0.11 rwkv_v7: prompt processed token by token (forward_seq \
     loops over tokens through every block), state update as a full HxNxN matmul",
};

impl Implementation for UpstreamRwkv7Impl {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn build_from_preset(
        &self,
        spec: &ModelSpec,
        preset: &Preset,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>> {
        let tensors = materialise(
            &rwkv7_specs(preset),
            opts.seed,
            opts.compute_dtype(spec, ABOUT.name)?,
            &opts.device,
        )?;
        Ok(Box::new(self.build(
            spec,
            tensors,
            opts,
            random_weights(preset, opts),
        )?))
    }

    /// An official `.pth` or a safetensors file with the same keys.
    fn build_from_path(
        &self,
        spec: &ModelSpec,
        path: &Path,
        opts: &BuildOptions,
    ) -> Result<Box<dyn CausalLm>> {
        let tensors = read_tensors(path, opts.compute_dtype(spec, ABOUT.name)?, &opts.device)?;
        if tensors
            .keys()
            .any(|k| k.contains("time_faaaa") || k.contains("time_decay"))
        {
            return Err(checkpoint_error(
                path,
                "this is an RWKV-5/6 checkpoint (x052/x060 keys such as `time_decay`); rwkv7 needs x070 keys",
            ));
        }
        Ok(Box::new(self.build(
            spec,
            tensors,
            opts,
            checkpoint_weights(path),
        )?))
    }
}

pub struct UpstreamRwkv7 {
    model: Model,
    cfg: Config,
    state: State,
    opts: BuildOptions,
    info: ModelInfo,
}

impl UpstreamRwkv7Impl {
    fn build(
        &self,
        spec: &ModelSpec,
        tensors: HashMap<String, Tensor>,
        opts: &BuildOptions,
        weights: Weights,
    ) -> Result<UpstreamRwkv7> {
        let here = std::path::PathBuf::from(weights.to_string());
        let here = here.as_path();
        let [vocab, width] = dims_of(&tensors, here, "emb.weight")? else {
            return Err(checkpoint_error(here, "`emb.weight` is not 2-D"));
        };
        let (vocab, width) = (*vocab, *width);
        let head_size = *dims_of(&tensors, here, "blocks.0.att.r_k")?
            .last()
            .unwrap_or(&64);
        let ffn = dims_of(&tensors, here, "blocks.0.ffn.key.weight")?[0];
        let layers = (0..)
            .take_while(|l| tensors.contains_key(&format!("blocks.{l}.ln1.weight")))
            .count();
        let params = tensors.values().map(|t| t.elem_count() as u64).sum();
        let cfg = Config {
            version: ModelVersion::V7,
            vocab_size: vocab,
            hidden_size: width,
            num_hidden_layers: layers,
            head_size,
            intermediate_size: Some(ffn),
            rescale_every: 0,
        };
        let vb =
            VarBuilder::from_tensors(tensors, opts.compute_dtype(spec, ABOUT.name)?, &opts.device);
        let model = Model::new(&cfg, vb).map_err(|e| checkpoint_error(here, e.to_string()))?;
        let state =
            State::new_with_dtype(&cfg, &opts.device, opts.compute_dtype(spec, ABOUT.name)?)?;
        let shape = Shape {
            params,
            layers,
            width,
            vocab,
            tied_embeddings: false,
        };
        let info = self.info(spec, shape, opts, weights, None);
        Ok(UpstreamRwkv7 {
            model,
            cfg,
            state,
            opts: opts.clone(),
            info,
        })
    }
}

impl UpstreamRwkv7 {
    /// The dtype it was built to compute in (checked dense at build).
    fn compute_dtype(&self) -> candle_core::DType {
        self.opts.dtype.dense().unwrap_or(candle_core::DType::F32)
    }
}

impl CausalLm for UpstreamRwkv7 {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn reset(&mut self) -> Result<()> {
        self.state = State::new_with_dtype(&self.cfg, &self.opts.device, self.compute_dtype())?;
        Ok(())
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let logits = self.model.forward_seq(tokens, &mut self.state)?;
        Ok(logits
            .flatten_to(D::Minus1)?
            .to_dtype(candle_core::DType::F32)?)
    }

    fn step(&mut self, token: u32) -> Result<Tensor> {
        let input = Tensor::new(&[[token]], &self.opts.device)?;
        let logits = self.model.forward(&input, &mut self.state, &[token])?;
        Ok(logits
            .flatten_to(D::Minus1)?
            .to_dtype(candle_core::DType::F32)?)
    }

    fn state_bytes(&self) -> usize {
        self.state
            .per_layer
            .iter()
            .flat_map(|l| [&l.att_x_prev, &l.att_kv, &l.ffn_x_prev])
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum()
    }
}
