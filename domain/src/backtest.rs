//! Backtests: how often the ratings were right. The scorecard's shape, as the API sends it;
//! it is computed from prices (`agents::backtest`), never from the model.
//!
//! Returns are fractions (0.05 = 5 %). Horizons are in trading days.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::analyst::AnalystKind;
use crate::rating::Rating;
use crate::team::RunOptions;

pub use crate::ids::BacktestId;

/// A backtest as validated and stored: the grid, and what each cell's run asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BacktestSpec {
    pub symbols: Vec<String>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Trading days between two as-of dates.
    pub every_days: u32,
    /// Trading days after each as-of date at which returns are read.
    pub horizons: Vec<u32>,
    pub model_id: String,
    pub analysts: Vec<AnalystKind>,
    #[serde(default)]
    pub options: RunOptions,
    #[serde(default)]
    pub bearish: BearishPosition,
}

/// What the strategy does on an Underweight or Sell rating (Buy and Overweight are long, Hold
/// is flat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BearishPosition {
    /// Out of the stock: a bearish rating only avoids the loss.
    #[default]
    Flat,
    /// Short the stock: a bearish rating earns the fall.
    Short,
}

impl BearishPosition {
    pub fn id(self) -> &'static str {
        match self {
            Self::Flat => "flat",
            Self::Short => "short",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "flat" => Some(Self::Flat),
            "short" => Some(Self::Short),
            _ => None,
        }
    }
}

/// What returns are measured against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Benchmark {
    /// A bundled index covering every date of the backtest (`^GSPC`).
    Index { symbol: String },
    /// The index does not cover the dates: the mean return of these symbols, each weighted
    /// equally, over the same days.
    EqualWeight { symbols: Vec<String> },
}

impl Benchmark {
    /// How a page names it.
    pub fn label(&self) -> String {
        match self {
            Self::Index { symbol } => format!("{symbol} (S&P 500)"),
            Self::EqualWeight { symbols } => format!("equal-weight basket of {}", symbols.join(", ")),
        }
    }
}

/// One cell's outcome: the close on its as-of day and after each horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CellOutcome {
    pub symbol: String,
    /// The date the cell asked for.
    pub as_of: NaiveDate,
    /// The last trading day at or before `as_of`: where returns start.
    pub trading_day: NaiveDate,
    /// Adjusted close on `trading_day`.
    pub close: f64,
    pub rating: Option<Rating>,
    /// Per horizon (trading days, as a string key for JSON): adjusted close that many trading
    /// days later; absent when the data ends before.
    pub closes_after: BTreeMap<String, f64>,
    pub forward_returns: BTreeMap<String, f64>,
    pub benchmark_returns: BTreeMap<String, f64>,
    /// Forward return minus benchmark return.
    pub alphas: BTreeMap<String, f64>,
}

/// How one rating fared at one horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RatingStats {
    pub rating: Rating,
    pub horizon: u32,
    /// Cells with this rating and a forward return at this horizon.
    pub count: usize,
    /// Share of them whose direction was right (Buy/Overweight: return > 0;
    /// Underweight/Sell: return < 0). None for Hold, which is counted but not scored, and
    /// when `count` is 0.
    pub hit_rate: Option<f64>,
    pub mean_return: Option<f64>,
    pub mean_alpha: Option<f64>,
}

/// Fewer cells than this make a rating's figures too few to judge by.
pub const TOO_FEW_CELLS: usize = 10;

impl RatingStats {
    /// The mean alpha as the call earned it: as is for Buy and Overweight, flipped for
    /// Underweight and Sell (a stock that lagged its benchmark by 2 % was a good Sell: +2 %);
    /// none for Hold, which bets on nothing.
    pub fn call_alpha(&self) -> Option<f64> {
        let sign = crate::plan::Direction::of_rating(self.rating).sign();
        self.mean_alpha.filter(|_| sign != 0.0).map(|a| a * sign + 0.0)
    }

    /// Too few cells to judge the rating by.
    pub fn too_few(&self) -> bool {
        self.count < TOO_FEW_CELLS
    }
}

/// The paper's metrics of one equity curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Final equity / 1 - 1.
    pub cumulative_return: f64,
    /// (1 + cumulative)^(252 / trading days) - 1.
    pub annualized_return: f64,
    /// Mean daily return over its sample standard deviation, times √252 (no risk-free rate);
    /// None when the returns do not vary.
    pub sharpe: Option<f64>,
    /// Largest peak-to-trough fall of the equity, as a positive fraction.
    pub max_drawdown: f64,
}

/// The baselines, on the same symbols and days as the strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Baselines {
    pub buy_and_hold: Metrics,
    pub sma_crossover: Metrics,
    pub macd: Metrics,
}

/// Equity (starting at 1) of each strategy per trading day, for the chart.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EquityCurves {
    pub dates: Vec<NaiveDate>,
    pub strategy: Vec<f64>,
    pub buy_and_hold: Vec<f64>,
    pub sma_crossover: Vec<f64>,
    pub macd: Vec<f64>,
}

/// Everything the scorecard says about a backtest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Scorecard {
    pub benchmark: Benchmark,
    pub bearish: BearishPosition,
    pub by_rating: Vec<RatingStats>,
    /// None until the strategy has at least one day to be measured on.
    pub strategy: Option<Metrics>,
    pub baselines: Option<Baselines>,
    pub curves: EquityCurves,
}

/// `POST /api/trading/backtests` as sent by a client: raw values, so each problem can be
/// reported against its field. `symbols`, `from` and `to` are required (the document says
/// so); read as optional, a missing one is a `400` naming it beside the others' errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BacktestRequest {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, min_items = 1))]
    pub symbols: Vec<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub from: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub to: Option<String>,
    /// Trading days between two as-of dates.
    #[serde(default)]
    pub every_days: Option<u32>,
    /// Trading days; default [5, 20].
    #[serde(default)]
    pub horizons: Option<Vec<u32>>,
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub analysts: Option<Vec<String>>,
    #[serde(default)]
    pub depth: Option<String>,
    /// `flat` (default) or `short`: what the strategy does on Underweight and Sell.
    #[serde(default)]
    pub bearish: Option<String>,
    /// A hosted model is only used once its expected cost has been seen and confirmed.
    #[serde(default)]
    pub confirm_cost: bool,
    /// An https URL told of the backtest's events, signed (Standard Webhooks): `start` when it
    /// is stored, `step` when one of its cells ends, `completed` when the last has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Any of `start`, `step`, `completed` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_events: Option<Vec<String>>,
}

pub const HORIZONS_DEFAULT: [u32; 2] = [5, 20];

/// `202` body of a started backtest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BacktestStarted {
    pub backtest_id: BacktestId,
    pub cells: usize,
    /// What the cells' model calls are expected to cost in US dollars (0 for the offline model).
    pub expected_cost_usd: f64,
}

/// What a backtest is expected to cost before it starts: `cells` runs at `per_run_usd` each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostEstimate {
    pub model_id: String,
    pub cells: usize,
    /// Model calls of one run.
    pub calls_per_run: u32,
    /// Tokens of one run (prompt and completion).
    pub tokens_per_run: u64,
    pub per_run_usd: f64,
    pub expected_cost_usd: f64,
    /// Whether the tokens per call come from this model's completed runs (else an estimate).
    pub from_history: bool,
}

/// One cell as `GET /api/trading/backtests/:id` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BacktestCell {
    pub symbol: String,
    pub as_of: NaiveDate,
    pub run_id: crate::ids::RunId,
    pub status: crate::status::JobStatus,
    pub rating: Option<Rating>,
    pub forward_returns: BTreeMap<String, f64>,
    pub benchmark_returns: BTreeMap<String, f64>,
}

/// Where a backtest stands: `running` while any cell is pending or running, then
/// `completed`; `cancelled` once cancelled and no cell is running any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BacktestStatus {
    Running,
    Completed,
    Cancelled,
}

/// The body of `GET /api/trading/backtests/:id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BacktestView {
    pub backtest_id: BacktestId,
    pub status: BacktestStatus,
    /// Finished cells out of all, in percent.
    pub progress: u8,
    pub spec: BacktestSpec,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub cells: Vec<BacktestCell>,
    /// From the cells finished so far.
    pub scorecard: Scorecard,
}

/// One backtest in `GET /api/trading/backtests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BacktestSummary {
    pub backtest_id: BacktestId,
    pub spec: BacktestSpec,
    pub cells: u32,
    pub cancelled: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearish_position_reads_back_what_it_writes() {
        for p in [BearishPosition::Flat, BearishPosition::Short] {
            assert_eq!(BearishPosition::parse(p.id()), Some(p));
        }
        assert_eq!(BearishPosition::Short.id(), "short");
        assert_eq!(BearishPosition::parse("long"), None);
        assert_eq!(BearishPosition::parse("Short"), None, "ids are lowercase, as the API writes them");
    }

    #[test]
    fn a_benchmark_is_named_for_a_reader() {
        assert_eq!(Benchmark::Index { symbol: "^GSPC".into() }.label(), "^GSPC (S&P 500)");
        let basket = Benchmark::EqualWeight { symbols: vec!["AAPL".into(), "MSFT".into()] };
        assert_eq!(basket.label(), "equal-weight basket of AAPL, MSFT");
    }

    fn stats(rating: Rating, count: usize, mean_alpha: f64) -> RatingStats {
        RatingStats { rating, horizon: 20, count, hit_rate: None, mean_return: None, mean_alpha: Some(mean_alpha) }
    }

    /// A Sell on a stock that lagged by 2.57 % earned +2.57 %; an Overweight that lagged by
    /// 2.29 % lost it; a Hold earns nothing either way. Under ten cells is too few to judge.
    #[test]
    fn alpha_is_flipped_for_bearish_calls() {
        assert_eq!(stats(Rating::Sell, 12, -0.0257).call_alpha(), Some(0.0257));
        assert_eq!(stats(Rating::Underweight, 12, 0.01).call_alpha(), Some(-0.01));
        assert_eq!(stats(Rating::Overweight, 12, -0.0229).call_alpha(), Some(-0.0229));
        assert_eq!(stats(Rating::Hold, 12, 0.03).call_alpha(), None);
        assert!(stats(Rating::Buy, 9, 0.0).too_few() && !stats(Rating::Buy, 10, 0.0).too_few());
    }
}
