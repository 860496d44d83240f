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

/// A short axis label for any positive magnitude: 0.5, 12, 3.4k, 1.2M.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
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
        assert_eq!(compact(3400.0), "3.4k");
        assert_eq!(compact(0.5), "0.50");
    }
}
