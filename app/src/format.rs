//! Durations, percentages and times, written for people.

use chrono::{DateTime, Utc};

pub use domain::progress::duration_ms;

/// `about 40 s`, `about 3 min`: estimates are not precise, and should not look precise.
pub fn estimate(seconds: u64) -> String {
    if seconds < 60 { format!("about {} s", seconds.max(1)) } else { format!("about {} min", (seconds + 30) / 60) }
}

/// `just now`, `12 s ago`, `3 min ago`, `2 h ago`, else the date.
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - then).num_seconds().max(0);
    if s < 2 {
        "just now".into()
    } else if s < 60 {
        format!("{s} s ago")
    } else if s < 3600 {
        format!("{} min ago", s / 60)
    } else if s < 86_400 {
        format!("{} h ago", s / 3600)
    } else {
        then.format("%Y-%m-%d").to_string()
    }
}

/// `2026-11-28 23:51 UTC`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `72%`: a share of one, in whole percent.
pub fn percent(p: f64) -> String {
    percent_to(p, 0)
}

/// `33.3%` with `decimals` places.
pub fn percent_to(p: f64, decimals: usize) -> String {
    format!("{:.*}%", decimals, p * 100.0)
}

/// `+4.21%`, `-0.50%`: a return, signed, to the hundredth of a percent.
pub fn signed_percent(r: f64) -> String {
    // `+ 0.0` turns -0 into 0: no loss shows as "+0.00%", not "-0.00%".
    format!("{:+.2}%", r * 100.0 + 0.0)
}

/// The current time: the browser's clock in the browser, the server's on the server.
pub fn now() -> DateTime<Utc> {
    #[cfg(feature = "hydrate")]
    {
        DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_forms() {
        assert_eq!(estimate(0), "about 1 s");
        assert_eq!(estimate(200), "about 3 min");
        assert_eq!(estimate(230), "about 4 min");
        let t = Utc::now();
        assert_eq!(ago(t, t), "just now");
        assert_eq!(ago(t - chrono::Duration::seconds(75), t), "1 min ago");
        assert_eq!(percent(0.724), "72%");
        assert_eq!(percent_to(1.0 / 3.0, 1), "33.3%");
        assert_eq!(signed_percent(0.04214), "+4.21%");
        assert_eq!(signed_percent(-0.005), "-0.50%");
        assert_eq!(signed_percent(-0.0), "+0.00%");
    }
}
