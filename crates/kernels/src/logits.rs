//! Which positions a model's forward computes logits for.

/// Which positions a forward returns logits for, in both model crates
/// (`rwkv::Model::forward`, `transformer::Model::forward`).
///
/// # Shapes
/// For tokens `(B, T)`: [`Logits::All`] -> `(B, T, V)`, [`Logits::Last`] -> `(B, V)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Every position: `(B, T, V)`. Costs a `T x V` tensor; for long inputs call
    /// `forward` per chunk instead.
    All,
    /// The last position only: `(B, V)`; the head runs on one row per sequence. Prompt
    /// processing and decode steps.
    Last,
}
