//! Human-readable numbers with units.

use results::Unit;

/// A value with its unit, scaled to a readable magnitude.
pub fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ms | Unit::MsPerToken if v >= 10_000.0 => format!("{:.1} s", v / 1e3),
        Unit::Ms | Unit::MsPerToken if v >= 100.0 => format!("{v:.0} ms"),
        Unit::Ms | Unit::MsPerToken if v >= 1.0 => format!("{v:.1} ms"),
        Unit::Ms | Unit::MsPerToken => format!("{:.0} µs", v * 1e3),
        Unit::TokensPerS => format!("{v:.0} tok/s"),
        Unit::Bytes => bytes(v),
        Unit::Fraction => format!("{:.1} %", v * 100.0),
        Unit::NatsPerToken => format!("{v:.3} nats/token"),
        Unit::BitsPerByte => format!("{v:.3} bits/byte"),
    }
}

/// Bytes in KB / MB / GB (powers of 1024).
pub fn bytes(v: f64) -> String {
    const K: f64 = 1024.0;
    if v >= K * K * K {
        format!("{:.2} GB", v / (K * K * K))
    } else if v >= K * K {
        format!("{:.1} MB", v / (K * K))
    } else if v >= K {
        format!("{:.1} KB", v / K)
    } else {
        format!("{v:.0} B")
    }
}

/// A token count as written in suites: 4096 -> "4k", 1536 -> "1536".
pub fn length(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{}k", n / 1024)
    } else {
        n.to_string()
    }
}

/// An axis tick label: 0.05, 20, 2.5k, 1.2M. `step`, the spacing of evenly spaced
/// ticks, gives every label of an axis the same decimals (0.0, 0.2 … 1.0); without one
/// each value gets the decimals it needs (ticks are round numbers).
pub fn tick(v: f64, step: Option<f64>) -> String {
    let (scale, suffix) = match v.abs() {
        a if a >= 1e6 => (1e6, "M"),
        a if a >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let decimals = decimals(step.unwrap_or(v) / scale);
    format!("{:.decimals$}{suffix}", v / scale)
}

/// The fewest decimals, at most 6, that write `x` exactly.
fn decimals(x: f64) -> usize {
    (0..6)
        .find(|&d| {
            let s = x.abs() * 10f64.powi(d as i32);
            (s - s.round()).abs() < 1e-6 * s.max(1.0)
        })
        .unwrap_or(6)
}

/// A parameter count: `1.0 M`, `2.94 B`.
pub fn params(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} B", n as f64 / 1e9)
    } else {
        format!("{:.1} M", n as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_units() {
        assert_eq!(value(Unit::Ms, 0.25), "250 µs");
        assert_eq!(value(Unit::Ms, 12.34), "12.3 ms");
        assert_eq!(value(Unit::MsPerToken, 250.0), "250 ms");
        assert_eq!(value(Unit::Ms, 65_000.0), "65.0 s");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.00 GB");
        assert_eq!(bytes(1536.0), "1.5 KB");
        assert_eq!(length(4096), "4k");
        assert_eq!(length(1000), "1000");
        assert_eq!(tick(0.05, None), "0.05");
        assert_eq!(tick(2500.0, None), "2.5k");
        assert_eq!(tick(2.0e6, None), "2M");
        assert_eq!(tick(0.0, Some(0.2)), "0.0");
        assert_eq!(tick(0.1 * 3.0, Some(0.1)), "0.3");
        assert_eq!(tick(1000.0, Some(500.0)), "1.0k");
    }
}
