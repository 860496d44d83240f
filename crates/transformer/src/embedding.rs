//! The token embedding, its table stored like the linear layers ([`Matrix`]).

use candle_core::{DType, Tensor};
use kernels::Matrix;

use crate::Result;

#[derive(Debug, Clone)]
pub struct Embedding {
    /// `(vocab, hidden)`.
    table: Matrix,
    /// The compute dtype rows are returned in.
    dtype: DType,
}

impl Embedding {
    pub fn new(table: Matrix, dtype: DType) -> Self {
        Self { table, dtype }
    }

    pub fn table(&self) -> &Matrix {
        &self.table
    }

    /// # Shapes
    /// `tokens (B, T)` -> `(B, T, hidden)` in the compute dtype.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let ids = tokens.flatten_all()?.to_dtype(DType::U32)?;
        let rows = match &self.table {
            Matrix::Dense(w) if w.dtype() == self.dtype => w.index_select(&ids, 0)?,
            m => m.embed(&ids)?.to_dtype(self.dtype)?,
        };
        Ok(rows.reshape((b, t, ()))?)
    }
}
