//! Where a model's weights come from: one trait, so that each model has one
//! constructor whether its tensors come from a checkpoint through a candle
//! [`VarBuilder`] (stored in a chosen [`WeightDtype`]) or from a GGUF file (stored as the
//! file stores them; see [`crate::gguf`]).

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use crate::{Matrix, WeightDtype};

/// The tensors of a checkpoint, asked for under the names of the model's own checkpoint
/// format (official RWKV-7 keys, Hugging Face Llama names); a source of another format
/// maps the names and undoes its converter's transforms, so that every model sees the
/// same numbers whatever the file.
pub trait WeightSource {
    fn device(&self) -> &Device;

    /// The dtype [`WeightSource::tensor`] returns.
    fn dtype(&self) -> DType;

    /// An `nn.Linear` weight `[out, in]` (or an embedding table `[vocab, width]`).
    fn matrix(&self, name: &str, shape: (usize, usize)) -> Result<Matrix>;

    /// A matrix the checkpoint stores as `[in, out]` (RWKV's LoRA factors, applied as
    /// `x @ w`), returned in the `nn.Linear` layout `[out, in]` of `shape`.
    fn matrix_t(&self, name: &str, shape: (usize, usize)) -> Result<Matrix>;

    /// Any other tensor (norms, biases, mixing vectors), in [`WeightSource::dtype`].
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor>;
}

/// A var builder's tensors, the matrices stored as `dtype` (each converted as it is
/// read, so the f32 copies never coexist). [`WeightDtype::F32`] keeps a matrix in the
/// var builder's dtype, as read.
pub struct VarBuilderWeights<'a> {
    vb: VarBuilder<'a>,
    dtype: WeightDtype,
}

impl<'a> VarBuilderWeights<'a> {
    pub fn new(vb: VarBuilder<'a>, dtype: WeightDtype) -> Self {
        Self { vb, dtype }
    }

    fn stored(&self, w: Tensor) -> Result<Matrix> {
        match self.dtype {
            WeightDtype::F32 => Ok(Matrix::Dense(w.contiguous()?)),
            d => Matrix::new(&w, d),
        }
    }
}

impl WeightSource for VarBuilderWeights<'_> {
    fn device(&self) -> &Device {
        self.vb.device()
    }

    fn dtype(&self) -> DType {
        self.vb.dtype()
    }

    fn matrix(&self, name: &str, shape: (usize, usize)) -> Result<Matrix> {
        self.stored(self.vb.get(shape, name)?)
    }

    fn matrix_t(&self, name: &str, (out_dim, in_dim): (usize, usize)) -> Result<Matrix> {
        self.stored(self.vb.get((in_dim, out_dim), name)?.t()?)
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.vb.get(shape, name)
    }
}
