//! How a run turned out: the stock's return over a few trading days after the day it was as
//! of, the index's over the same days, the excess, and whether the rating's direction was
//! right — from the same prices the analysts read.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{Rating, RunId};

/// The trading days after the as-of day that a run is judged over.
pub const OUTCOME_HORIZONS: [u32; 2] = [5, 20];

/// The body of `GET /api/trading/runs/{runId}/outcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    pub run_id: RunId,
    /// None until the run has completed with a rating, or when its prices cannot be read.
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub symbol: String,
    pub rating: Rating,
    /// The last trading day at or before the as-of date: where the returns start.
    pub trading_day: NaiveDate,
    /// Adjusted close on `trading_day`.
    pub close: f64,
    /// What the excess is measured against (`^GSPC`).
    pub benchmark: String,
    /// The last day the prices reach.
    pub data_end: NaiveDate,
    /// One per horizon of [`OUTCOME_HORIZONS`], shortest first.
    pub horizons: Vec<HorizonOutcome>,
}

/// The run after `days` trading days; every figure absent while the prices do not reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HorizonOutcome {
    pub days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    /// Adjusted close on `date`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<f64>,
    /// The stock's return from `tradingDay` to `date`, as a fraction (0.012 is 1.2 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_return: Option<f64>,
    /// The benchmark's return between the same two days; absent where its prices do not
    /// cover both (the bundled S&P 500 ends on 2020-04-17).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark_return: Option<f64>,
    /// `stockReturn − benchmarkReturn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excess: Option<f64>,
    /// Whether the rating's direction was right: a Buy or Overweight if the stock rose, an
    /// Underweight or Sell if it fell; none for a Hold, which names no direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right: Option<bool>,
}
