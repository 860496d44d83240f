//! Test-only helpers shared by the crates' tests (a dev-dependency, not public API):
//! the hand-set induction copier, a positive control for the accuracy tasks.

pub mod induction;
