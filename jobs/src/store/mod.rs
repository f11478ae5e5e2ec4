//! Where jobs live. [`JobStore`] holds the queue's verbs and nothing else; its two backends hold
//! all of the queue's SQL, and both pass one conformance suite (`jobs/tests/conformance.rs`).
//! Writes of running jobs and their ends take slices, so that a process writes many jobs in one
//! statement ([`crate::batch`]).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::{PgPool, SqlitePool};

use crate::clock::Clock;
use crate::events::{Event, Events};
use crate::feed::Feed;
use crate::job::{
    Control, Count, Fence, Filter, Finish, Insert, InsertOutcome, Job, JobId, Page, Settle, Stuck, Write,
};

pub mod postgres;
pub mod sqlite;
pub mod timed;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; the same call may succeed later.
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

#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Announces every committed version change of a job: this process's own writes at once,
    /// other processes' once [`listen`](JobStore::listen) runs.
    fn feed(&self) -> &Feed;

    /// Inserts a job — pending, or waiting with its children pending — in one transaction.
    /// With `owner_limit`, refuses when the owner already has that many active jobs without a
    /// parent, atomically with respect to the owner's concurrent inserts. An idempotency key
    /// the owner used before returns that job instead.
    async fn insert(&self, insert: &Insert) -> Result<InsertOutcome>;

    /// A job, live or archived.
    async fn get(&self, id: JobId) -> Result<Option<Job>>;

    /// Jobs matching `filter`, in its order.
    async fn list(&self, filter: &Filter) -> Result<Page>;

    /// Claims up to `limit` pending jobs of `kinds` for `owner`, in one statement, and commits:
    /// the caller runs them outside any transaction. Highest priority first; among equals, the
    /// jobs of owners with the fewest jobs running (so one owner's backlog cannot hold back
    /// another's first job), then the oldest. A child is skipped while its owner has its
    /// parent's `child_limit` children running, or once its parent is no longer waiting.
    async fn claim(&self, owner: &str, lease: Duration, limit: u32, kinds: &[String]) -> Result<Vec<Job>>;

    /// Whether each fenced job was asked to stop (`None`: its fence no longer holds), extending
    /// the leases by `extend` (a heartbeat) when given.
    async fn control(&self, fences: &[Fence], extend: Option<Duration>) -> Result<Vec<Option<Control>>>;

    /// Writes running jobs' progress and checkpoints; `None` where the fence no longer holds.
    async fn write(&self, writes: &[Write]) -> Result<Vec<Option<Control>>>;

    /// Ends running jobs as their workers saw them end (or gives them back); whether each fence
    /// held. A parent whose last active child ended becomes pending.
    async fn finish(&self, finishes: &[Finish]) -> Result<Vec<bool>>;

    /// A pending job becomes `cancelled` at once, a running one gets `cancel_requested`, a
    /// waiting parent is cancelled with its pending children (its running children are asked
    /// to stop). Returns the job as it is afterwards, or `None` when there is no such job.
    async fn cancel(&self, id: JobId) -> Result<Option<Job>>;

    /// Running jobs whose lease expired or whose deadline passed more than `slack` ago, and
    /// waiting parents none of whose children is active any more — all on the store's clock.
    async fn stuck(&self, slack: Duration, limit: u32) -> Result<Vec<(Job, Stuck)>>;

    /// Settles a job seen in `observed` state, if it is still exactly that (same state, lease
    /// owner, attempt and lease expiry). Returns whether it did.
    async fn settle(&self, observed: &Job, settle: &Settle) -> Result<bool>;

    /// Moves up to `batch` jobs that ended before `before` into the archive. Returns how many.
    async fn archive(&self, before: DateTime<Utc>, batch: u32) -> Result<u64>;

    /// Deletes up to `batch` archived jobs archived before `before`. Returns how many.
    async fn prune(&self, before: DateTime<Utc>, batch: u32) -> Result<u64>;

    /// Live jobs per kind, state and whether they have a parent.
    async fn counts(&self) -> Result<Vec<Count>>;

    /// Tells other processes about an event (PostgreSQL NOTIFY); a no-op where every
    /// interested party shares the process.
    async fn publish(&self, event: &Event) -> Result<()>;

    /// Forwards events other processes publish into `events`, and their writes into
    /// [`feed`](JobStore::feed), from a task of its own (PostgreSQL LISTEN; on SQLite a
    /// watcher of commits by other connections), and makes the feed live.
    async fn listen(&self, events: Events) -> Result<Option<tokio::task::JoinHandle<()>>>;
}

/// A database's connection pools, which the queue and the application's own store share (on
/// SQLite, one writer for both).
#[derive(Debug, Clone)]
pub enum Pools {
    Sqlite { writer: SqlitePool, reader: SqlitePool },
    Postgres(PgPool),
}

impl Pools {
    pub fn backend(&self) -> &'static str {
        match self {
            Pools::Sqlite { .. } => "sqlite",
            Pools::Postgres(_) => "postgres",
        }
    }
}

/// An open database: its pools and the queue over them.
#[derive(Clone)]
pub struct Database {
    pub pools: Pools,
    pub clock: Arc<dyn Clock>,
    queue: Arc<dyn JobStore>,
}

impl Database {
    /// Opens the database a `DATABASE_URL` names (`sqlite:…` or `postgres://…`); the queue's
    /// operations are timed ([`timed::TimedStore`]).
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        let (pools, queue): (Pools, Arc<dyn JobStore>) = if url.starts_with("sqlite:") {
            let store = sqlite::SqliteStore::connect(url, clock.clone()).await?;
            (store.pools(), Arc::new(store))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let store = postgres::PostgresStore::connect(url, clock.clone()).await?;
            (store.pools(), Arc::new(store))
        } else {
            return Err(StoreError::Config(format!(
                "'{}' (expected sqlite:… or postgres://…)",
                url.split('@').next_back().unwrap_or(url)
            )));
        };
        let queue = Arc::new(timed::TimedStore::new(queue, pools.backend()));
        Ok(Self { pools, clock, queue })
    }

    /// The queue's own tables, under their own migrations table (`_queue_migrations`), so the
    /// queue stays separable from any application's schema.
    pub async fn migrate_queue(&self) -> Result<()> {
        let failed = |e| StoreError::Database(sqlx::Error::Migrate(Box::new(e)));
        match &self.pools {
            Pools::Sqlite { writer, .. } => {
                let mut m = sqlx::migrate!("./migrations/sqlite");
                m.dangerous_set_table_name("_queue_migrations");
                m.run(writer).await.map_err(failed)
            }
            Pools::Postgres(pool) => {
                let mut m = sqlx::migrate!("./migrations/postgres");
                m.dangerous_set_table_name("_queue_migrations");
                m.run(pool).await.map_err(failed)
            }
        }
    }

    pub fn queue(&self) -> &Arc<dyn JobStore> {
        &self.queue
    }

    pub fn backend(&self) -> &'static str {
        self.pools.backend()
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        match &self.pools {
            Pools::Sqlite { reader, .. } => sqlx::query("select 1").execute(reader).await.map(drop)?,
            Pools::Postgres(pool) => sqlx::query("select 1").execute(pool).await.map(drop)?,
        }
        Ok(())
    }
}

/// The outcome of an insert whose idempotency key the owner already used for `existing`.
pub(crate) fn repeat_outcome(existing: Job, args_hash: &Option<String>) -> InsertOutcome {
    if existing.args_hash == *args_hash {
        InsertOutcome::Existing(existing)
    } else {
        InsertOutcome::IdempotencyConflict(existing)
    }
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serialising plain data cannot fail")
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(column: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn parse_state(s: &str) -> Result<crate::job::State> {
    s.parse().map_err(StoreError::Corrupt)
}

pub(crate) fn parse_id(column: &str, s: &str) -> Result<JobId> {
    s.parse().map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn time(column: &str, ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(|m| DateTime::from_timestamp_millis(m).ok_or_else(|| StoreError::Corrupt(format!("{column}: {m}"))))
        .transpose()
}

/// What `stuck` says of a row, from its `reason` column.
pub(crate) fn parse_stuck(reason: &str) -> Result<Stuck> {
    match reason {
        "expired" => Ok(Stuck::Expired),
        "overdue" => Ok(Stuck::Overdue),
        "orphaned" => Ok(Stuck::Orphaned),
        other => Err(StoreError::Corrupt(format!("stuck reason '{other}'"))),
    }
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// How many claimable jobs, oldest first within each priority, a claim of `limit` jobs weighs
/// for fairness: enough to find, among the oldest, the owners with the fewest jobs running,
/// without reading the whole queue each time. A child its owner may not start yet (its
/// parent's cap reached) is passed over before the window is cut, so a long backlog of one
/// owner's children never hides another owner's jobs.
pub(crate) fn claim_window(limit: u32) -> i64 {
    i64::from(limit) * 8 + 32
}

/// The states in which a job counts as active for the per-owner limit.
pub(crate) const ACTIVE: &str = "('pending', 'running')";
/// The states of a job that ended.
pub(crate) const TERMINAL: &str = "('completed', 'failed', 'timeout', 'cancelled')";
