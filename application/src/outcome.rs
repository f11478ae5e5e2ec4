//! How a completed run turned out, computed when asked from the same market data its analysts
//! read: the stock's and the index's returns over [`domain::OUTCOME_HORIZONS`] trading days
//! after its as-of day. Nothing is stored: the prices are the record, and a run whose later
//! days were not in the data yet gets them as soon as they are.

use agents::backtest::BENCHMARK_INDEX;
use agents::backtest::scorecard::realised;
use agents::market::{MarketData, MarketError, Series};
use chrono::NaiveDate;
use domain::{JobStatus, OUTCOME_HORIZONS, RunId, RunOutcome};

use crate::error::Result;
use crate::runs::RunService;

/// Calendar days past the as-of day asked of the prices: room for the longest horizon.
const AHEAD_DAYS: i64 = 45;
/// Trading days read up to then: enough to reach back past the as-of day.
const READ_DAYS: usize = 60;

/// `symbol`'s prices up to `AHEAD_DAYS` after `as_of`, or up to their end when they stop
/// before that.
async fn prices_after(market: &dyn MarketData, symbol: &str, as_of: NaiveDate) -> Option<Series> {
    let until = as_of + chrono::Duration::days(AHEAD_DAYS);
    match market.daily(symbol, Some(until), READ_DAYS).await {
        Ok(s) => Some(s),
        Err(MarketError::OutOfRange { last, .. }) if last >= as_of => {
            market.daily(symbol, Some(last), READ_DAYS).await.ok()
        }
        Err(_) => None,
    }
}

impl RunService {
    /// How `user_id`'s run turned out; no outcome before it completed with a rating.
    pub async fn outcome(&self, user_id: &str, run_id: RunId) -> Result<RunOutcome> {
        let run = self.owned(user_id, run_id).await?;
        let Some(result) = run.result.filter(|_| run.status == JobStatus::Completed) else {
            return Ok(RunOutcome { run_id, outcome: None });
        };
        let market = self.checks.market.as_ref();
        let Some(series) = prices_after(market, &result.symbol, result.as_of).await else {
            return Ok(RunOutcome { run_id, outcome: None });
        };
        let index = prices_after(market, BENCHMARK_INDEX, result.as_of).await;
        let outcome =
            realised(&series, BENCHMARK_INDEX, index.as_ref(), result.as_of, result.rating, &OUTCOME_HORIZONS);
        Ok(RunOutcome { run_id, outcome })
    }
}
