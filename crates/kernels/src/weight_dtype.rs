//! The storage type of a model's weight matrices, named as llama.cpp names them.

use std::fmt;
use std::str::FromStr;

use candle_core::quantized::GgmlDType;
use candle_core::DType;

/// How the projection matrices (and embeddings) of a model are stored. Activations,
/// the RWKV state, norms and softmax stay f32 whatever is chosen here: 16-bit weights
/// are widened as they are read, quantised ones go through candle's k-quant kernels,
/// which quantise the activations to 8 bits on the fly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum WeightDtype {
    #[default]
    F32,
    Bf16,
    F16,
    /// 8-bit blocks of 32 with one f16 scale (8.5 bits per weight).
    Q8_0,
    /// 4-bit k-quant: super-blocks of 256 with 6-bit sub-block scales (4.5 bits per
    /// weight).
    Q4K,
}

impl WeightDtype {
    pub const ALL: [WeightDtype; 5] = [Self::F32, Self::Bf16, Self::F16, Self::Q8_0, Self::Q4K];

    /// The name in suites, specs and records: `f32`, `bf16`, `f16`, `q8_0`, `q4_k`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
            Self::Q4K => "q4_k",
        }
    }

    /// The candle tensor dtype of the unquantised ones.
    pub fn dense(self) -> Option<DType> {
        match self {
            Self::F32 => Some(DType::F32),
            Self::Bf16 => Some(DType::BF16),
            Self::F16 => Some(DType::F16),
            Self::Q8_0 | Self::Q4K => None,
        }
    }

    /// The ggml type a matrix with rows of `in_dim` weights is quantised to, for the
    /// quantised dtypes: the named one when the row splits into its blocks; otherwise a
    /// q4_k row that is not a multiple of 256 goes to q8_0 (llama.cpp picks q5_0, whose
    /// candle kernel runs at a third of our q8_0 one here; in the presets such rows are
    /// only RWKV's small LoRA matrices), and a row that is not a multiple of 32 stays f16.
    pub fn ggml_for_row(self, in_dim: usize) -> Option<GgmlDType> {
        let fits = |t: GgmlDType| in_dim.is_multiple_of(t.block_size());
        match self {
            Self::F32 | Self::Bf16 | Self::F16 => None,
            Self::Q4K if fits(GgmlDType::Q4K) => Some(GgmlDType::Q4K),
            Self::Q8_0 | Self::Q4K if fits(GgmlDType::Q8_0) => Some(GgmlDType::Q8_0),
            Self::Q8_0 | Self::Q4K => Some(GgmlDType::F16),
        }
    }

    /// The ggml type a matrix with rows of `in_dim` weights is stored as: the dense
    /// dtypes as themselves, the quantised ones as [`WeightDtype::ggml_for_row`] says.
    pub fn storage_for_row(self, in_dim: usize) -> GgmlDType {
        match self {
            Self::F32 => GgmlDType::F32,
            Self::Bf16 => GgmlDType::BF16,
            Self::F16 => GgmlDType::F16,
            Self::Q8_0 | Self::Q4K => self.ggml_for_row(in_dim).unwrap_or(GgmlDType::F16),
        }
    }

    /// Bits per weight of a matrix stored in this dtype (block scales included).
    pub fn bits_per_weight(self) -> f64 {
        match self {
            Self::F32 => 32.0,
            Self::Bf16 | Self::F16 => 16.0,
            Self::Q8_0 => 8.5,
            Self::Q4K => 4.5,
        }
    }
}

impl fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WeightDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown weight dtype `{s}` (known: {})",
                    Self::ALL.map(|d| d.name()).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_known() {
        for d in WeightDtype::ALL {
            assert_eq!(d.name().parse::<WeightDtype>().unwrap(), d);
        }
        let e = "q4_k_m".parse::<WeightDtype>().unwrap_err();
        assert!(e.contains("q4_k_m") && e.contains("q8_0, q4_k"), "{e}");
    }

    #[test]
    fn rows_that_do_not_split_into_blocks_fall_back_to_q8_0_then_f16() {
        assert_eq!(WeightDtype::Q4K.ggml_for_row(768), Some(GgmlDType::Q4K));
        assert_eq!(WeightDtype::Q4K.ggml_for_row(64), Some(GgmlDType::Q8_0));
        assert_eq!(WeightDtype::Q8_0.ggml_for_row(64), Some(GgmlDType::Q8_0));
        assert_eq!(WeightDtype::Q8_0.ggml_for_row(40), Some(GgmlDType::F16));
        assert_eq!(WeightDtype::Bf16.ggml_for_row(768), None);
    }
}
