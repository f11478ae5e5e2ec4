//! The Trading Agents analysis. Knows nothing about HTTP servers or databases.
//!
//! Reading order:
//! - [`market`]: daily prices behind [`market::MarketData`] — the bundled CSVs, Yahoo, Stooq.
//! - [`indicators`]: returns, averages, RSI, MACD, Bollinger, ATR, volatility, drawdown, VaR…
//! - [`snapshot`]: Data Collection's output — every figure the analysts read.
//! - [`analysts`]: each analyst's key figures and the signals it reads from them.
//! - [`assessment`]: what a model writes (an analyst's view, the final assessment, the
//!   portfolio manager's decision) and the brief the team after the analysts reads.
//! - [`rules`]: the offline rules of the analysts' views and the final assessment.
//! - [`plan`]: the desk's rules for a trade plan, and how a run settles on its final one.
//! - [`team`]: the offline rules of the debaters, managers and trader after the analysts.
//! - [`model`]: the offline rule-based model (which calls those rules) and OpenAI-compatible
//!   chat models, from a catalog.
//! - [`sentiment`], [`news`]: headline tone with the VADER lexicon, headlines from RSS.
//! - [`pipeline`]: Data Collection → analysts (concurrently) → [the team] → Final Assessment,
//!   resumable turn by turn.
//! - [`backtest`]: a backtest's grid and scorecard, computed from prices, never the model.
//! - [`retry`], [`format`]: backoff for HTTP providers; figures written for people.

pub mod analysts;
pub mod assessment;
pub mod backtest;
pub mod format;
pub mod indicators;
pub mod market;
pub mod model;
pub mod news;
pub mod pipeline;
pub mod plan;
pub mod retry;
pub mod rules;
pub mod snapshot;
pub mod team;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vader;

pub use pipeline::{Pipeline, PipelineError, Reporter};
