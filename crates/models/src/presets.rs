//! Matched preset shapes for random-weight benchmarking.
//!
//! Each preset fixes depth, width and vocabulary for both architectures; the Llama
//! intermediate size is chosen so that parameter counts agree within 1 %, so a
//! comparison is architecture against architecture, not size against size. At 0.1b and
//! up it is a multiple of 256 where that stays within 1 % (0.4b: of 32), so that q4_k
//! blocks split `down_proj`'s rows as they split every RWKV-7 projection's.

use serde::Serialize;

/// The RWKV-7 specific part of a preset.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RwkvShape {
    pub head_size: usize,
    pub ffn: usize,
    /// LoRA widths of the decay, in-context-rate, value-residual and gate projections.
    pub lora_w: usize,
    pub lora_a: usize,
    pub lora_v: usize,
    pub lora_g: usize,
}

/// The Llama specific part of a preset.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LlamaShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    pub max_position_embeddings: usize,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Preset {
    pub name: &'static str,
    pub layers: usize,
    pub width: usize,
    pub vocab: usize,
    pub rwkv: RwkvShape,
    pub llama: LlamaShape,
}

/// Every preset. LoRA widths follow the official RWKV-7 releases of that size; the
/// Llama MLP width is `(2 * ffn + 2 * sum(lora)) / 3`, rounded to a multiple of 8.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "tiny",
        layers: 4,
        width: 128,
        vocab: 512,
        rwkv: RwkvShape {
            head_size: 64,
            ffn: 512,
            lora_w: 16,
            lora_a: 16,
            lora_v: 8,
            lora_g: 32,
        },
        llama: LlamaShape {
            heads: 2,
            kv_heads: 2,
            intermediate: 392,
            max_position_embeddings: 8192,
        },
    },
    Preset {
        name: "0.1b",
        layers: 12,
        width: 768,
        vocab: 65536,
        rwkv: RwkvShape {
            head_size: 64,
            ffn: 3072,
            lora_w: 64,
            lora_a: 64,
            lora_v: 32,
            lora_g: 128,
        },
        llama: LlamaShape {
            heads: 12,
            kv_heads: 12,
            intermediate: 2304,
            max_position_embeddings: 32768,
        },
    },
    Preset {
        name: "0.4b",
        layers: 24,
        width: 1024,
        vocab: 65536,
        rwkv: RwkvShape {
            head_size: 64,
            ffn: 4096,
            lora_w: 64,
            lora_a: 64,
            lora_v: 32,
            lora_g: 128,
        },
        llama: LlamaShape {
            heads: 16,
            kv_heads: 16,
            intermediate: 2944,
            max_position_embeddings: 32768,
        },
    },
    Preset {
        name: "1.5b",
        layers: 24,
        width: 2048,
        vocab: 65536,
        rwkv: RwkvShape {
            head_size: 64,
            ffn: 8192,
            lora_w: 96,
            lora_a: 96,
            lora_v: 64,
            lora_g: 256,
        },
        llama: LlamaShape {
            heads: 32,
            kv_heads: 32,
            intermediate: 5888,
            max_position_embeddings: 32768,
        },
    },
    // RWKV-7 World/G1 2.9B's shape (L32 D2560, LoRA ranks by the official formulas).
    Preset {
        name: "3b",
        layers: 32,
        width: 2560,
        vocab: 65536,
        rwkv: RwkvShape {
            head_size: 64,
            ffn: 10240,
            lora_w: 96,
            lora_a: 96,
            lora_v: 64,
            lora_g: 320,
        },
        llama: LlamaShape {
            heads: 40,
            kv_heads: 40,
            intermediate: 7168,
            max_position_embeddings: 32768,
        },
    },
    // The recall study's shapes (Zoology's: two layers, widths 64 to 256), over the
    // 1024-id vocabulary of the shipped recall tokenizer.
    Preset {
        name: "recall-64",
        layers: 2,
        width: 64,
        vocab: 1024,
        rwkv: RwkvShape {
            head_size: 64,
            ffn: 256,
            lora_w: 16,
            lora_a: 16,
            lora_v: 8,
            lora_g: 16,
        },
        llama: LlamaShape {
            heads: 1,
            kv_heads: 1,
            intermediate: 208,
            max_position_embeddings: 65536,
        },
    },
    Preset {
        name: "recall-128",
        layers: 2,
        width: 128,
        vocab: 1024,
        rwkv: RwkvShape {
            head_size: 64,
            ffn: 512,
            lora_w: 16,
            lora_a: 16,
            lora_v: 8,
            lora_g: 32,
        },
        llama: LlamaShape {
            heads: 2,
            kv_heads: 2,
            intermediate: 392,
            max_position_embeddings: 65536,
        },
    },
    Preset {
        name: "recall-256",
        layers: 2,
        width: 256,
        vocab: 1024,
        rwkv: RwkvShape {
            head_size: 64,
            ffn: 1024,
            lora_w: 32,
            lora_a: 32,
            lora_v: 16,
            lora_g: 64,
        },
        llama: LlamaShape {
            heads: 4,
            kv_heads: 4,
            intermediate: 776,
            max_position_embeddings: 65536,
        },
    },
];

/// Looks a preset up by name.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The preset names, for error messages.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

impl Preset {
    /// The RWKV-7 configuration of this preset.
    pub fn rwkv_config(&self) -> rwkv::Config {
        let r = &self.rwkv;
        rwkv::Config {
            vocab: self.vocab,
            width: self.width,
            layers: self.layers,
            heads: self.width / r.head_size,
            head_size: r.head_size,
            ffn: r.ffn,
            lora: rwkv::LoraDims {
                decay: r.lora_w,
                iclr: r.lora_a,
                value: r.lora_v,
                gate: r.lora_g,
            },
        }
    }

    /// The Llama configuration of this preset: untied head, no biases, rope theta 1e4,
    /// RMSNorm eps 1e-5.
    pub fn llama_config(&self) -> transformer::Config {
        let l = &self.llama;
        transformer::Config {
            vocab_size: self.vocab,
            hidden_size: self.width,
            intermediate_size: l.intermediate,
            num_hidden_layers: self.layers,
            num_attention_heads: l.heads,
            num_key_value_heads: l.kv_heads,
            head_dim: self.width / l.heads,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            max_position_embeddings: l.max_position_embeddings,
            tie_word_embeddings: false,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            checkpoint_dtype: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_match_in_parameters_and_0_1b_is_the_official_size() {
        for p in PRESETS {
            let (r, l) = (
                p.rwkv_config().param_count(),
                p.llama_config().param_count(),
            );
            let gap = (r as f64 - l as f64).abs() / r as f64;
            assert!(gap < 0.01, "{}: rwkv {r} vs llama {l}", p.name);
        }
        // The official RWKV-7 World 0.1B (L12 D768) has 191.0 M parameters.
        let n = preset("0.1b").unwrap().rwkv_config().param_count();
        assert!((190_000_000..192_000_000).contains(&n), "{n}");
    }
}
