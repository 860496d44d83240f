//! A preallocated key/value cache: one buffer per layer, written in place, grown by
//! doubling when a forward needs more room than it has.
//!
//! Appending `t` positions copies only those `t` rows (amortised O(1) per position),
//! unlike concatenating a new tensor every step. On the CPU a fresh buffer comes from
//! zeroed pages that the OS maps only when written, so resident memory follows the
//! positions in use, not the capacity.

use candle_core::{DType, Device, Tensor};

use crate::config::Config;
use crate::{Error, Result};

/// The smallest capacity a growing cache moves to, so that short prompts followed by
/// decode steps do not regrow every few tokens.
const MIN_GROWTH: usize = 64;

/// Keys and values of one layer.
#[derive(Debug, Clone)]
struct LayerKv {
    /// Shape `(B, kv_heads, capacity, head_dim)`, the cache dtype; rows `..len` valid.
    k: Tensor,
    /// Shape `(B, kv_heads, capacity, head_dim)`, the cache dtype; rows `..len` valid.
    v: Tensor,
}

/// The KV cache of every layer. The caller owns it and passes it to each forward.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    /// Positions held (committed by completed forwards).
    len: usize,
    capacity: usize,
    batch: usize,
    kv_heads: usize,
    head_dim: usize,
    dtype: DType,
    device: Device,
}

impl KvCache {
    /// An empty cache for `batch` sequences with room for `capacity` positions.
    pub fn new(
        cfg: &Config,
        batch: usize,
        capacity: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if batch == 0 {
            return Err(Error::Unsupported(
                "a KV cache needs a batch of at least 1".into(),
            ));
        }
        let mut cache = Self {
            layers: Vec::with_capacity(cfg.num_hidden_layers),
            len: 0,
            capacity,
            batch,
            kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
            dtype,
            device: device.clone(),
        };
        for _ in 0..cfg.num_hidden_layers {
            let k = cache.buffer(capacity)?;
            let v = cache.buffer(capacity)?;
            cache.layers.push(LayerKv { k, v });
        }
        Ok(cache)
    }

    fn buffer(&self, capacity: usize) -> Result<Tensor> {
        let shape = (self.batch, self.kv_heads, capacity, self.head_dim);
        Ok(Tensor::zeros(shape, self.dtype, &self.device)?)
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the buffers have room for before the next growth.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Whether this cache has the layers and kv-head shape of `cfg`.
    pub fn fits(&self, cfg: &Config) -> bool {
        self.layers.len() == cfg.num_hidden_layers
            && self.kv_heads == cfg.num_key_value_heads
            && self.head_dim == cfg.head_dim
    }

    /// Bytes of keys and values in use: `2 * layers * B * kv_heads * len * head_dim *
    /// dtype size` (not the capacity).
    pub fn bytes(&self) -> usize {
        2 * self.layers.len()
            * self.batch
            * self.kv_heads
            * self.len
            * self.head_dim
            * self.dtype.size_in_bytes()
    }

    /// Forgets every position; the buffers are kept for reuse.
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Forgets the positions after the first `len` (no-op if it holds fewer), e.g. to
    /// rerun a step from the same context.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The valid keys and values of `layer`.
    ///
    /// # Shapes
    /// Two views of shape `(B, kv_heads, len, head_dim)` into the buffers.
    pub fn layer(&self, layer: usize) -> Result<(Tensor, Tensor)> {
        let l = self.layers.get(layer).ok_or_else(|| {
            Error::Unsupported(format!(
                "layer {layer} out of range ({} layers)",
                self.layers.len()
            ))
        })?;
        Ok((l.k.narrow(2, 0, self.len)?, l.v.narrow(2, 0, self.len)?))
    }

    /// Makes room for `extra` more positions, doubling the capacity when it grows.
    pub(crate) fn reserve(&mut self, extra: usize) -> Result<()> {
        let needed = self.len + extra;
        if needed <= self.capacity {
            return Ok(());
        }
        let capacity = needed.max(2 * self.capacity).max(MIN_GROWTH);
        // Layer by layer, so that only one layer exists twice at any moment.
        for i in 0..self.layers.len() {
            let k = self.buffer(capacity)?;
            let v = self.buffer(capacity)?;
            if self.capacity > 0 {
                // Rows past `len` are either unused zeros or overwritten by the coming
                // append (it needs more than the old capacity), so copying whole old
                // buffers copies nothing that stays unused.
                k.slice_set(&self.layers[i].k, 2, 0)?;
                v.slice_set(&self.layers[i].v, 2, 0)?;
            }
            self.layers[i] = LayerKv { k, v };
        }
        self.capacity = capacity;
        Ok(())
    }

    /// Writes the keys and values of `t` new positions of `layer` after the committed
    /// ones and returns the whole buffers. Positions count only after [`commit`].
    ///
    /// # Shapes
    /// `k`, `v`: `(B, t, kv_heads, head_dim)`; returns two `(B, kv_heads, capacity,
    /// head_dim)` buffers whose rows `..len + t` are valid.
    ///
    /// [`commit`]: KvCache::commit
    pub(crate) fn write(&self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let l = self.layers.get(layer).ok_or_else(|| {
            Error::Unsupported(format!(
                "layer {layer} out of range ({} layers)",
                self.layers.len()
            ))
        })?;
        let t = k.dim(1)?;
        if self.len + t > self.capacity {
            return Err(Error::Unsupported(format!(
                "KV cache write of {t} positions at {} exceeds capacity {} (reserve first)",
                self.len, self.capacity
            )));
        }
        let stored = |x: &Tensor| -> Result<Tensor> {
            Ok(x.transpose(1, 2)?.contiguous()?.to_dtype(self.dtype)?)
        };
        l.k.slice_set(&stored(k)?, 2, self.len)?;
        l.v.slice_set(&stored(v)?, 2, self.len)?;
        Ok((l.k.clone(), l.v.clone()))
    }

    /// Counts `t` positions written to every layer as held.
    pub(crate) fn commit(&mut self, t: usize) {
        self.len += t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_doubling_and_keeps_rows() {
        let cfg = Config::tiny();
        let dev = Device::Cpu;
        let mut c = KvCache::new(&cfg, 1, 2, DType::F32, &dev).unwrap();
        let row = |x: f32| Tensor::full(x, (1, 1, cfg.num_key_value_heads, cfg.head_dim), &dev);
        for step in 0..3 {
            c.reserve(1).unwrap();
            for layer in 0..cfg.num_hidden_layers {
                let r = row(step as f32).unwrap();
                c.write(layer, &r, &r).unwrap();
            }
            c.commit(1);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.capacity(), MIN_GROWTH);
        let (k, _) = c.layer(1).unwrap();
        let firsts: Vec<f32> = k
            .narrow(3, 0, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(&firsts[..3], &[0.0, 1.0, 2.0]);
        c.reserve(MIN_GROWTH).unwrap();
        assert_eq!(c.capacity(), 2 * MIN_GROWTH);
        let bytes = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * 3 * cfg.head_dim * 4;
        assert_eq!(c.bytes(), bytes);
        c.reset();
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }
}
