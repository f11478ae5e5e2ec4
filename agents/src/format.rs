//! How figures are written for people (and for model prompts).

use domain::Figure;

/// `+12.3%` for 0.123.
pub fn signed_pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// `12.3%` for 0.123.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// A price or level with two decimals and thousands separators: `4,512.08` — the plan's
/// formatter, so a report and a plan cannot write one price two ways.
pub use domain::plan::price as level;

/// `1.2M`, `350.0K`.
pub fn volume(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2}B", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}K", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

pub const UNAVAILABLE: &str = "n/a";

/// A figure whose display is `show(value)`, or "n/a" when there is no value.
pub fn figure(label: &str, value: Option<f64>, show: impl Fn(f64) -> String) -> Figure {
    Figure { label: label.to_string(), value, display: value.map(show).unwrap_or_else(|| UNAVAILABLE.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(signed_pct(0.1234), "+12.3%");
        assert_eq!(signed_pct(-0.05), "-5.0%");
        assert_eq!(pct(0.4567), "45.7%");
        assert_eq!(level(4512.0812), "4,512.08");
        assert_eq!(level(-1234567.0), "-1,234,567.00");
        assert_eq!(level(12.5), "12.50");
        assert_eq!(volume(58_436_200.0), "58.4M");
        assert_eq!(figure("RSI(14)", None, |v| format!("{v:.1}")).display, "n/a");
    }
}
