//! Backtests: how good were the ratings? Pure functions over the bundled prices, never the
//! model.
//!
//! - [`grid`]: the cells of a backtest (symbols × as-of dates every N trading days), why a
//!   grid cannot be run (each field named), and a cell with its rating as the two below read it.
//! - [`scorecard`]: per cell the forward returns, the benchmark's and the alpha; per rating the
//!   count, hit rate, mean return and mean alpha; then the [`strategy`] and its baselines.
//! - [`strategy`]: daily equity of the strategy that follows the ratings, Buy & Hold, an SMA
//!   crossover and MACD on the same symbols and days, with the paper's metrics.
//!
//! Prices are adjusted closes (split- and dividend-adjusted), as everywhere returns are
//! computed in this crate.

pub mod grid;
pub mod scorecard;
pub mod strategy;

pub use grid::{CellInput, Grid, GridRequest, plan};
pub use scorecard::scorecard;

/// Trading days in a year, for annualising.
pub const TRADING_DAYS_PER_YEAR: f64 = 252.0;
/// The index a backtest is measured against when it covers the dates.
pub const BENCHMARK_INDEX: &str = crate::market::BENCHMARK;
