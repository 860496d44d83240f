//! Products with q8_0, q4_k and q6_k weights on x86 CPUs with AVX2.
//!
//! candle 0.11's quantised CPU matmul reaches about 3 GB/s of weights on this 2-core
//! AVX2 machine (a decode step is bound at ~20 GB/s), and its prefill path is 4x slower
//! than f32. A decode step here quantises its few activation rows once (blocks of 32
//! for q8_0, of 256 with per-32 sums for q4_k) and streams each weight row once with
//! every core through [`crate::x86`]'s block dot products ([`crate::avx512`]'s with
//! AVX512-VNNI). A prompt chunk (more rows, bound by arithmetic) dequantises weight rows
//! with candle's own block decoders and multiplies through [`crate::bf16_gemm`] on
//! AVX512-BF16 CPUs, in f32 tiles elsewhere.

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, BlockQ8_0, GgmlType};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Result, Tensor};
use rayon::prelude::*;

use crate::{avx512, bf16_gemm, x86};

/// Inputs with at most this many rows go through the block dot products.
pub const QUANT_GEMV_MAX_ROWS: usize = 4;

/// Output rows per parallel task of a decode product.
const BLOCK: usize = 32;

/// Weight bytes below which a decode product runs on one thread.
const PARALLEL_MIN: usize = 1 << 17;

/// Dequantised f32 bytes per tile of a prefill product.
const TILE_BYTES: usize = 4 << 20;

/// Activations quantised for one weight type: per block a scale, the bytes, and for
/// q4_k the sum of each 32 bytes.
struct Quantised {
    scales: Vec<f32>,
    bytes: Vec<i8>,
    sums: Vec<i32>,
}

/// Symmetric 8-bit quantisation of `x` exactly as ggml quantises the activations a
/// weight type is dotted with (`quantize_row_q8_0`, `quantize_row_q8_K`), so that a
/// product here equals llama.cpp's and candle's up to the order of the f32 sums: q8_0
/// blocks of 32 keep their scale in f16, q8_K blocks of 256 in f32 as `1 / (127 /
/// amax)`.
fn quantise(x: &[f32], layout: Layout) -> Quantised {
    let (block, _) = layout.block();
    let blocks = x.len() / block;
    let mut q = Quantised {
        scales: Vec::with_capacity(blocks),
        bytes: vec![0; x.len()],
        sums: Vec::with_capacity(x.len() / 32),
    };
    for (xb, qb) in x.chunks_exact(block).zip(q.bytes.chunks_exact_mut(block)) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (d, inv) = match layout {
            Layout::Q8_0 => {
                let d = amax / 127.0;
                let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
                (half::f16::from_f32(d).to_f32(), inv)
            }
            Layout::Q4K | Layout::Q6K if amax == 0.0 => (0.0, 0.0),
            Layout::Q4K | Layout::Q6K => {
                let inv = 127.0 / amax;
                (1.0 / inv, inv)
            }
        };
        for (o, v) in qb.iter_mut().zip(xb) {
            *o = (v * inv).round() as i8;
        }
        q.scales.push(d);
        q.sums.extend(
            qb.chunks_exact(32)
                .map(|s| s.iter().map(|&v| v as i32).sum::<i32>()),
        );
    }
    q
}

/// Which block layout a tensor has, if the kernels here take it.
#[derive(Clone, Copy)]
enum Layout {
    Q8_0,
    Q4K,
    /// The head and some `ffn_down` / `attn_v` of llama.cpp's `Q4_K_M` files.
    Q6K,
}

impl Layout {
    fn of(q: &QTensor) -> Option<Self> {
        match q.dtype() {
            GgmlDType::Q8_0 => Some(Self::Q8_0),
            GgmlDType::Q4K => Some(Self::Q4K),
            GgmlDType::Q6K => Some(Self::Q6K),
            _ => None,
        }
    }

    /// (values, bytes) per block.
    fn block(self) -> (usize, usize) {
        match self {
            Self::Q8_0 => (32, 34),
            Self::Q4K => (256, 144),
            Self::Q6K => (256, 210),
        }
    }
}

/// `x @ wᵀ` for f32 `x [M, K]` and a q8_0 or q4_k `w [N, K]`, where this module handles
/// them (x86 with AVX2, CPU tensors); `None` otherwise.
pub fn quant_matmul_t(w: &QTensor, x: &Tensor) -> Result<Option<Tensor>> {
    let Some(layout) = Layout::of(w) else {
        return Ok(None);
    };
    if !x.device().is_cpu() || !x86::available() {
        return Ok(None);
    }
    let x = x.contiguous()?;
    let (m, k) = x.dims2()?;
    let (n, k2) = w.shape().dims2()?;
    if k != k2 {
        candle_core::bail!("quantised product: x {:?}, w {:?}", x.dims(), w.shape())
    }
    let data = w.data()?;
    if m > QUANT_GEMV_MAX_ROWS {
        return prefill(&data, layout, &x, (n, k)).map(Some);
    }
    let flat = x.flatten_all()?.to_vec1::<f32>()?;
    let (per_block, block_bytes) = layout.block();
    let row_bytes = k / per_block * block_bytes;
    let acts: Vec<Quantised> = flat.chunks_exact(k).map(|r| quantise(r, layout)).collect();
    let wide = avx512::has_vnni();
    let mut yt = vec![0f32; n * m];
    let task = |(blk, out): (usize, &mut [f32])| {
        for (r, o) in out.chunks_exact_mut(m).enumerate() {
            let row = blk * BLOCK + r;
            let wr = &data[row * row_bytes..(row + 1) * row_bytes];
            for (o, a) in o.iter_mut().zip(&acts) {
                *o = dot(layout, wide, wr, a);
            }
        }
    };
    if data.len() >= PARALLEL_MIN {
        yt.par_chunks_mut(BLOCK * m).enumerate().for_each(task);
    } else {
        yt.chunks_mut(BLOCK * m).enumerate().for_each(task);
    }
    let y = crate::untranspose(yt, m, n);
    Tensor::from_vec(y, (m, n), x.device()).map(Some)
}

/// One row's dot product; `wide` where the CPU passed [`avx512::has_vnni`].
fn dot(layout: Layout, wide: bool, w: &[u8], a: &Quantised) -> f32 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `quant_matmul_t` checked `x86::available()` (and `wide` the AVX-512
    // features); the lengths follow from the row's block count.
    unsafe {
        match (layout, wide) {
            (Layout::Q8_0, true) => avx512::dot_q8_0(w, &a.scales, &a.bytes),
            (Layout::Q4K, true) => avx512::dot_q4_k(w, &a.scales, &a.bytes, &a.sums),
            (Layout::Q8_0, false) => x86::dot_q8_0(w, &a.scales, &a.bytes),
            (Layout::Q4K, false) => x86::dot_q4_k(w, &a.scales, &a.bytes, &a.sums),
            (Layout::Q6K, _) => x86::dot_q6_k(w, &a.scales, &a.bytes),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("x86::available() is false elsewhere: {layout:?} {wide} {w:?} {a:?}")
}

/// Dequantised weight rows times `x`: through [`bf16_gemm`] where the CPU has
/// AVX512-BF16 (a panel of rows decoded at a time and rounded to bf16, as are the
/// activations: twice the f32 multiply-adds per instruction, and both roundings finer
/// than the weights' own quantisation and than the 8-bit activations llama.cpp
/// multiplies them by), else tiles of rows in f32.
fn prefill(data: &[u8], layout: Layout, x: &Tensor, (n, k): (usize, usize)) -> Result<Tensor> {
    let (per_block, block_bytes) = layout.block();
    let row_bytes = k / per_block * block_bytes;
    if bf16_gemm::available() && k % 2 == 0 {
        let (m, _) = x.dims2()?;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let fast = avx512::has_bf16_convert();
        let y = bf16_gemm::gemm_t(&xs, (m, k, n), |start, out| {
            let rows = &data[start * row_bytes..start * row_bytes + out.len() / k * row_bytes];
            rows_to_bf16(layout, fast, rows, k, out)
        });
        return Tensor::from_vec(y, (m, n), x.device());
    }
    let tile = (TILE_BYTES / (4 * k.max(1))).clamp(16, n.max(16));
    let parts = (0..n)
        .step_by(tile)
        .map(|start| {
            let rows = tile.min(n - start);
            let mut f = vec![0f32; rows * k];
            let src = &data[start * row_bytes..(start + rows) * row_bytes];
            f.par_chunks_mut(k)
                .zip(src.par_chunks(row_bytes))
                .for_each(|(out, bytes)| decode_row(layout, bytes, out));
            let wt = Tensor::from_vec(f, (rows, k), x.device())?;
            x.matmul(&wt.t()?)
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&parts, 1)
}

/// Rows of blocks as bf16: candle's decoded values, rounded to nearest even; `fast`
/// where the CPU passed [`avx512::has_bf16_convert`] (q8_0 and q4_k decoded and rounded
/// 32 values an instruction instead of one at a time: the decoding, not the product,
/// bounded a 128-token prefill).
fn rows_to_bf16(layout: Layout, fast: bool, rows: &[u8], k: usize, out: &mut [half::bf16]) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: `fast` means the CPU has the features; `rows` is whole rows of blocks
        // and `out` holds their values.
        unsafe {
            match layout {
                Layout::Q8_0 => return avx512::q8_0_to_bf16(rows, out),
                Layout::Q4K => return avx512::q4_k_to_bf16(rows, out),
                Layout::Q6K => {}
            }
        }
    }
    let row_bytes = rows.len() / (out.len() / k);
    let mut f = vec![0f32; k];
    for (o, bytes) in out.chunks_exact_mut(k).zip(rows.chunks_exact(row_bytes)) {
        decode_row(layout, bytes, &mut f);
        bf16_gemm::round(&f, o, fast);
    }
}

/// One row of blocks as f32, with candle's decoders.
fn decode_row(layout: Layout, bytes: &[u8], out: &mut [f32]) {
    // SAFETY: the bytes are a whole number of blocks of a `#[repr(C)]` block type whose
    // fields are plain integers and f16 (any bit pattern is valid); the QTensor storage
    // they come from is a Vec of those blocks, so the alignment (2) holds.
    unsafe {
        match layout {
            Layout::Q8_0 => {
                let blocks = std::slice::from_raw_parts(
                    bytes.as_ptr() as *const BlockQ8_0,
                    bytes.len() / 34,
                );
                BlockQ8_0::to_float(blocks, out)
            }
            Layout::Q4K => {
                let blocks = std::slice::from_raw_parts(
                    bytes.as_ptr() as *const BlockQ4K,
                    bytes.len() / 144,
                );
                BlockQ4K::to_float(blocks, out)
            }
            Layout::Q6K => {
                let blocks = std::slice::from_raw_parts(
                    bytes.as_ptr() as *const BlockQ6K,
                    bytes.len() / 210,
                );
                BlockQ6K::to_float(blocks, out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{matrix, relative_error};
    use candle_core::quantized::QMatMul;
    use candle_core::{DType, Device, Module};

    #[test]
    fn decode_and_prefill_products_match_the_dequantised_weights() {
        if !x86::available() {
            return;
        }
        let (n, k) = (BLOCK * 3 + 5, 512);
        let w = matrix(n, k, f32::sin, 0.37);
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4K, GgmlDType::Q6K] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let wf = q.dequantize(&Device::Cpu).unwrap();
            let bf16 = |t: &Tensor| {
                t.to_dtype(DType::BF16)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
            };
            for m in [1, 3, 4, 9] {
                let x = matrix(m, k, f32::cos, 0.11);
                // The AVX512-BF16 prefill rounds both sides to bf16 first.
                let rounded = m > QUANT_GEMV_MAX_ROWS && bf16_gemm::available();
                let (xw, ww) = match rounded {
                    true => (bf16(&x), bf16(&wf)),
                    false => (x.clone(), wf.clone()),
                };
                let want = xw.matmul(&ww.t().unwrap()).unwrap();
                let got = quant_matmul_t(&q, &x).unwrap().unwrap();
                let d = relative_error(&got, &want);
                // Decode quantises the activations to 8 bits (relative error ~0.4 %
                // per value, averaging out over 512); prefill sums exact products.
                let tol = if m <= QUANT_GEMV_MAX_ROWS { 2e-2 } else { 1e-5 };
                assert!(d < tol, "{dtype:?} m {m}: relative error {d}");
            }
        }
    }

    /// A decode product is ggml's: the activations quantised as ggml quantises them and
    /// the same blocks dotted, so candle's own kernel gives it up to the f32 sum order.
    #[test]
    fn decode_products_equal_candles_quantised_kernels() {
        if !x86::available() {
            return;
        }
        let (n, k) = (70, 1024);
        let w = matrix(n, k, f32::sin, 0.37);
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4K, GgmlDType::Q6K] {
            let q = std::sync::Arc::new(QTensor::quantize(&w, dtype).unwrap());
            let candle = QMatMul::from_arc(q.clone()).unwrap();
            for m in 1..=QUANT_GEMV_MAX_ROWS {
                let x = matrix(m, k, f32::cos, 0.11);
                let got = quant_matmul_t(&q, &x).unwrap().unwrap();
                let want = candle.forward(&x).unwrap();
                let d = relative_error(&got, &want);
                assert!(d < 1e-5, "{dtype:?} m {m}: relative difference {d}");
            }
        }
    }
}
