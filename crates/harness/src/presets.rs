//! Matched preset shapes for random-weight benchmarking.
//!
//! Each preset fixes depth, width and vocabulary for both architectures; the Llama
//! intermediate size is chosen so that parameter counts agree within 1 %, so a
//! comparison is architecture against architecture, not size against size.

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
            intermediate: 2240,
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
            intermediate: 2928,
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
            intermediate: 5808,
            max_position_embeddings: 32768,
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
