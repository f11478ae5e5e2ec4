//! The job row and the values that move in and out of the store.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use domain::backtest::{BacktestId, BacktestSpec};
use domain::{AnalysisResult, AnalystKind, JobStatus, RunId, RunOptions, StepProgress, StepStatus, TokenUsage};
use serde_json::Value;

/// One row of `trading_agent_jobs`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub run_id: RunId,
    pub user_id: String,
    pub symbol: String,
    pub model_id: String,
    pub analysts: Vec<AnalystKind>,
    pub as_of: Option<NaiveDate>,
    pub status: JobStatus,
    pub current_step: Option<String>,
    pub progress_percent: u8,
    pub steps: Vec<StepProgress>,
    /// Step name → the step's stored output.
    pub checkpoints: BTreeMap<String, Value>,
    pub result: Option<AnalysisResult>,
    pub error: Option<String>,
    pub priority: i32,
    pub attempt: u32,
    pub max_attempts: u32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    /// Bumped by every visible change; the progress endpoint's ETag.
    pub version: i64,
    pub retry_of: Option<RunId>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub timeout_ms: u64,
    pub timeout_at: Option<DateTime<Utc>>,
    pub llm_calls: u32,
    pub tokens: TokenUsage,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub duration_ms: Option<u64>,
    /// Depth, rounds, second model and budget.
    pub options: RunOptions,
    /// What the model calls of finished steps cost, in US dollars.
    pub cost_usd: f64,
    /// Read from the archive, where the janitor moved it.
    pub archived: bool,
    /// The backtest this run is a cell of; None for an interactive run.
    pub backtest_id: Option<BacktestId>,
}

impl Job {
    /// The fence of the lease this row currently carries, if it is running.
    pub fn fence(&self) -> Option<Fence> {
        match (&self.status, &self.lease_owner) {
            (JobStatus::Running, Some(owner)) => {
                Some(Fence { run_id: self.run_id, owner: owner.clone(), attempt: self.attempt })
            }
            _ => None,
        }
    }

    pub fn spec(&self) -> JobSpec {
        JobSpec {
            run_id: self.run_id,
            user_id: self.user_id.clone(),
            symbol: self.symbol.clone(),
            model_id: self.model_id.clone(),
            analysts: self.analysts.clone(),
            as_of: self.as_of,
            attempt: self.attempt,
            options: self.options.clone(),
        }
    }

    pub fn is_active(&self) -> bool {
        !self.status.is_terminal()
    }
}

/// What an analysis needs to know about the run it works on.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub run_id: RunId,
    pub user_id: String,
    pub symbol: String,
    pub model_id: String,
    pub analysts: Vec<AnalystKind>,
    pub as_of: Option<NaiveDate>,
    pub attempt: u32,
    pub options: RunOptions,
}

/// Guards a worker's writes: they apply only while the row is `running` under this lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub run_id: RunId,
    pub owner: String,
    pub attempt: u32,
}

/// A run to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub run_id: RunId,
    pub user_id: String,
    pub symbol: String,
    pub model_id: String,
    pub analysts: Vec<AnalystKind>,
    pub as_of: Option<NaiveDate>,
    pub priority: i32,
    pub max_attempts: u32,
    pub timeout_ms: u64,
    pub retry_of: Option<RunId>,
    pub idempotency_key: Option<String>,
    /// A digest of the request, to tell a repeat of the same request from a different one
    /// reusing the same idempotency key.
    pub request_hash: Option<String>,
    pub options: RunOptions,
    /// The backtest this run is a cell of: queued at [`CELL_PRIORITY`], outside the per-user
    /// limit of interactive runs, under the backtest's own cap.
    pub backtest_id: Option<BacktestId>,
}

impl NewJob {
    /// The initial step list: every step pending.
    pub fn initial_steps(&self) -> Vec<StepProgress> {
        domain::step_names(&self.analysts, self.options.depth).into_iter().map(StepProgress::pending).collect()
    }
}

/// What [`crate::JobStore::insert`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    Created(Job),
    /// The same user sent the same idempotency key with the same request before: here is that run.
    Existing(Job),
    /// The idempotency key was used before for a different request.
    IdempotencyConflict(Job),
    /// The user already has this many active runs.
    LimitReached {
        active: u32,
    },
}

/// The visible progress of a running job, written as a whole by its worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressSnapshot {
    pub steps: Vec<StepProgress>,
    pub progress_percent: u8,
    pub current_step: Option<String>,
}

/// A step's (or a debate turn's) output and what it cost, stored when it completes.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The step's name, or a turn's key within a step (see `JobContext::save_turn`).
    pub step: String,
    pub output: Value,
    pub llm_calls: u32,
    pub tokens: TokenUsage,
    pub cost_usd: f64,
}

/// How a run ended, as its worker (or the reaper or rescuer) writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Completed(Box<AnalysisResult>),
    Failed(String),
    Timeout(String),
    Cancelled,
}

impl Finish {
    pub fn status(&self) -> JobStatus {
        match self {
            Finish::Completed(_) => JobStatus::Completed,
            Finish::Failed(_) => JobStatus::Failed,
            Finish::Timeout(_) => JobStatus::Timeout,
            Finish::Cancelled => JobStatus::Cancelled,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Finish::Completed(_) | Finish::Cancelled => None,
            Finish::Failed(e) | Finish::Timeout(e) => Some(e),
        }
    }
}

/// The steps of a run that ended: finished steps keep their state, an unfinished step named in
/// `failed` becomes `failed`, and every other unfinished step becomes `skipped`.
pub fn close_steps(steps: &[StepProgress], failed: &[&str], now: DateTime<Utc>) -> Vec<StepProgress> {
    steps
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if !s.status.is_finished() {
                s.status = if failed.contains(&s.name.as_str()) { StepStatus::Failed } else { StepStatus::Skipped };
                s.detail = None;
                if s.started_at.is_some() {
                    s.completed_at = Some(now);
                    s.duration_ms = s.started_at.map(|t| (now - t).num_milliseconds().max(0) as u64);
                }
            }
            s
        })
        .collect()
}

/// The steps of a run going back to `pending` for another attempt: completed steps stay
/// completed (their checkpoints will be reused), everything else starts over.
pub fn reset_unfinished_steps(steps: &[StepProgress]) -> Vec<StepProgress> {
    steps
        .iter()
        .map(|s| if s.status == StepStatus::Completed { s.clone() } else { StepProgress::pending(s.name.clone()) })
        .collect()
}

/// Overall percent of a step list whose steps are weighted: data collection, the final
/// assessment and the team's steps count one share each, every analyst two (in a quick run
/// they are where the model time goes).
pub fn overall_percent(steps: &[StepProgress]) -> u8 {
    let weight = |s: &StepProgress| if AnalystKind::from_step_name(&s.name).is_some() { 2.0 } else { 1.0 };
    let total: f64 = steps.iter().map(weight).sum();
    if total == 0.0 {
        return 0;
    }
    let done: f64 = steps
        .iter()
        .map(|s| {
            let p = if s.status == StepStatus::Completed { 100.0 } else { f64::from(s.progress.min(100)) };
            weight(s) * p
        })
        .sum();
    (done / total).floor().clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, status: StepStatus, progress: u8) -> StepProgress {
        StepProgress { status, progress, ..StepProgress::pending(name) }
    }

    #[test]
    fn percent_weights_analysts_double() {
        let steps = vec![
            step("Data Collection", StepStatus::Completed, 100),
            step("Invest Analyst", StepStatus::InProgress, 50),
            step("Risk Analyst", StepStatus::Pending, 0),
            step("Final Assessment", StepStatus::Pending, 0),
        ];
        // (1*100 + 2*50 + 0 + 0) / 6 = 33.3
        assert_eq!(overall_percent(&steps), 33);
        assert_eq!(overall_percent(&[]), 0);
    }

    #[test]
    fn closing_marks_the_failed_step_and_skips_the_rest() {
        let t = Utc::now();
        let mut running = step("Risk Analyst", StepStatus::InProgress, 40);
        running.started_at = Some(t - chrono::Duration::seconds(2));
        let steps = vec![
            step("Data Collection", StepStatus::Completed, 100),
            running,
            step("Final Assessment", StepStatus::Pending, 0),
        ];
        let closed = close_steps(&steps, &["Risk Analyst"], t);
        assert_eq!(
            closed.iter().map(|s| s.status).collect::<Vec<_>>(),
            vec![StepStatus::Completed, StepStatus::Failed, StepStatus::Skipped]
        );
        assert_eq!(closed[1].duration_ms, Some(2000));
        let reset = reset_unfinished_steps(&steps);
        assert_eq!(reset[1], StepProgress::pending("Risk Analyst"));
        assert_eq!(reset[0].status, StepStatus::Completed);
    }
}

/// The priority of a backtest's cells: below every interactive run (priority 0), so a run a
/// user starts by hand is claimed before the cells already waiting.
pub const CELL_PRIORITY: i32 = -10;

/// One row of `trading_agent_backtests`, decoded: the parent of its cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    pub backtest_id: BacktestId,
    pub user_id: String,
    pub spec: BacktestSpec,
    /// How many cells (runs) it has.
    pub cells: u32,
    /// The most of its owner's cells that may run at once.
    pub max_running: u32,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A backtest to insert, with its cells.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBacktest {
    pub backtest_id: BacktestId,
    pub user_id: String,
    pub spec: BacktestSpec,
    pub max_running: u32,
    /// One run per cell, each with `backtest_id` set and [`CELL_PRIORITY`].
    pub cells: Vec<NewJob>,
}

/// What one user's runs spent on model calls in a window (see [`JobStore::usage_since`]).
///
/// [`JobStore::usage_since`]: crate::store::JobStore::usage_since
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UserUsage {
    /// Runs that spent anything.
    pub runs: u64,
    /// Prompt and completion tokens.
    pub tokens: u64,
    /// US dollars at the catalog's prices.
    pub cost_usd: f64,
    /// The earliest last update among those runs: when it leaves the window, the usage drops.
    pub oldest: Option<DateTime<Utc>>,
}
