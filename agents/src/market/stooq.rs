//! Stooq's daily CSV download (`/q/d/l/?s=aapl.us&i=d`). Free and keyless; US tickers take a
//! `.us` suffix and the S&P 500 is `^spx`. An unknown symbol answers 200 with the body
//! "No data". The base URL is configurable (`STOOQ_BASE_URL`).

use async_trait::async_trait;
use chrono::NaiveDate;

use super::csv::parse_bars;
use super::fetch::{fetch_text, status_error};
use super::{BENCHMARK, MarketData, MarketError, Series, SymbolInfo, ending, period};
use crate::retry::RetryPolicy;

pub const BASE_URL_DEFAULT: &str = "https://stooq.com";

pub struct StooqData {
    client: reqwest::Client,
    base_url: String,
    retry: RetryPolicy,
}

impl StooqData {
    pub fn new(client: reqwest::Client, base_url: &str, retry: RetryPolicy) -> Self {
        Self { client, base_url: base_url.trim_end_matches('/').to_string(), retry }
    }
}

/// Stooq's spelling of a ticker.
fn stooq_symbol(symbol: &str) -> String {
    match symbol {
        BENCHMARK => "^spx".into(),
        s if s.starts_with('^') || s.contains('.') => s.to_ascii_lowercase(),
        s => format!("{}.us", s.to_ascii_lowercase()),
    }
}

#[async_trait]
impl MarketData for StooqData {
    fn name(&self) -> &'static str {
        "stooq"
    }

    fn symbols(&self) -> Option<Vec<SymbolInfo>> {
        None
    }

    async fn daily(&self, symbol: &str, as_of: Option<NaiveDate>, lookback: usize) -> Result<Series, MarketError> {
        let (start, end) = period(as_of, lookback);
        let url = format!(
            "{}/q/d/l/?s={}&i=d&d1={}&d2={}",
            self.base_url,
            stooq_symbol(symbol).replace('^', "%5E"),
            start.format("%Y%m%d"),
            end.format("%Y%m%d")
        );
        let (status, body) = fetch_text(&self.client, &url, &self.retry).await?;
        if status == reqwest::StatusCode::NOT_FOUND || body.trim().eq_ignore_ascii_case("no data") {
            return Err(MarketError::UnknownSymbol(symbol.to_string()));
        }
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        ending(symbol, parse_bars(&body).map_err(MarketError::Malformed)?, end, lookback)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn symbols_are_spelled_the_stooq_way() {
        assert_eq!(super::stooq_symbol("AAPL"), "aapl.us");
        assert_eq!(super::stooq_symbol("^GSPC"), "^spx");
        assert_eq!(super::stooq_symbol("BRK.B"), "brk.b");
    }
}
