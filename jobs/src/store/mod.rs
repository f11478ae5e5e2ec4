//! Where jobs live. [`JobStore`] is the only way the engine touches the database; its two
//! backends hold all of the SQL. Both pass one conformance suite (`jobs/tests/conformance`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use domain::backtest::BacktestId;
use domain::{ApiToken, ShareLink};
use domain::{JobStatus, RunId, StepProgress, TokenUsage};

use crate::clock::Clock;
use crate::events::{Event, Events};
use crate::feed::Feed;
use crate::model::{
    Backtest, Checkpoint, Fence, Finish, InsertOutcome, Job, NewBacktest, NewJob, ProgressSnapshot, UserUsage,
};

pub mod postgres;
pub mod sqlite;
pub mod timed;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row is no longer running under this fence: another attempt owns it, or it ended.
    #[error("the lease on run {0} was lost")]
    LeaseLost(RunId),
    /// The database cannot be reached right now (becomes 503).
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A row that does not decode: a bug or a hand edit, reported rather than guessed at.
    #[error("stored job is malformed: {0}")]
    Corrupt(String),
    #[error("unsupported DATABASE_URL: {0}")]
    Config(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(e)
            }
            sqlx::Error::Database(db) if is_unavailable_code(db.code().as_deref()) => StoreError::Unavailable(e),
            _ => StoreError::Database(e),
        }
    }
}

/// PostgreSQL's "cannot connect now"/"admin shutdown" family (class 57P, 08) and SQLite's
/// busy/locked: the request may succeed if repeated later.
fn is_unavailable_code(code: Option<&str>) -> bool {
    match code {
        Some(c) => c.starts_with("57P") || c.starts_with("08") || c == "5" || c == "6",
        None => false,
    }
}

/// The worker-side view of a job it holds: should it stop?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub cancel_requested: bool,
}

/// How a job whose worker is gone is settled by the rescuer or reaper.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    /// Back to `pending` for another attempt, with these steps.
    Requeue { steps: Vec<StepProgress> },
    /// Ended, with these steps.
    End { steps: Vec<StepProgress>, finish: Finish },
}

#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    fn clock(&self) -> Arc<dyn Clock>;

    /// Announces every committed version change of a run: this process's own writes at once,
    /// other processes' once [`listen`](JobStore::listen) runs.
    fn feed(&self) -> &Feed;

    /// Applies the backend's migrations.
    async fn migrate(&self) -> Result<()>;

    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<()>;

    /// Inserts a pending job unless the user already has `active_limit` active jobs, atomically
    /// with respect to concurrent inserts by the same user. An idempotency key already used by
    /// this user returns the earlier run instead.
    async fn insert(&self, job: &NewJob, active_limit: u32) -> Result<InsertOutcome>;

    async fn get(&self, run_id: RunId) -> Result<Option<Job>>;

    /// A run the janitor moved to the archive.
    async fn get_archived(&self, run_id: RunId) -> Result<Option<Job>>;

    /// A user's jobs, newest first, archived ones included (marked), and how many there are in
    /// all.
    async fn list_for_user(
        &self,
        user_id: &str,
        status: Option<JobStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<Job>, u64)>;

    /// Claims a pending job for `owner`, in one statement, and commits: the caller runs the
    /// analysis outside any transaction. Highest priority first; among equals, the job whose
    /// owner has the fewest runs running (so one user's backlog cannot hold back another
    /// user's first run), then the oldest. A backtest's cell is skipped while its owner has
    /// the backtest's `max_running` cells running, or once the backtest is cancelled.
    async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<Job>>;

    /// Extends the lease. `LeaseLost` when the fence no longer holds.
    async fn heartbeat(&self, fence: &Fence, lease: Duration) -> Result<Control>;

    /// Reads whether the job was asked to stop. `LeaseLost` when the fence no longer holds.
    async fn control(&self, fence: &Fence) -> Result<Control>;

    async fn save_progress(&self, fence: &Fence, progress: &ProgressSnapshot) -> Result<Control>;

    /// Stores a finished step's output with the progress, and adds its cost to the job's totals.
    async fn save_checkpoint(
        &self,
        fence: &Fence,
        progress: &ProgressSnapshot,
        checkpoint: &Checkpoint,
    ) -> Result<Control>;

    /// Ends the job as its worker saw it end.
    async fn finish(&self, fence: &Fence, steps: &[StepProgress], finish: &Finish) -> Result<()>;

    /// Gives the job back (graceful shutdown): `pending` again, and this attempt does not count.
    async fn release(&self, fence: &Fence, steps: &[StepProgress]) -> Result<()>;

    /// Inserts a backtest and every one of its cells, in one transaction: a backtest exists
    /// with all its cells or not at all. Cells are outside the per-user limit.
    async fn insert_backtest(&self, backtest: &NewBacktest) -> Result<Backtest>;

    async fn get_backtest(&self, backtest_id: BacktestId) -> Result<Option<Backtest>>;

    /// A user's backtests, newest first.
    async fn list_backtests(&self, user_id: &str, limit: u32) -> Result<Vec<Backtest>>;

    /// The runs of a backtest's cells, in the order they were inserted, without their
    /// checkpoints (left empty): the step outputs are most of a finished cell's bytes, and a
    /// backtest's view, read again and again while it runs, never shows them.
    async fn backtest_cells(&self, backtest_id: BacktestId) -> Result<Vec<Job>>;

    /// Marks a backtest cancelled: from then on no worker claims its pending cells (the
    /// caller cancels them one by one).
    async fn mark_backtest_cancelled(&self, backtest_id: BacktestId) -> Result<()>;

    /// Interactive runs waiting for a worker, from everyone (backtest cells have their own cap).
    async fn queued_interactive(&self) -> Result<u64>;

    /// A pending job becomes `cancelled` at once; a running one gets `cancel_requested`.
    /// Returns the job as it is afterwards, or `None` when there is no such run.
    async fn request_cancel(&self, run_id: RunId) -> Result<Option<Job>>;

    /// Running jobs whose lease has expired.
    async fn expired_leases(&self, limit: u32) -> Result<Vec<Job>>;

    /// Running jobs whose deadline passed before `before`.
    async fn overdue(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Job>>;

    /// Settles a job seen in `observed` state, if it is still exactly that (same lease owner,
    /// attempt and lease expiry). Returns whether it did.
    async fn settle(&self, observed: &Job, settle: &Settle) -> Result<bool>;

    /// Moves up to `batch` jobs that finished before `before` into the archive. Returns how many.
    async fn archive_finished(&self, before: DateTime<Utc>, batch: u32) -> Result<u64>;

    /// Deletes up to `batch` archived runs that were archived before `before`. Returns how many.
    async fn prune_archive(&self, before: DateTime<Utc>, batch: u32) -> Result<u64>;

    /// The step lists of the most recent completed runs of a model, newest first.
    async fn recent_steps(&self, model_id: &str, limit: u32) -> Result<Vec<Vec<StepProgress>>>;

    /// Jobs of the live table that finished at or after `since`, latest first, for the stats.
    async fn finished_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<Job>>;

    /// What the runs of `user_id` last updated at or after `since` spent on model calls, archived
    /// runs aside (they finished long before any window this is asked for). Runs that spent
    /// nothing are not counted.
    async fn usage_since(&self, user_id: &str, since: DateTime<Utc>) -> Result<UserUsage>;

    /// The model calls and tokens of the most recent completed runs of a model that called it,
    /// newest first.
    async fn recent_usage(&self, model_id: &str, limit: u32) -> Result<Vec<(u32, TokenUsage)>>;

    /// Jobs per status, for metrics.
    async fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>>;

    /// Returns the stored value of a shared setting, storing `value` first if there is none.
    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String>;

    /// Tells other processes about an event (PostgreSQL NOTIFY); a no-op where every
    /// interested party shares the process.
    async fn publish(&self, event: &Event) -> Result<()>;

    /// Forwards events other processes publish into `events`, and their writes into
    /// [`feed`](JobStore::feed), from a task of its own (PostgreSQL LISTEN; on SQLite a
    /// watcher of commits by other connections), and makes the feed live.
    async fn listen(&self, events: Events) -> Result<Option<tokio::task::JoinHandle<()>>>;

    // Other ways to an identity ([`crate::access`]). Secrets are stored as their SHA-256 only.

    /// Stores a personal API token of `user_id` whose secret hashes to `hash`.
    async fn insert_token(&self, user_id: &str, token: &ApiToken, hash: &str) -> Result<()>;

    /// The tokens of a user, newest first.
    async fn tokens_for_user(&self, user_id: &str) -> Result<Vec<ApiToken>>;

    /// Deletes one of a user's tokens; whether there was one.
    async fn delete_token(&self, user_id: &str, id: &str) -> Result<bool>;

    /// The user a token's hash belongs to.
    async fn token_owner(&self, hash: &str) -> Result<Option<String>>;

    /// Stores a share link of a run of `user_id` whose secret hashes to `hash`.
    async fn insert_share(&self, user_id: &str, share: &ShareLink, hash: &str) -> Result<()>;

    /// A user's share links of one run, newest first.
    async fn shares_for_run(&self, user_id: &str, run_id: RunId) -> Result<Vec<ShareLink>>;

    /// Deletes one of a user's share links; whether there was one.
    async fn delete_share(&self, user_id: &str, id: &str) -> Result<bool>;

    /// The run a share link's hash opens, and its owner.
    async fn shared_run(&self, hash: &str) -> Result<Option<(RunId, String)>>;
}

/// Opens the store a `DATABASE_URL` names: `sqlite:` or `postgres:`/`postgresql:`, with every
/// operation timed ([`timed::TimedStore`]).
pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Arc<dyn JobStore>> {
    let store: Arc<dyn JobStore> = if url.starts_with("sqlite:") {
        Arc::new(sqlite::SqliteStore::connect(url, clock).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(postgres::PostgresStore::connect(url, clock).await?)
    } else {
        return Err(StoreError::Config(format!(
            "'{}' (expected sqlite:… or postgres://…)",
            url.split('@').next_back().unwrap_or(url)
        )));
    };
    Ok(Arc::new(timed::TimedStore::new(store)))
}

/// The outcome of an insert whose idempotency key this user already used for `existing`.
pub(crate) fn repeat_outcome(existing: Job, request_hash: &Option<String>) -> InsertOutcome {
    if existing.request_hash == *request_hash {
        InsertOutcome::Existing(existing)
    } else {
        InsertOutcome::IdempotencyConflict(existing)
    }
}

/// A fenced write that changed no row lost its lease (or the job already ended).
pub(crate) fn fenced(rows_affected: u64, run_id: RunId) -> Result<()> {
    if rows_affected == 0 {
        return Err(StoreError::LeaseLost(run_id));
    }
    Ok(())
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serialising plain data cannot fail")
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(column: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn parse_status(s: &str) -> Result<JobStatus> {
    s.parse().map_err(StoreError::Corrupt)
}

pub(crate) fn parse_run_id(s: &str) -> Result<RunId> {
    s.parse().map_err(|e: domain::IdError| StoreError::Corrupt(e.0))
}

/// A run's calls and tokens from their columns `(llm_calls, prompt_tokens, completion_tokens)`.
fn usage_of((calls, prompt, completion): (i64, i64, i64)) -> (u32, TokenUsage) {
    let tokens = TokenUsage { prompt: prompt.max(0) as u64, completion: completion.max(0) as u64 };
    (calls.clamp(0, i64::from(u32::MAX)) as u32, tokens)
}
