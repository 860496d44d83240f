//! Multiply-add as a type parameter, so that one kernel body compiles to fused
//! multiply-adds where the CPU has FMA and to a multiply and an add where it does not.

/// `a * b + c`, fused or not (one rounding instead of two; either is far inside the
/// models' 1e-4 parity tolerance).
pub trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// A fused multiply-add: for code compiled with FMA enabled.
pub struct Fused;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// A multiply, then an add: for baseline code. Without FMA hardware `f32::mul_add` is
/// a libm call per element.
pub struct Unfused;

impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}
