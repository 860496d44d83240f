//! Test-only helpers shared by the crates' tests (a dev-dependency, not public API):
//! the hand-set induction copier, a positive control for the accuracy tasks, and
//! tensor comparisons.

pub mod induction;

use candle_core::Tensor;

/// max |a - b| over all elements (same shapes), for numeric comparisons in tests.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
        .expect("two f32 tensors of one shape")
}
