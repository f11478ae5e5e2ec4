//! How a completed run turned out, computed from the same market data its analysts read: the
//! stock's and the index's returns over [`domain::OUTCOME_HORIZONS`] trading days after its
//! as-of day. The prices are the record; what is computed is kept
//! ([`crate::store::Store::upsert_outcome`]) so the history can show, filter and sort by it. A
//! run whose later days were not in the data yet is computed again when read — on its page at
//! once, in the history at most every [`RECHECK_AFTER`] — until every horizon is reached.

use agents::backtest::BENCHMARK_INDEX;
use agents::backtest::scorecard::realised;
use agents::market::{MarketData, MarketError, Series};
use chrono::NaiveDate;
use domain::{HorizonOutcome, JobStatus, OUTCOME_HORIZONS, Outcome, Rating, RunId, RunOutcome, RunSummary};

use crate::error::Result;
use crate::runs::RunService;

/// Calendar days past the as-of day asked of the prices: room for the longest horizon.
const AHEAD_DAYS: i64 = 45;
/// Trading days read up to then: enough to reach back past the as-of day.
const READ_DAYS: usize = 60;
/// How long the history trusts a kept outcome whose horizons the prices did not reach yet.
pub const RECHECK_AFTER: chrono::Duration = chrono::Duration::hours(6);
/// The most runs one history request judges before it filters or sorts by outcome.
pub const BACKFILL_MAX: u32 = 500;

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
        let outcome = self.judge(&result.symbol, result.as_of, result.rating).await;
        if let Some(o) = &outcome {
            self.store().upsert_outcome(user_id, run_id, &o.horizons, self.clock.now()).await?;
        }
        Ok(RunOutcome { run_id, outcome })
    }

    /// Fills in how each completed run of a history page turned out: as kept when it is
    /// settled or recent, else computed again and kept.
    pub(crate) async fn with_outcomes(&self, user_id: &str, runs: &mut [RunSummary]) -> Result<()> {
        let done: Vec<RunId> =
            runs.iter().filter(|r| r.status == JobStatus::Completed && r.rating.is_some()).map(|r| r.run_id).collect();
        let kept = self.store().outcomes_of(user_id, &done).await?;
        let now = self.clock.now();
        for run in runs.iter_mut().filter(|r| done.contains(&r.run_id)) {
            match kept.iter().find(|k| k.run_id == run.run_id) {
                Some(k) if k.settled || now - k.checked_at < RECHECK_AFTER => run.outcome = k.horizons.clone(),
                _ => {
                    let (Some(as_of), Some(rating)) = (run.as_of, run.rating) else { continue };
                    run.outcome = self.judge_and_keep(user_id, run.run_id, &run.symbol, as_of, rating, now).await?;
                }
            }
        }
        Ok(())
    }

    /// Judges up to [`BACKFILL_MAX`] of `user_id`'s completed runs of which nothing is kept
    /// yet, newest first, so that a history filtered or sorted by outcome finds them too.
    pub(crate) async fn backfill_outcomes(&self, user_id: &str) -> Result<()> {
        let now = self.clock.now();
        for (run_id, symbol, as_of, rating) in self.store().unjudged_runs(user_id, BACKFILL_MAX).await? {
            let (Ok(as_of), Some(rating)) = (as_of.parse::<NaiveDate>(), Rating::parse_any(&rating)) else { continue };
            self.judge_and_keep(user_id, run_id, &symbol, as_of, rating, now).await?;
        }
        Ok(())
    }

    /// Judges a run of the history and keeps its horizons — none where its prices cannot be
    /// read, so that it is not judged again before [`RECHECK_AFTER`].
    async fn judge_and_keep(
        &self,
        user_id: &str,
        run_id: RunId,
        symbol: &str,
        as_of: NaiveDate,
        rating: Rating,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<HorizonOutcome>> {
        let horizons = self.judge(symbol, as_of, rating).await.map(|o| o.horizons).unwrap_or_default();
        self.store().upsert_outcome(user_id, run_id, &horizons, now).await?;
        Ok(horizons)
    }

    /// The returns after `as_of` of `symbol` and of the index, and the call of `rating`; none
    /// when the symbol's prices cannot be read.
    async fn judge(&self, symbol: &str, as_of: NaiveDate, rating: Rating) -> Option<Outcome> {
        let market = self.checks.market.as_ref();
        let series = prices_after(market, symbol, as_of).await?;
        let index = prices_after(market, BENCHMARK_INDEX, as_of).await;
        realised(&series, BENCHMARK_INDEX, index.as_ref(), as_of, rating, &OUTCOME_HORIZONS)
    }
}
