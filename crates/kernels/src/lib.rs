//! What the two model crates (`rwkv`, `transformer`) share: the [`Logits`] contract of
//! their forwards, their weight matrices in any storage type ([`Matrix`],
//! [`WeightDtype`]) and where they come from ([`WeightSource`], [`gguf`]), and the
//! vectorised f32 building blocks of their CPU kernels with the runtime choice of
//! instruction set ([`dispatch!`]).
//!
//! The model crates build for baseline x86-64. Their kernels are `#[inline(always)]`
//! bodies made of the functions here, compiled once per instruction set by
//! [`dispatch!`]; these functions are `#[inline(always)]` too, so that they vectorise
//! inside those `#[target_feature]` functions rather than being called as baseline code.

pub mod avx512;
mod bf16_gemm;
mod dispatch;
pub mod gguf;
mod half_gemv;
mod logits;
mod matrix;
mod mul_add;
mod quant_gemv;
mod simd;
#[cfg(test)]
mod test_util;
mod transpose;
mod weight_dtype;
mod weights;
pub mod x86;

pub use bf16_gemm::bf16_matmul_t;
pub use half_gemv::{half_matmul_t, Half, HalfGemv, HALF_GEMV_MAX_ROWS};
pub use logits::Logits;
pub use matrix::{ggml_name, main_storage, main_type, Matrix};
pub use mul_add::{Fused, MulAdd, Unfused};
pub use quant_gemv::{quant_matmul_t, QUANT_GEMV_MAX_ROWS};
pub use simd::{dot, dot_mul_add, exp, max_of, sigmoid, sum, LANES};
pub use transpose::untranspose;
pub use weight_dtype::WeightDtype;
pub use weights::{VarBuilderWeights, WeightSource};
