//! Retries with exponential backoff for HTTP providers (market data and models alike).

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

pub const MAX_RETRIES_DEFAULT: u32 = 3;
pub const BASE_DELAY_DEFAULT: Duration = Duration::from_millis(500);
pub const MAX_DELAY_DEFAULT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (so `max_retries + 1` tries in all).
    pub max_retries: u32,
    /// The wait before the first retry; it doubles each time.
    pub base_delay: Duration,
    /// No wait is longer, whatever a `Retry-After` asks for.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: MAX_RETRIES_DEFAULT, base_delay: BASE_DELAY_DEFAULT, max_delay: MAX_DELAY_DEFAULT }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): the server's `Retry-After` when it gave
    /// one, else `base × 2^retry`, capped at `max_delay`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.base_delay.saturating_mul(1u32 << retry.min(16));
        retry_after.unwrap_or(backoff).min(self.max_delay)
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and read as absent).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Statuses worth another try: rate limits and server-side failures.
pub fn is_retryable(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_honours_retry_after_and_is_capped() {
        let p =
            RetryPolicy { max_retries: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        assert_eq!(p.delay(0, None), Duration::from_millis(100));
        assert_eq!(p.delay(2, None), Duration::from_millis(400));
        assert_eq!(p.delay(6, None), Duration::from_secs(1));
        assert_eq!(p.delay(0, Some(Duration::from_millis(700))), Duration::from_millis(700));
        assert_eq!(p.delay(0, Some(Duration::from_secs(90))), Duration::from_secs(1));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
