//! Backtests: a parent job over a grid of ordinary runs, its children on the same queue.
//!
//! Starting one checks the grid against the bundled prices (every problem named by its field),
//! then stores the backtest (a job of kind [`KIND`] whose args are its spec) and one pending run
//! per cell in a single transaction — so it exists whole or not at all, and a crash or restart
//! loses nothing: its cells are runs like any other, resumed by the queue, and a cell that
//! finished is never run again. Cells are queued at [`CELL_PRIORITY`], below every interactive
//! run, outside the owner's limit of interactive runs, and at most `max_running` of the owner's
//! cells run at once (the parent's `child_limit`, which the claim enforces). The backtest waits
//! while its cells run; when the last has ended, its own job runs and completes it. The
//! scorecard is computed from prices whenever the backtest is read, from the cells finished so
//! far.

use std::collections::HashMap;
use std::sync::Arc;

use agents::backtest::scorecard::{outcomes, scorecard};
use agents::backtest::{CellInput, GridRequest, plan};
use agents::market::bundled::BundledData;
use agents::model::{Catalog, Provider};
use chrono::NaiveDate;
use domain::backtest::{
    BacktestCell, BacktestId, BacktestRequest, BacktestSpec, BacktestStarted, BacktestStatus, BacktestSummary,
    BacktestView, BearishPosition, CostEstimate, HORIZONS_DEFAULT,
};
use domain::webhook::Webhook;
use domain::{FieldError, JobStatus, StartRequest, TokenUsage, ValidStart};
use jobs::{Insert, JobId, NewJob, State};
use serde::{Deserialize, Serialize};

use crate::checks::Checks;
use crate::error::{Error, Result};
use crate::run::{RunArgs, RunProgress};
use crate::runs::{RunService, to_json};

/// The job kind of a backtest.
pub const KIND: &str = "backtest";

/// The priority of a backtest's cells: below every interactive run (priority 0), so a run a
/// user starts by hand is claimed before the cells already waiting.
pub const CELL_PRIORITY: i32 = -10;

/// A backtest's args on the queue: its spec, and how many cells it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BacktestArgs {
    #[serde(flatten)]
    spec: BacktestSpec,
    cells: u32,
    /// Where its events are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook: Option<Webhook>,
}

fn job_id(id: BacktestId) -> JobId {
    JobId(id.as_uuid())
}

/// Cells one backtest may have (`MAX_BACKTEST_CELLS`).
pub const MAX_CELLS_DEFAULT: usize = 1000;
/// A user's cells running at once (`MAX_RUNNING_CELLS_PER_USER`).
pub const MAX_RUNNING_CELLS_DEFAULT: u32 = 2;
/// The step between as-of dates when a request names none.
pub const EVERY_DAYS_DEFAULT: u32 = 20;
/// Backtests listed at most.
const LIST_LIMIT: u32 = 100;
/// Prompt tokens one model call is expected to read: the key figures, the analysts' reports
/// and the debate so far, as the prompts in `agents::model` lay them out.
pub const PROMPT_TOKENS_PER_CALL: u64 = 2_000;
/// Completion tokens one model call is expected to write.
pub const COMPLETION_TOKENS_PER_CALL: u64 = 600;
/// Completed runs of a model whose tokens a cost estimate is taken from.
const USAGE_HISTORY_RUNS: u32 = 20;

#[derive(Debug, Clone)]
pub struct BacktestConfig {
    pub max_cells: usize,
    pub max_running_cells: u32,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        Self { max_cells: MAX_CELLS_DEFAULT, max_running_cells: MAX_RUNNING_CELLS_DEFAULT }
    }
}

/// What a backtest with `cells` runs of `spec` is expected to cost at the catalog's prices:
/// each run makes [`domain::RunOptions::expected_calls`] calls, and stops at its budget
/// (`maxCostUsd`) if it has one. A call's tokens are those of the model's recent completed runs
/// (`history`: calls and tokens per run) where there are any, else [`PROMPT_TOKENS_PER_CALL`]
/// and [`COMPLETION_TOKENS_PER_CALL`]. `None` for the offline model, which costs nothing.
pub fn estimate_cost(
    catalog: &Catalog,
    spec: &BacktestSpec,
    cells: usize,
    history: &[(u32, TokenUsage)],
) -> Option<CostEstimate> {
    let entry = catalog.get(&spec.model_id)?;
    if entry.provider == Provider::Offline {
        return None;
    }
    let calls = spec.options.expected_calls(spec.analysts.len());
    let past_calls: u64 = history.iter().map(|(c, _)| u64::from(*c)).sum();
    let (prompt_per_call, completion_per_call) = if past_calls > 0 {
        let prompt: u64 = history.iter().map(|(_, t)| t.prompt).sum();
        let completion: u64 = history.iter().map(|(_, t)| t.completion).sum();
        (prompt as f64 / past_calls as f64, completion as f64 / past_calls as f64)
    } else {
        (PROMPT_TOKENS_PER_CALL as f64, COMPLETION_TOKENS_PER_CALL as f64)
    };
    let (prompt, completion) = (f64::from(calls) * prompt_per_call, f64::from(calls) * completion_per_call);
    let mut per_run = (prompt * entry.input_price_per_mtok + completion * entry.output_price_per_mtok) / 1e6;
    if let Some(max) = spec.options.max_cost_usd {
        per_run = per_run.min(max);
    }
    Some(CostEstimate {
        model_id: spec.model_id.clone(),
        cells,
        calls_per_run: calls,
        tokens_per_run: (prompt + completion).round() as u64,
        per_run_usd: per_run,
        expected_cost_usd: per_run * cells as f64,
        from_history: past_calls > 0,
    })
}

pub struct Backtests {
    runs: Arc<RunService>,
    catalog: Catalog,
    checks: Arc<Checks>,
    prices: Arc<BundledData>,
    config: BacktestConfig,
}

impl Backtests {
    pub fn new(
        runs: Arc<RunService>,
        checks: Arc<Checks>,
        prices: Arc<BundledData>,
        catalog: Catalog,
        config: BacktestConfig,
    ) -> Self {
        Self { runs, catalog, checks, prices, config }
    }

    pub fn prices(&self) -> &Arc<BundledData> {
        &self.prices
    }

    /// Checks every field of a request and lays out its grid.
    pub async fn validate(&self, request: &BacktestRequest) -> Result<(BacktestSpec, Vec<(String, NaiveDate)>)> {
        let mut errors = Vec::new();
        let date = |field: &str, raw: &Option<String>, errors: &mut Vec<FieldError>| match raw.as_deref().map(str::trim)
        {
            None | Some("") => {
                errors.push(FieldError::new(field, "a date is required (YYYY-MM-DD)"));
                None
            }
            Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| errors.push(FieldError::new(field, format!("'{d}' is not a date (use YYYY-MM-DD)"))))
                .ok(),
        };
        let from = date("from", &request.from, &mut errors);
        let to = date("to", &request.to, &mut errors);
        let bearish = match request.bearish.as_deref().map(str::trim) {
            None | Some("") => BearishPosition::Flat,
            Some(b) => BearishPosition::parse(b).unwrap_or_else(|| {
                errors.push(FieldError::new("bearish", format!("'{b}' is not flat or short")));
                BearishPosition::Flat
            }),
        };
        // The model, analysts and depth are checked as a run's would be.
        let as_run = StartRequest {
            symbol: Some(request.symbols.first().cloned().unwrap_or_else(|| "AAPL".into())),
            model_id: request.model_id.clone(),
            analysts: request.analysts.clone(),
            depth: request.depth.clone(),
            ..StartRequest::default()
        };
        let run_fields = ["modelId", "deepModelId", "analysts", "depth"];
        let start = match as_run.validate(&self.runs.config().default_model) {
            Ok(start) => {
                if let Err(e) = self.checks.check(&start) {
                    errors.extend(e.into_iter().filter(|e| run_fields.contains(&e.field.as_str())));
                }
                Some(start)
            }
            Err(e) => {
                errors.extend(e.into_iter().filter(|e| run_fields.contains(&e.field.as_str())));
                // The model is still checked against the catalog.
                let model_only = StartRequest { analysts: None, depth: None, ..as_run.clone() };
                if let Ok(start) = model_only.validate(&self.runs.config().default_model)
                    && let Err(e) = self.checks.check(&start)
                {
                    errors.extend(e.into_iter().filter(|e| e.field == "modelId"));
                }
                None
            }
        };
        let symbols: Vec<String> = request.symbols.iter().map(|s| s.trim().to_ascii_uppercase()).collect();
        let horizons = request.horizons.clone().unwrap_or_else(|| HORIZONS_DEFAULT.to_vec());
        let every_days = request.every_days.unwrap_or(EVERY_DAYS_DEFAULT);
        let grid = match (from, to) {
            (Some(from), Some(to)) => {
                let grid = GridRequest { symbols: symbols.clone(), from, to, every_days, horizons: horizons.clone() };
                plan(&self.prices, &grid, self.config.max_cells).map_err(|e| errors.extend(e)).ok()
            }
            // Without both dates there is no grid to check the symbols against, but a missing
            // list is named with the dates: every field's error at once.
            _ => {
                if symbols.is_empty() {
                    errors.push(FieldError::new("symbols", "name at least one symbol"));
                }
                None
            }
        };
        match (errors.is_empty(), start, from, to, grid) {
            (true, Some(start), Some(from), Some(to), Some(grid)) => {
                let mut options = start.options;
                options.rounds = match options.depth {
                    domain::Depth::Quick => None,
                    domain::Depth::Standard => Some(self.runs.config().standard_rounds),
                    domain::Depth::Deep => Some(self.runs.config().deep_rounds),
                };
                let spec = BacktestSpec {
                    symbols,
                    from,
                    to,
                    every_days,
                    horizons,
                    model_id: start.model_id.to_string(),
                    analysts: start.analysts,
                    options,
                    bearish,
                };
                Ok((spec, grid.cells))
            }
            _ => Err(Error::Invalid(errors)),
        }
    }

    /// Validates a request and stores the backtest with all its cells. A hosted model's cost
    /// must have been confirmed (`confirmCost`); until it is, nothing is stored and the
    /// estimate is the answer.
    pub async fn start(&self, user_id: &str, request: &BacktestRequest) -> Result<BacktestStarted> {
        let checked = self.validate(request).await;
        let webhook = self.runs.webhooks().check(request.webhook.as_deref(), request.webhook_events.as_deref()).await;
        let ((spec, grid), webhook) = match (checked, webhook) {
            (Ok(valid), Ok(webhook)) => (valid, webhook),
            (checked, webhook) => {
                let mut errors = match checked {
                    Err(Error::Invalid(e)) => e,
                    Err(e) => return Err(e),
                    Ok(_) => Vec::new(),
                };
                errors.extend(webhook.err().unwrap_or_default());
                return Err(Error::Invalid(errors));
            }
        };
        // Its cells spend the same daily budget as runs, each held to what is left when it runs.
        self.runs.check_daily_budget(user_id).await?;
        let hosted = self.catalog.get(&spec.model_id).is_some_and(|e| e.provider != Provider::Offline);
        let history =
            if hosted { self.runs.store().recent_usage(&spec.model_id, USAGE_HISTORY_RUNS).await? } else { Vec::new() };
        let estimate = estimate_cost(&self.catalog, &spec, grid.len(), &history);
        if let Some(e) = &estimate
            && !request.confirm_cost
        {
            return Err(Error::CostNotConfirmed(Box::new(e.clone())));
        }
        let backtest_id = BacktestId::from_uuid(uuid::Uuid::new_v4());
        let config = self.runs.config();
        let mut cells = Vec::with_capacity(grid.len());
        for (symbol, as_of) in grid {
            let start = ValidStart {
                symbol: symbol.parse().map_err(|e: domain::IdError| Error::Internal(e.0))?,
                model_id: spec.model_id.parse().map_err(|e: domain::IdError| Error::Internal(e.0))?,
                analysts: spec.analysts.clone(),
                as_of: Some(as_of),
                options: spec.options.clone(),
            };
            cells.push(NewJob {
                priority: CELL_PRIORITY,
                max_attempts: config.max_attempts,
                timeout_ms: config.job_timeout.as_millis() as u64,
                progress: to_json(&RunProgress::new(&start)),
                ..NewJob::new(
                    crate::run::KIND,
                    user_id,
                    to_json(&RunArgs { start, retry_of: None, rerun_of: None, batch_id: None, webhook: None }),
                )
            });
        }
        let count = cells.len();
        let args = BacktestArgs { spec, cells: count as u32, webhook };
        let parent = NewJob {
            job_id: job_id(backtest_id),
            priority: CELL_PRIORITY,
            child_limit: Some(self.config.max_running_cells),
            ..NewJob::new(KIND, user_id, to_json(&args))
        };
        self.runs.queue().insert(&Insert { job: parent, children: cells, owner_limit: None }).await?;
        self.runs.notify_available().await;
        Ok(BacktestStarted {
            backtest_id,
            cells: count,
            expected_cost_usd: estimate.map_or(0.0, |e| e.expected_cost_usd),
        })
    }

    /// The backtest's job, if it is `user_id`'s.
    async fn owned(&self, user_id: &str, backtest_id: BacktestId) -> Result<(jobs::Job, BacktestArgs)> {
        self.runs.owned_parent(KIND, user_id, job_id(backtest_id)).await
    }

    /// A backtest of `user_id`'s with its cells so far and the scorecard they make.
    pub async fn view(&self, user_id: &str, backtest_id: BacktestId) -> Result<BacktestView> {
        let (backtest, BacktestArgs { spec, .. }) = self.owned(user_id, backtest_id).await?;
        // The live cells and those the janitor has archived, in the order they were given,
        // without their checkpoints: the step outputs are most of a finished cell's bytes, and
        // a backtest's view, read again and again while it runs, never shows them.
        let runs = self.runs.children(backtest.job_id).await?;
        let inputs: Vec<CellInput> = runs
            .iter()
            .filter_map(|r| {
                let as_of = r.start.as_of?;
                Some(CellInput {
                    symbol: r.start.symbol.to_string(),
                    as_of,
                    rating: r.result.as_ref().filter(|_| r.status == JobStatus::Completed).map(|res| res.rating),
                })
            })
            .collect();
        let card = scorecard(&self.prices, &inputs, &spec.horizons, spec.every_days, spec.bearish);
        let mut returns: HashMap<(String, NaiveDate), _> =
            outcomes(&self.prices, &inputs, &spec.horizons, &card.benchmark)
                .into_iter()
                .map(|o| ((o.symbol.clone(), o.as_of), (o.forward_returns, o.benchmark_returns)))
                .collect();
        let cells: Vec<BacktestCell> = runs
            .iter()
            .map(|r| {
                let as_of = r.start.as_of.unwrap_or(spec.from);
                let (forward_returns, benchmark_returns) =
                    returns.remove(&(r.start.symbol.to_string(), as_of)).unwrap_or_default();
                BacktestCell {
                    symbol: r.start.symbol.to_string(),
                    as_of,
                    run_id: r.run_id,
                    status: r.status,
                    rating: r.result.as_ref().filter(|_| r.status == JobStatus::Completed).map(|res| res.rating),
                    forward_returns,
                    benchmark_returns,
                }
            })
            .collect();
        let finished = cells.iter().filter(|c| c.status.is_terminal()).count();
        let active = cells.len() - finished;
        let status = match (backtest.state == State::Cancelled, active) {
            (_, n) if n > 0 => BacktestStatus::Running,
            (true, _) => BacktestStatus::Cancelled,
            (false, _) => BacktestStatus::Completed,
        };
        let progress = if cells.is_empty() { 100 } else { (finished * 100 / cells.len()) as u8 };
        Ok(BacktestView {
            backtest_id,
            status,
            progress,
            spec,
            created_at: backtest.created_at,
            cells,
            scorecard: card,
        })
    }

    /// A backtest of `user_id`'s and its webhook.
    pub(crate) async fn with_webhook(
        &self,
        user_id: &str,
        backtest_id: BacktestId,
    ) -> Result<(BacktestView, Option<Webhook>)> {
        let (_, args) = self.owned(user_id, backtest_id).await?;
        Ok((self.view(user_id, backtest_id).await?, args.webhook))
    }

    /// Cancels a backtest: no further cell starts, pending cells end `cancelled` and running
    /// ones are asked to stop.
    pub async fn cancel(&self, user_id: &str, backtest_id: BacktestId) -> Result<BacktestView> {
        let (job, _) = self.owned(user_id, backtest_id).await?;
        self.runs.cancel_family(job.job_id).await?;
        self.view(user_id, backtest_id).await
    }

    /// `user_id`'s backtests, newest first.
    pub async fn list(&self, user_id: &str) -> Result<Vec<BacktestSummary>> {
        let parents = self.runs.parents::<BacktestArgs>(KIND, user_id, LIST_LIMIT).await?;
        Ok(parents
            .into_iter()
            .map(|(job, args)| BacktestSummary {
                backtest_id: BacktestId::from_uuid(job.job_id.0),
                spec: args.spec,
                cells: args.cells,
                cancelled: job.state == State::Cancelled,
                created_at: job.created_at,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{AnalystKind, Depth, RunOptions};

    fn spec(model_id: &str, options: RunOptions) -> BacktestSpec {
        BacktestSpec {
            symbols: vec!["AAPL".into()],
            from: NaiveDate::from_ymd_opt(2019, 1, 2).unwrap(),
            to: NaiveDate::from_ymd_opt(2019, 3, 1).unwrap(),
            every_days: 20,
            horizons: vec![5],
            model_id: model_id.into(),
            analysts: vec![AnalystKind::Invest, AnalystKind::Risk, AnalystKind::Technical],
            options,
            bearish: BearishPosition::Flat,
        }
    }

    #[test]
    fn the_cost_comes_from_the_models_history_when_there_is_one() {
        let catalog = Catalog::builtin();
        let quick = spec("gpt-4o-mini", RunOptions::default());
        // Three analysts and the final assessment; gpt-4o-mini: $0.15 in, $0.60 out per Mtok.
        let guess = estimate_cost(&catalog, &quick, 10, &[]).unwrap();
        assert!(!guess.from_history);
        assert_eq!((guess.calls_per_run, guess.tokens_per_run), (4, 4 * 2_600));
        assert!((guess.expected_cost_usd - 10.0 * 4.0 * (2_000.0 * 0.15 + 600.0 * 0.60) / 1e6).abs() < 1e-12);
        // Past runs: 9 calls of 4,500 prompt and 900 completion tokens in all, 500 and 100 a call.
        let history =
            [(5, TokenUsage { prompt: 2_000, completion: 500 }), (4, TokenUsage { prompt: 2_500, completion: 400 })];
        let known = estimate_cost(&catalog, &quick, 10, &history).unwrap();
        assert!(known.from_history);
        assert_eq!(known.tokens_per_run, 4 * 600);
        assert!((known.expected_cost_usd - 10.0 * 4.0 * (500.0 * 0.15 + 100.0 * 0.60) / 1e6).abs() < 1e-12);
        // A run stops at its budget.
        let capped = spec("gpt-4o-mini", RunOptions { max_cost_usd: Some(0.0001), ..RunOptions::default() });
        assert!((estimate_cost(&catalog, &capped, 10, &[]).unwrap().expected_cost_usd - 0.001).abs() < 1e-12);
        // Deep, three rounds: 3 + 1 + 3 × 5 + 2 calls.
        let deep = spec("gpt-4o-mini", RunOptions { depth: Depth::Deep, ..RunOptions::default() });
        assert_eq!(estimate_cost(&catalog, &deep, 1, &[]).unwrap().calls_per_run, 21);
        assert!(estimate_cost(&catalog, &spec("offline", RunOptions::default()), 10, &[]).is_none());
    }
}
