//! Yahoo Finance's chart API (`/v8/finance/chart/{symbol}`), the JSON behind its web charts.
//!
//! Unofficial and rate limited; the base URL is configurable (`YAHOO_BASE_URL`) so tests and
//! proxies can stand in for it. Failures are told apart: an unknown symbol (404 with a chart
//! error), rate limiting (429, retried with backoff, honouring `Retry-After`), server errors
//! (5xx, retried), bodies that do not parse, and timeouts.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::fetch::{fetch_text, status_error};
use super::{Bar, MarketData, MarketError, Series, SymbolInfo, ending, period};
use crate::retry::RetryPolicy;

pub const BASE_URL_DEFAULT: &str = "https://query1.finance.yahoo.com";

pub struct YahooData {
    client: reqwest::Client,
    base_url: String,
    retry: RetryPolicy,
}

impl YahooData {
    pub fn new(client: reqwest::Client, base_url: &str, retry: RetryPolicy) -> Self {
        Self { client, base_url: base_url.trim_end_matches('/').to_string(), retry }
    }
}

#[derive(Deserialize)]
struct Envelope {
    chart: Chart,
}

#[derive(Deserialize)]
struct Chart {
    result: Option<Vec<ChartResult>>,
    error: Option<ChartError>,
}

#[derive(Deserialize)]
struct ChartError {
    code: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct ChartResult {
    meta: Option<Meta>,
    timestamp: Option<Vec<i64>>,
    indicators: Indicators,
}

#[derive(Deserialize)]
struct Meta {
    gmtoffset: Option<i64>,
}

#[derive(Deserialize)]
struct Indicators {
    quote: Vec<Quote>,
    adjclose: Option<Vec<AdjClose>>,
}

#[derive(Deserialize)]
struct Quote {
    open: Vec<Option<f64>>,
    high: Vec<Option<f64>>,
    low: Vec<Option<f64>>,
    close: Vec<Option<f64>>,
    volume: Vec<Option<f64>>,
}

#[derive(Deserialize)]
struct AdjClose {
    adjclose: Vec<Option<f64>>,
}

/// Turns a chart API body into bars; rows with a missing price are skipped.
fn parse(body: &str, symbol: &str) -> Result<Vec<Bar>, MarketError> {
    let env: Envelope = serde_json::from_str(body).map_err(|e| MarketError::Malformed(e.to_string()))?;
    if let Some(err) = env.chart.error {
        let description = err.description.unwrap_or_default();
        return Err(match err.code.as_deref() {
            Some("Not Found") => MarketError::UnknownSymbol(symbol.to_string()),
            _ => MarketError::Upstream { status: 200, message: description },
        });
    }
    let result =
        env.chart.result.and_then(|mut r| r.pop()).ok_or_else(|| MarketError::UnknownSymbol(symbol.to_string()))?;
    let offset = result.meta.and_then(|m| m.gmtoffset).unwrap_or(0);
    let stamps = result.timestamp.unwrap_or_default();
    let quote =
        result.indicators.quote.into_iter().next().ok_or_else(|| MarketError::Malformed("no quote series".into()))?;
    let adj = result.indicators.adjclose.and_then(|mut a| a.pop()).map(|a| a.adjclose);
    let n = stamps.len();
    if [quote.open.len(), quote.high.len(), quote.low.len(), quote.close.len(), quote.volume.len()]
        .iter()
        .any(|l| *l != n)
    {
        return Err(MarketError::Malformed("series of different lengths".into()));
    }
    let mut bars = Vec::with_capacity(n);
    for (i, stamp) in stamps.iter().enumerate() {
        let (Some(o), Some(h), Some(l), Some(c)) = (quote.open[i], quote.high[i], quote.low[i], quote.close[i]) else {
            continue;
        };
        let date = DateTime::<Utc>::from_timestamp(stamp + offset, 0)
            .ok_or_else(|| MarketError::Malformed(format!("bad timestamp {stamp}")))?
            .date_naive();
        let a = adj.as_ref().and_then(|a| a.get(i).copied().flatten()).unwrap_or(c);
        bars.push(Bar {
            date,
            open: o,
            high: h,
            low: l,
            close: c,
            adj_close: a,
            volume: quote.volume[i].unwrap_or(0.0),
        });
    }
    bars.sort_by_key(|b| b.date);
    bars.dedup_by_key(|b| b.date);
    Ok(bars)
}

#[async_trait]
impl MarketData for YahooData {
    fn name(&self) -> &'static str {
        "yahoo"
    }

    fn symbols(&self) -> Option<Vec<SymbolInfo>> {
        None
    }

    async fn daily(&self, symbol: &str, as_of: Option<NaiveDate>, lookback: usize) -> Result<Series, MarketError> {
        let (start, end) = period(as_of, lookback);
        let stamp = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp();
        let url = format!(
            "{}/v8/finance/chart/{}?period1={}&period2={}&interval=1d&events=div%7Csplit&includeAdjustedClose=true",
            self.base_url,
            symbol.replace('^', "%5E"),
            stamp(start),
            stamp(end) + 86_400,
        );
        let (status, body) = fetch_text(&self.client, &url, &self.retry).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(MarketError::UnknownSymbol(symbol.to_string()));
        }
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        ending(symbol, parse(&body, symbol)?, end, lookback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_chart_body_skipping_null_rows() {
        let body = r#"{"chart":{"result":[{"meta":{"gmtoffset":-14400},
            "timestamp":[1695216600,1695303000,1695389400],
            "indicators":{"quote":[{"open":[179.26,174.55,null],"high":[179.7,176.3,null],
              "low":[175.4,173.86,null],"close":[175.49,173.93,null],"volume":[58436200,63047900,null]}],
              "adjclose":[{"adjclose":[175.0,173.5,null]}]}}],"error":null}}"#;
        let bars = parse(body, "AAPL").unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].date, NaiveDate::from_ymd_opt(2023, 9, 20).unwrap());
        assert_eq!((bars[1].close, bars[1].adj_close, bars[1].volume), (173.93, 173.5, 63047900.0));
    }

    #[test]
    fn tells_unknown_symbols_and_garbage_apart() {
        let nf = r#"{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may be delisted"}}}"#;
        assert_eq!(parse(nf, "ZZZZ"), Err(MarketError::UnknownSymbol("ZZZZ".into())));
        assert!(matches!(parse("<html>", "AAPL"), Err(MarketError::Malformed(_))));
        let ragged = r#"{"chart":{"result":[{"timestamp":[1,2],"indicators":{"quote":[{"open":[1],"high":[1],"low":[1],"close":[1],"volume":[1]}]}}],"error":null}}"#;
        assert!(matches!(parse(ragged, "AAPL"), Err(MarketError::Malformed(_))));
    }
}
