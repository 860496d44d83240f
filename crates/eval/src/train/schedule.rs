//! Learning rate: linear warm-up, then cosine decay to a floor.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub peak: f64,
    /// Steps of linear warm-up from `peak / warmup` to `peak`.
    pub warmup: u64,
    pub total: u64,
    /// The rate at the last step, as a fraction of `peak`.
    pub floor: f64,
}

impl Schedule {
    /// The rate of step `step` (1-based, as AdamW counts).
    pub fn rate(&self, step: u64) -> f64 {
        if step <= self.warmup {
            return self.peak * step as f64 / self.warmup.max(1) as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.peak * (self.floor + (1.0 - self.floor) * cosine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_to_the_floor() {
        let s = Schedule {
            peak: 1e-3,
            warmup: 10,
            total: 110,
            floor: 0.1,
        };
        assert!((s.rate(1) - 1e-4).abs() < 1e-12);
        assert!((s.rate(10) - 1e-3).abs() < 1e-12);
        assert!((s.rate(60) - 0.55e-3).abs() < 1e-12, "{}", s.rate(60));
        assert!((s.rate(110) - 1e-4).abs() < 1e-12);
        assert!((s.rate(500) - 1e-4).abs() < 1e-12);
        let r: Vec<f64> = (10..=110).map(|i| s.rate(i)).collect();
        assert!(r.windows(2).all(|w| w[1] <= w[0]));
    }
}
