//! A weight matrix in the storage type a model was built or loaded with.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Result, Tensor};

use crate::half_gemv::half_matmul_t;
use crate::quant_gemv::quant_matmul_t;
use crate::WeightDtype;

/// An `nn.Linear` weight `[out, in]` (or an embedding table `[vocab, width]`), stored
/// in f32, bf16, f16 or a ggml block type. Every product takes and returns f32.
#[derive(Debug, Clone)]
pub enum Matrix {
    /// f32, bf16 or f16, contiguous.
    Dense(Tensor),
    /// ggml blocks (q8_0, q4_k, q5_0, …): candle's quantised CPU kernels, which
    /// quantise the activations to 8 bits per row on the fly.
    Quantized(Arc<QTensor>),
}

impl Matrix {
    /// `w` (any float dtype, `[out, in]`) stored as `dtype`. A quantised dtype whose
    /// blocks do not split the rows falls back as llama.cpp does
    /// ([`WeightDtype::ggml_for_row`]).
    pub fn new(w: &Tensor, dtype: WeightDtype) -> Result<Self> {
        let (_, in_dim) = w.dims2()?;
        let dense = |d: DType| Ok(Self::Dense(w.to_dtype(d)?.contiguous()?));
        match dtype.storage_for_row(in_dim) {
            GgmlDType::F32 => dense(DType::F32),
            GgmlDType::BF16 => dense(DType::BF16),
            GgmlDType::F16 => dense(DType::F16),
            q => Ok(Self::Quantized(Arc::new(QTensor::quantize(w, q)?))),
        }
    }

    /// A matrix as a GGUF file stores it: float types become dense tensors, block
    /// types stay as they are.
    pub fn from_qtensor(q: Arc<QTensor>) -> Result<Self> {
        let dense = match q.dtype() {
            GgmlDType::F32 => DType::F32,
            GgmlDType::F16 => DType::F16,
            GgmlDType::BF16 => DType::BF16,
            _ => return Ok(Self::Quantized(q)),
        };
        Ok(Self::Dense(q.dequantize(&q.device())?.to_dtype(dense)?))
    }

    /// `(out, in)`.
    pub fn dims(&self) -> Result<(usize, usize)> {
        match self {
            Self::Dense(t) => t.dims2(),
            Self::Quantized(q) => q.shape().dims2(),
        }
    }

    /// The storage type as llama.cpp names it: `f32`, `bf16`, `q8_0`, `q4_k`, `q5_0`, …
    pub fn storage(&self) -> String {
        match self {
            Self::Dense(t) => format!("{:?}", t.dtype()).to_lowercase(),
            Self::Quantized(q) => ggml_name(q.dtype()),
        }
    }

    /// Bytes the weights take.
    pub fn bytes(&self) -> usize {
        match self {
            Self::Dense(t) => t.elem_count() * t.dtype().size_in_bytes(),
            Self::Quantized(q) => q.storage_size_in_bytes(),
        }
    }

    /// The f32 tensor, when the matrix is stored in f32 (for kernels of the model
    /// crates that take f32 weights directly).
    pub fn as_f32(&self) -> Option<&Tensor> {
        match self {
            Self::Dense(t) if t.dtype() == DType::F32 => Some(t),
            _ => None,
        }
    }

    /// The weights widened to f32 (for tests and accuracy checks).
    pub fn to_f32(&self) -> Result<Tensor> {
        match self {
            Self::Dense(t) => t.to_dtype(DType::F32),
            Self::Quantized(q) => q.dequantize(&q.device()),
        }
    }

    /// `x @ wᵀ`.
    ///
    /// # Shapes
    /// `x [M, in]` f32 -> `[M, out]` f32
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(w) if w.dtype() == DType::F32 => x.matmul(&w.t()?),
            Self::Dense(w) => half_matmul_t(x, w),
            Self::Quantized(q) => match quant_matmul_t(q, x)? {
                Some(y) => Ok(y),
                None => x.contiguous()?.apply_op1_no_bwd(q.as_ref()),
            },
        }
    }

    /// The rows `ids` of an embedding table, as f32.
    ///
    /// # Shapes
    /// `ids [N]` u32 -> `[N, in]` f32
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(w) => w.index_select(ids, 0)?.to_dtype(DType::F32),
            Self::Quantized(q) => q.embedding(ids),
        }
    }
}

/// The storage type ([`Matrix::storage`]) that holds most of the weights of `matrices`,
/// counted in weights: what a model is stored in when its matrices mix types (llama.cpp
/// keeps some small ones in f32 or f16 in a q8_0 file). `f32` when there are none.
pub fn main_storage<'a>(matrices: impl IntoIterator<Item = &'a Matrix>) -> String {
    main_type(matrices.into_iter().map(|m| {
        let (o, i) = m.dims().unwrap_or((0, 0));
        (m.storage(), o * i)
    }))
}

/// The storage type that holds most weights of `(type, weights)` pairs; `f32` when there
/// are none.
pub fn main_type(types: impl IntoIterator<Item = (String, usize)>) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for (s, n) in types {
        match counts.iter_mut().find(|(k, _)| *k == s) {
            Some((_, c)) => *c += n,
            None => counts.push((s, n)),
        }
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map_or_else(|| "f32".into(), |(s, _)| s)
}

/// llama.cpp's name of a ggml type (`q4_k`, `q8_0`, `bf16`).
pub fn ggml_name(t: GgmlDType) -> String {
    let s = format!("{t:?}").to_lowercase();
    // candle spells the k-quants `Q4K`; llama.cpp `q4_K`.
    match s.strip_suffix('k') {
        Some(head) => format!("{head}_k"),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};

    fn weights(n: usize, k: usize) -> Tensor {
        let v: Vec<f32> = (0..n * k)
            .map(|i| ((i as f32) * 0.37).sin() * 0.5)
            .collect();
        Tensor::from_vec(v, (n, k), &Device::Cpu).unwrap()
    }

    /// The smallest per-row cosine similarity of two `[M, N]` products.
    fn min_cosine(a: &Tensor, b: &Tensor) -> f32 {
        let dot = (a * b).unwrap().sum(D::Minus1).unwrap();
        let na = a.sqr().unwrap().sum(D::Minus1).unwrap().sqrt().unwrap();
        let nb = b.sqr().unwrap().sum(D::Minus1).unwrap().sqrt().unwrap();
        let cos = (dot / (na * nb).unwrap()).unwrap();
        cos.min(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn every_dtype_multiplies_and_embeds_close_to_f32() {
        let (n, k) = (64, 512);
        let w = weights(n, k);
        let ids = Tensor::new(&[3u32, 0, 63], &Device::Cpu).unwrap();
        for (dtype, storage, bytes, cos) in [
            (WeightDtype::F32, "f32", n * k * 4, 0.999_999),
            (WeightDtype::Bf16, "bf16", n * k * 2, 0.9999),
            (WeightDtype::F16, "f16", n * k * 2, 0.999_99),
            (WeightDtype::Q8_0, "q8_0", n * k / 32 * 34, 0.9999),
            (WeightDtype::Q4K, "q4_k", n * k / 256 * 144, 0.99),
        ] {
            let m = Matrix::new(&w, dtype).unwrap();
            assert_eq!(m.storage(), storage);
            assert_eq!(m.bytes(), bytes, "{dtype}");
            assert_eq!(m.dims().unwrap(), (n, k));
            for rows in [1, 7] {
                let x = weights(rows, k);
                let want = x.matmul(&w.t().unwrap()).unwrap();
                let got = m.forward(&x).unwrap();
                assert!(min_cosine(&got, &want) > cos, "{dtype} rows {rows}");
            }
            let e = m.embed(&ids).unwrap();
            let want = w.index_select(&ids, 0).unwrap();
            assert!(min_cosine(&e, &want) > cos, "{dtype} embed");
        }
    }

    #[test]
    fn rows_that_do_not_split_into_blocks_fall_back() {
        let m = Matrix::new(&weights(8, 64), WeightDtype::Q4K).unwrap();
        assert_eq!(m.storage(), "q8_0");
        let m = Matrix::new(&weights(8, 40), WeightDtype::Q8_0).unwrap();
        assert_eq!(m.storage(), "f16");
    }
}
