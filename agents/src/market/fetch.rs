//! Fetching a document from an online data source (prices, headlines) with retries: rate
//! limits and server errors are retried with backoff, honouring `Retry-After`; so are
//! timeouts and failed connections.

use super::MarketError;
use crate::retry::{RetryPolicy, is_retryable, retry_after};

/// The status and body of a GET, once retries are done: a retryable status is returned as is
/// after the last try, for the caller to turn into an error.
pub(crate) async fn fetch_text(
    client: &reqwest::Client,
    url: &str,
    retry: &RetryPolicy,
) -> Result<(reqwest::StatusCode, String), MarketError> {
    let mut attempt = 0;
    loop {
        let outcome = client.get(url).header("accept", "application/json, text/csv, */*").send().await;
        match outcome {
            Ok(resp) if is_retryable(resp.status()) && attempt < retry.max_retries => {
                let wait = retry.delay(attempt, retry_after(resp.headers()));
                tracing::warn!(status = %resp.status(), ?wait, "market data provider asked to retry");
                tokio::time::sleep(wait).await;
            }
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.map_err(|e| {
                    if e.is_timeout() { MarketError::Timeout } else { MarketError::Network(e.to_string()) }
                })?;
                return Ok((status, body));
            }
            Err(e) if e.is_timeout() && attempt < retry.max_retries => {
                tokio::time::sleep(retry.delay(attempt, None)).await;
            }
            Err(e) if e.is_timeout() => return Err(MarketError::Timeout),
            Err(e) if attempt < retry.max_retries && (e.is_connect() || e.is_request()) => {
                tokio::time::sleep(retry.delay(attempt, None)).await;
            }
            Err(e) => return Err(MarketError::Network(e.without_url().to_string())),
        }
        attempt += 1;
    }
}

/// A final non-success status as an error: rate limited, or what the provider said.
pub(crate) fn status_error(status: reqwest::StatusCode, body: &str) -> MarketError {
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        MarketError::RateLimited
    } else {
        MarketError::Upstream { status: status.as_u16(), message: body.chars().take(200).collect() }
    }
}
