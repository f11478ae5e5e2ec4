//! Daily price data behind one trait: the bundled CSVs (the offline default) and online
//! providers over HTTP.

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub mod bundled;
pub mod csv;
pub mod fetch;
pub mod stooq;
pub mod yahoo;

/// The benchmark every stock is measured against (beta, correlation).
pub const BENCHMARK: &str = "^GSPC";

/// One trading day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub date: NaiveDate,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// Split- and dividend-adjusted close: what returns are computed from.
    pub adj_close: f64,
    pub volume: f64,
}

/// Bars of one symbol, oldest first, one per date.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub symbol: String,
    pub bars: Vec<Bar>,
}

impl Series {
    pub fn first_date(&self) -> Option<NaiveDate> {
        self.bars.first().map(|b| b.date)
    }

    pub fn last_date(&self) -> Option<NaiveDate> {
        self.bars.last().map(|b| b.date)
    }

    /// The index of the last bar at or before `date`.
    pub fn at_or_before(&self, date: NaiveDate) -> Option<usize> {
        self.bars.partition_point(|b| b.date <= date).checked_sub(1)
    }

    /// The bars up to and including `as_of` (the last trading day on or before it), at most
    /// `lookback` of them.
    pub fn window(&self, as_of: NaiveDate, lookback: usize) -> &[Bar] {
        let end = self.bars.partition_point(|b| b.date <= as_of);
        &self.bars[end.saturating_sub(lookback)..end]
    }
}

/// What a provider knows about a symbol it can list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolInfo {
    pub symbol: String,
    pub first_date: NaiveDate,
    pub last_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MarketError {
    #[error("no market data for {0}")]
    UnknownSymbol(String),
    #[error("{symbol} has data from {first} to {last}; {as_of} is outside it")]
    OutOfRange { symbol: String, as_of: NaiveDate, first: NaiveDate, last: NaiveDate },
    #[error("{symbol} has only {have} trading days up to {as_of}; an analysis needs at least {need}")]
    NotEnoughHistory { symbol: String, as_of: NaiveDate, have: usize, need: usize },
    #[error("the market data provider is rate limiting requests; try again later")]
    RateLimited,
    #[error("the market data provider answered {status}: {message}")]
    Upstream { status: u16, message: String },
    #[error("the market data provider sent data that could not be read: {0}")]
    Malformed(String),
    #[error("the market data provider did not answer in time")]
    Timeout,
    #[error("the market data provider cannot be reached: {0}")]
    Network(String),
    #[error("cannot read the bundled data: {0}")]
    Io(String),
}

/// The fewest trading days before the as-of date an analysis accepts: enough for RSI, MACD
/// and a three-month view. Longer-window figures say "not enough history" on their own.
pub const MIN_HISTORY: usize = 60;
/// Trading days fetched for an analysis: about two years, enough for the 200-day average a
/// year back and 12-month momentum.
pub const LOOKBACK: usize = 520;

#[async_trait]
pub trait MarketData: Send + Sync + 'static {
    /// `bundled`, `yahoo`, `stooq`.
    fn name(&self) -> &'static str;

    /// The symbols this provider can list, with their date ranges; `None` when it cannot
    /// list them (online providers answer for any symbol they know).
    fn symbols(&self) -> Option<Vec<SymbolInfo>>;

    /// Checks, without fetching, whether an analysis of `symbol` as of `as_of` can have data.
    /// Providers that cannot tell in advance accept every well-formed symbol.
    fn check(&self, _symbol: &str, _as_of: Option<NaiveDate>) -> Result<(), MarketError> {
        Ok(())
    }

    /// Daily bars of `symbol` up to `as_of` (default: the latest available), at most
    /// `lookback` of them.
    async fn daily(&self, symbol: &str, as_of: Option<NaiveDate>, lookback: usize) -> Result<Series, MarketError>;
}

/// The calendar period an online provider is asked for: `lookback` trading days (with room
/// for holidays) up to `as_of`, or up to today.
pub(crate) fn period(as_of: Option<NaiveDate>, lookback: usize) -> (NaiveDate, NaiveDate) {
    let end = as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
    (end - chrono::Duration::days(lookback as i64 * 7 / 5 + 20), end)
}

/// The last `lookback` of a provider's `bars` up to `end`. A provider that had none there
/// does not know the symbol, at least not for that period.
pub(crate) fn ending(symbol: &str, bars: Vec<Bar>, end: NaiveDate, lookback: usize) -> Result<Series, MarketError> {
    let series = Series { symbol: symbol.to_string(), bars };
    let window = series.window(end, lookback).to_vec();
    if window.is_empty() {
        return Err(MarketError::UnknownSymbol(symbol.to_string()));
    }
    Ok(Series { symbol: symbol.to_string(), bars: window })
}

/// Checks that a window has enough history for an analysis.
pub fn require_history(series: &Series, as_of: NaiveDate) -> Result<(), MarketError> {
    if series.bars.len() < MIN_HISTORY {
        return Err(MarketError::NotEnoughHistory {
            symbol: series.symbol.clone(),
            as_of,
            have: series.bars.len(),
            need: MIN_HISTORY,
        });
    }
    Ok(())
}
