//! The PostgreSQL backend: for several web and worker processes sharing one database.
//!
//! Claims use `for update skip locked`, so concurrent claimers never wait on each other and
//! never take the same row. The per-user limit takes a transaction-scoped advisory lock keyed
//! by the user, which serialises that user's inserts (and only theirs) across processes.
//! Events travel by `NOTIFY` on one channel; [`PostgresStore::listen`] forwards them into the
//! process's [`Events`].
//!
//! Every write that changes a run's version also `NOTIFY`s, from a trigger. PostgreSQL commits
//! notifying transactions one at a time, across all its databases (a lock taken before the
//! commit record is written and released once it is flushed), so their WAL flushes are never
//! shared: each such write waits for the flushes of everyone else's as well. A run's progress
//! and checkpoint writes, 12 of a quick run's 14 writes, therefore commit without waiting for
//! the flush (`synchronous_commit = off` for that statement's own transaction): the lock is
//! then held for microseconds. Such a write is visible and announced at once like any other.
//! Only a crash of PostgreSQL or of its machine can lose the last moments of them (whole
//! writes, never parts of one), and that ends every connection, so every process resynchronises
//! its feed; the run's lease and fence are untouched. A lost checkpoint is a step a resumed run
//! does again, and its model usage is missing from the run's totals. (SQLite's
//! `synchronous = NORMAL` takes a narrower form of this risk for every write: there only a
//! crash of the machine loses the last commits.) Claims, finishes, inserts, cancels and
//! settles still wait for the flush.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::backtest::{BacktestId, BacktestSpec};
use domain::{AnalysisResult, AnalystKind, JobStatus, RunId, RunOptions, StepProgress, TokenUsage};
use domain::{ApiToken, ShareLink};
use sqlx::postgres::{PgListener, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::{Control, JobStore, Result, Settle, StoreError, fenced, parse_status, repeat_outcome};
use crate::clock::Clock;
use crate::events::{Event, Events};
use crate::feed::Feed;
use crate::model::{
    Backtest, Checkpoint, Fence, Finish, InsertOutcome, Job, NewBacktest, NewJob, ProgressSnapshot, UserUsage,
    close_steps, overall_percent,
};

/// The NOTIFY channel every process listens on.
pub const CHANNEL: &str = "trading_agent_events";
/// The channel the jobs table's trigger announces `run_id version` on after every version change.
pub const RUNS_CHANNEL: &str = "trading_agent_runs";
const POOL_SIZE: u32 = 16;

pub struct PostgresStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    feed: Feed,
}

impl PostgresStore {
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(StdDuration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Self { pool, clock, feed: Feed::new() })
    }
}

fn decode(row: &PgRow) -> Result<Job> {
    let analysts: Json<Vec<AnalystKind>> = row.try_get("analysts")?;
    let steps: Json<Vec<StepProgress>> = row.try_get("steps")?;
    let checkpoints: Json<std::collections::BTreeMap<String, serde_json::Value>> = row.try_get("checkpoints")?;
    let result: Option<Json<AnalysisResult>> = row.try_get("result")?;
    let status: String = row.try_get("status")?;
    let options: Json<RunOptions> = row.try_get("options")?;
    Ok(Job {
        id: row.try_get("id")?,
        run_id: RunId::from_uuid(row.try_get::<Uuid, _>("run_id")?),
        user_id: row.try_get("user_id")?,
        symbol: row.try_get("symbol")?,
        model_id: row.try_get("model_id")?,
        analysts: analysts.0,
        as_of: row.try_get::<Option<NaiveDate>, _>("as_of")?,
        status: parse_status(&status)?,
        current_step: row.try_get("current_step")?,
        progress_percent: row.try_get::<i16, _>("progress_percent")?.clamp(0, 100) as u8,
        steps: steps.0,
        checkpoints: checkpoints.0,
        result: result.map(|r| r.0),
        error: row.try_get("error")?,
        priority: row.try_get("priority")?,
        attempt: row.try_get::<i32, _>("attempt")?.max(0) as u32,
        max_attempts: row.try_get::<i32, _>("max_attempts")?.max(0) as u32,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
        cancel_requested: row.try_get("cancel_requested")?,
        version: row.try_get("version")?,
        retry_of: row.try_get::<Option<Uuid>, _>("retry_of")?.map(RunId::from_uuid),
        idempotency_key: row.try_get("idempotency_key")?,
        request_hash: row.try_get("request_hash")?,
        timeout_ms: row.try_get::<i64, _>("timeout_ms")?.max(0) as u64,
        timeout_at: row.try_get("timeout_at")?,
        llm_calls: row.try_get::<i32, _>("llm_calls")?.max(0) as u32,
        tokens: TokenUsage {
            prompt: row.try_get::<i64, _>("prompt_tokens")?.max(0) as u64,
            completion: row.try_get::<i64, _>("completion_tokens")?.max(0) as u64,
        },
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        duration_ms: row.try_get::<Option<i64>, _>("duration_ms")?.map(|d| d.max(0) as u64),
        options: options.0,
        cost_usd: row.try_get("cost_usd")?,
        archived: row.try_get::<Option<bool>, _>("archived").ok().flatten().unwrap_or(false),
        backtest_id: row.try_get::<Option<Uuid>, _>("backtest_id")?.map(RunId::from_uuid),
    })
}

fn decode_backtest(row: &PgRow) -> Result<Backtest> {
    let spec: Json<BacktestSpec> = row.try_get("spec")?;
    Ok(Backtest {
        backtest_id: RunId::from_uuid(row.try_get::<Uuid, _>("backtest_id")?),
        user_id: row.try_get("user_id")?,
        spec: spec.0,
        cells: row.try_get::<i32, _>("cells")?.max(0) as u32,
        max_running: row.try_get::<i32, _>("max_running")?.max(0) as u32,
        cancelled_at: row.try_get("cancelled_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts one pending run inside the caller's transaction.
async fn insert_row(tx: &mut sqlx::PgConnection, job: &NewJob, now: DateTime<Utc>) -> Result<Job> {
    let row = sqlx::query(
        "insert into trading_agent_jobs
            (run_id, user_id, symbol, model_id, analysts, as_of, steps, priority, max_attempts,
             timeout_ms, retry_of, idempotency_key, request_hash, created_at, updated_at, options, backtest_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16)
         returning *",
    )
    .bind(job.run_id.as_uuid())
    .bind(&job.user_id)
    .bind(&job.symbol)
    .bind(&job.model_id)
    .bind(Json(&job.analysts))
    .bind(job.as_of)
    .bind(Json(job.initial_steps()))
    .bind(job.priority)
    .bind(job.max_attempts as i32)
    .bind(job.timeout_ms as i64)
    .bind(job.retry_of.map(|r| r.as_uuid()))
    .bind(&job.idempotency_key)
    .bind(&job.request_hash)
    .bind(now)
    .bind(Json(&job.options))
    .bind(job.backtest_id.map(|b| b.as_uuid()))
    .fetch_one(&mut *tx)
    .await?;
    decode(&row)
}

/// Every column of a job, named: the archive has them in another order (columns added later
/// come after its `archived_at`).
const ARCHIVE_COLUMNS: &str = "id, run_id, user_id, symbol, model_id, analysts, as_of, status, current_step, \
    progress_percent, steps, checkpoints, result, error, priority, attempt, max_attempts, lease_owner, \
    lease_expires_at, heartbeat_at, cancel_requested, version, retry_of, idempotency_key, request_hash, \
    timeout_ms, timeout_at, llm_calls, prompt_tokens, completion_tokens, started_at, completed_at, \
    created_at, updated_at, duration_ms, options, cost_usd, backtest_id";

fn control(row: Option<PgRow>, run_id: RunId) -> Result<Control> {
    match row {
        Some(r) => Ok(Control { cancel_requested: r.try_get::<bool, _>(0)? }),
        None => Err(StoreError::LeaseLost(run_id)),
    }
}

#[async_trait]
impl JobStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Database(sqlx::Error::Migrate(Box::new(e))))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert(&self, job: &NewJob, active_limit: u32) -> Result<InsertOutcome> {
        let mut tx = self.pool.begin().await?;
        // Serialises this user's inserts across every process until commit.
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 7262))")
            .bind(&job.user_id)
            .execute(&mut *tx)
            .await?;
        if let Some(key) = &job.idempotency_key {
            let existing = sqlx::query("select * from trading_agent_jobs where user_id = $1 and idempotency_key = $2")
                .bind(&job.user_id)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing {
                let existing = decode(&row)?;
                tx.rollback().await?;
                return Ok(repeat_outcome(existing, &job.request_hash));
            }
        }
        let active: i64 = sqlx::query_scalar(
            "select count(*) from trading_agent_jobs
             where user_id = $1 and status in ('pending', 'running') and backtest_id is null",
        )
        .bind(&job.user_id)
        .fetch_one(&mut *tx)
        .await?;
        if active >= i64::from(active_limit) {
            tx.rollback().await?;
            return Ok(InsertOutcome::LimitReached { active: active as u32 });
        }
        let created = insert_row(&mut tx, job, self.clock.now()).await?;
        tx.commit().await?;
        Ok(InsertOutcome::Created(created))
    }

    async fn get(&self, run_id: RunId) -> Result<Option<Job>> {
        sqlx::query("select * from trading_agent_jobs where run_id = $1")
            .bind(run_id.as_uuid())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| decode(&r))
            .transpose()
    }

    async fn get_archived(&self, run_id: RunId) -> Result<Option<Job>> {
        sqlx::query("select *, true as archived from trading_agent_jobs_archive where run_id = $1")
            .bind(run_id.as_uuid())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| decode(&r))
            .transpose()
    }

    async fn list_for_user(
        &self,
        user_id: &str,
        status: Option<JobStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<Job>, u64)> {
        let status = status.map(|s| s.as_str());
        // History keeps archived runs, marked as such: both tables, one order.
        let list = sqlx::AssertSqlSafe(format!(
            "select {ARCHIVE_COLUMNS}, false as archived from trading_agent_jobs
             where user_id = $1 and ($2::text is null or status = $2) and backtest_id is null
             union all
             select {ARCHIVE_COLUMNS}, true as archived from trading_agent_jobs_archive
             where user_id = $1 and ($2::text is null or status = $2) and backtest_id is null
             order by created_at desc, id desc limit $3 offset $4"
        ));
        let rows = sqlx::query(list)
            .bind(user_id)
            .bind(status)
            .bind(i64::from(limit))
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await?;
        let total: i64 = sqlx::query_scalar(
            "select (select count(*) from trading_agent_jobs where user_id = $1 and ($2::text is null or status = $2) and backtest_id is null)
                  + (select count(*) from trading_agent_jobs_archive where user_id = $1 and ($2::text is null or status = $2) and backtest_id is null)",
        )
        .bind(user_id)
        .bind(status)
        .fetch_one(&self.pool)
        .await?;
        Ok((rows.iter().map(decode).collect::<Result<_>>()?, total as u64))
    }

    /// The running runs are counted once per owner (`running`), not once per pending row: with
    /// a backtest's hundreds of queued cells, two correlated counts per candidate made the claim
    /// cost grow with the queue. A cell whose backtest row is missing stays unclaimable (its cap
    /// compares with null), as before.
    async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<Job>> {
        let now = self.clock.now();
        let job = sqlx::query(
            "update trading_agent_jobs
             set status = 'running', attempt = attempt + 1, lease_owner = $1,
                 lease_expires_at = coalesce($4, now()) + $2 * interval '1 millisecond',
                 heartbeat_at = coalesce($4, now()), started_at = coalesce(started_at, $3),
                 timeout_at = $3 + timeout_ms * interval '1 millisecond',
                 version = version + 1, updated_at = $3
             where id = (with running as (
                             select user_id, count(*) as runs, count(backtest_id) as cells
                             from trading_agent_jobs where status = 'running' group by user_id)
                         select j.id from trading_agent_jobs j
                         left join running r on r.user_id = j.user_id
                         left join trading_agent_backtests b on b.backtest_id = j.backtest_id
                         where j.status = 'pending'
                           and (j.backtest_id is null
                                or coalesce(r.cells, 0)
                                   < case when b.cancelled_at is null then b.max_running else 0 end)
                         order by j.priority desc, coalesce(r.runs, 0), j.created_at, j.id
                         limit 1 for update of j skip locked)
             returning *",
        )
        .bind(owner)
        .bind(lease.num_milliseconds())
        .bind(now)
        .bind(self.clock.lease_time())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| decode(&r))
        .transpose()?;
        if let Some(job) = &job {
            self.feed.touched(job.run_id);
        }
        Ok(job)
    }

    async fn heartbeat(&self, fence: &Fence, lease: Duration) -> Result<Control> {
        let row = sqlx::query(
            "update trading_agent_jobs
             set lease_expires_at = coalesce($2, now()) + $1 * interval '1 millisecond',
                 heartbeat_at = coalesce($2, now())
             where run_id = $3 and lease_owner = $4 and attempt = $5 and status = 'running'
             returning cancel_requested",
        )
        .bind(lease.num_milliseconds())
        .bind(self.clock.lease_time())
        .bind(fence.run_id.as_uuid())
        .bind(&fence.owner)
        .bind(fence.attempt as i32)
        .fetch_optional(&self.pool)
        .await?;
        control(row, fence.run_id)
    }

    async fn control(&self, fence: &Fence) -> Result<Control> {
        let row = sqlx::query(
            "select cancel_requested from trading_agent_jobs
             where run_id = $1 and lease_owner = $2 and attempt = $3 and status = 'running'",
        )
        .bind(fence.run_id.as_uuid())
        .bind(&fence.owner)
        .bind(fence.attempt as i32)
        .fetch_optional(&self.pool)
        .await?;
        control(row, fence.run_id)
    }

    /// Commits without waiting for the WAL flush (see the module's documentation).
    async fn save_progress(&self, fence: &Fence, progress: &ProgressSnapshot) -> Result<Control> {
        let row = sqlx::query(
            "update trading_agent_jobs
             set steps = $1, progress_percent = $2, current_step = $3, version = version + 1, updated_at = $4
             from (select set_config('synchronous_commit', 'off', true)) as no_flush_wait
             where run_id = $5 and lease_owner = $6 and attempt = $7 and status = 'running'
             returning cancel_requested",
        )
        .bind(Json(&progress.steps))
        .bind(i16::from(progress.progress_percent))
        .bind(&progress.current_step)
        .bind(self.clock.now())
        .bind(fence.run_id.as_uuid())
        .bind(&fence.owner)
        .bind(fence.attempt as i32)
        .fetch_optional(&self.pool)
        .await?;
        self.feed.touched(fence.run_id);
        control(row, fence.run_id)
    }

    /// Commits without waiting for the WAL flush, like [`save_progress`](Self::save_progress).
    async fn save_checkpoint(
        &self,
        fence: &Fence,
        progress: &ProgressSnapshot,
        checkpoint: &Checkpoint,
    ) -> Result<Control> {
        let row = sqlx::query(
            "update trading_agent_jobs
             set steps = $1, progress_percent = $2, current_step = $3,
                 checkpoints = checkpoints || jsonb_build_object($4::text, $5::jsonb),
                 llm_calls = llm_calls + $6, prompt_tokens = prompt_tokens + $7,
                 completion_tokens = completion_tokens + $8, cost_usd = cost_usd + $13,
                 version = version + 1, updated_at = $9
             from (select set_config('synchronous_commit', 'off', true)) as no_flush_wait
             where run_id = $10 and lease_owner = $11 and attempt = $12 and status = 'running'
             returning cancel_requested",
        )
        .bind(Json(&progress.steps))
        .bind(i16::from(progress.progress_percent))
        .bind(&progress.current_step)
        .bind(&checkpoint.step)
        .bind(Json(&checkpoint.output))
        .bind(checkpoint.llm_calls as i32)
        .bind(checkpoint.tokens.prompt as i64)
        .bind(checkpoint.tokens.completion as i64)
        .bind(self.clock.now())
        .bind(fence.run_id.as_uuid())
        .bind(&fence.owner)
        .bind(fence.attempt as i32)
        .bind(checkpoint.cost_usd)
        .fetch_optional(&self.pool)
        .await?;
        self.feed.touched(fence.run_id);
        control(row, fence.run_id)
    }

    async fn finish(&self, fence: &Fence, steps: &[StepProgress], finish: &Finish) -> Result<()> {
        let percent = if matches!(finish, Finish::Completed(_)) { 100 } else { overall_percent(steps) };
        let result = match finish {
            Finish::Completed(r) => Some(Json(r.as_ref().clone())),
            _ => None,
        };
        let done = sqlx::query(
            "update trading_agent_jobs
             set status = $1, steps = $2, progress_percent = $3, current_step = null, result = $4, error = $5,
                 lease_expires_at = null, completed_at = $6,
                 duration_ms = (extract(epoch from ($6 - coalesce(started_at, $6))) * 1000)::bigint,
                 version = version + 1, updated_at = $6
             where run_id = $7 and lease_owner = $8 and attempt = $9 and status = 'running'",
        )
        .bind(finish.status().as_str())
        .bind(Json(steps))
        .bind(i16::from(percent))
        .bind(result)
        .bind(finish.error())
        .bind(self.clock.now())
        .bind(fence.run_id.as_uuid())
        .bind(&fence.owner)
        .bind(fence.attempt as i32)
        .execute(&self.pool)
        .await?;
        self.feed.touched(fence.run_id);
        fenced(done.rows_affected(), fence.run_id)
    }

    async fn release(&self, fence: &Fence, steps: &[StepProgress]) -> Result<()> {
        let done = sqlx::query(
            "update trading_agent_jobs
             set status = 'pending', attempt = attempt - 1, lease_owner = null, lease_expires_at = null,
                 heartbeat_at = null, timeout_at = null, steps = $1, progress_percent = $2, current_step = null,
                 version = version + 1, updated_at = $3
             where run_id = $4 and lease_owner = $5 and attempt = $6 and status = 'running'",
        )
        .bind(Json(steps))
        .bind(i16::from(overall_percent(steps)))
        .bind(self.clock.now())
        .bind(fence.run_id.as_uuid())
        .bind(&fence.owner)
        .bind(fence.attempt as i32)
        .execute(&self.pool)
        .await?;
        self.feed.touched(fence.run_id);
        fenced(done.rows_affected(), fence.run_id)
    }

    async fn insert_backtest(&self, backtest: &NewBacktest) -> Result<Backtest> {
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "insert into trading_agent_backtests (backtest_id, user_id, spec, cells, max_running, created_at)
             values ($1, $2, $3, $4, $5, $6) returning *",
        )
        .bind(backtest.backtest_id.as_uuid())
        .bind(&backtest.user_id)
        .bind(Json(&backtest.spec))
        .bind(backtest.cells.len() as i32)
        .bind(backtest.max_running as i32)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let created = decode_backtest(&row)?;
        for cell in &backtest.cells {
            insert_row(&mut tx, cell, now).await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn get_backtest(&self, backtest_id: BacktestId) -> Result<Option<Backtest>> {
        sqlx::query("select * from trading_agent_backtests where backtest_id = $1")
            .bind(backtest_id.as_uuid())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| decode_backtest(&r))
            .transpose()
    }

    async fn list_backtests(&self, user_id: &str, limit: u32) -> Result<Vec<Backtest>> {
        let rows = sqlx::query(
            "select * from trading_agent_backtests where user_id = $1 order by created_at desc, id desc limit $2",
        )
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_backtest).collect()
    }

    /// The live cells and those the janitor has archived, in one statement (so one snapshot:
    /// a cell being archived is read once), without their checkpoints.
    async fn backtest_cells(&self, backtest_id: BacktestId) -> Result<Vec<Job>> {
        let columns = ARCHIVE_COLUMNS.replace("checkpoints,", "'{}'::jsonb as checkpoints,");
        let query = sqlx::AssertSqlSafe(format!(
            "select {columns} from trading_agent_jobs where backtest_id = $1
             union all
             select {columns} from trading_agent_jobs_archive where backtest_id = $1
             order by id"
        ));
        let rows = sqlx::query(query).bind(backtest_id.as_uuid()).fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    async fn mark_backtest_cancelled(&self, backtest_id: BacktestId) -> Result<()> {
        sqlx::query(
            "update trading_agent_backtests set cancelled_at = coalesce(cancelled_at, $1) where backtest_id = $2",
        )
        .bind(self.clock.now())
        .bind(backtest_id.as_uuid())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn queued_interactive(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from trading_agent_jobs where status = 'pending' and backtest_id is null",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    async fn request_cancel(&self, run_id: RunId) -> Result<Option<Job>> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query("select * from trading_agent_jobs where run_id = $1 for update")
            .bind(run_id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job = decode(&row)?;
        let now = self.clock.now();
        let updated = match job.status {
            JobStatus::Pending => {
                let steps = close_steps(&job.steps, &[], now);
                sqlx::query(
                    "update trading_agent_jobs
                     set status = 'cancelled', cancel_requested = true, steps = $1, current_step = null,
                         completed_at = $2, version = version + 1, updated_at = $2
                     where id = $3 returning *",
                )
                .bind(Json(&steps))
                .bind(now)
                .bind(job.id)
                .fetch_one(&mut *tx)
                .await?
            }
            JobStatus::Running if !job.cancel_requested => {
                sqlx::query(
                    "update trading_agent_jobs set cancel_requested = true, version = version + 1, updated_at = $1
                     where id = $2 returning *",
                )
                .bind(now)
                .bind(job.id)
                .fetch_one(&mut *tx)
                .await?
            }
            _ => {
                tx.rollback().await?;
                return Ok(Some(job));
            }
        };
        let job = decode(&updated)?;
        tx.commit().await?;
        self.feed.touched(run_id);
        Ok(Some(job))
    }

    async fn expired_leases(&self, limit: u32) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "select * from trading_agent_jobs where status = 'running' and lease_expires_at < coalesce($1, now())
             order by lease_expires_at limit $2",
        )
        .bind(self.clock.lease_time())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    async fn overdue(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "select * from trading_agent_jobs where status = 'running' and timeout_at < $1
             order by timeout_at limit $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    async fn settle(&self, observed: &Job, settle: &Settle) -> Result<bool> {
        let now = self.clock.now();
        let query = match settle {
            Settle::Requeue { steps } => sqlx::query(
                "update trading_agent_jobs
                 set status = 'pending', lease_owner = null, lease_expires_at = null, heartbeat_at = null,
                     timeout_at = null, steps = $1, progress_percent = $2, current_step = null,
                     version = version + 1, updated_at = $3
                 where run_id = $4 and status = 'running' and lease_owner is not distinct from $5
                   and attempt = $6 and lease_expires_at is not distinct from $7",
            )
            .bind(Json(steps.clone()))
            .bind(i16::from(overall_percent(steps)))
            .bind(now),
            Settle::End { steps, finish } => sqlx::query(
                "update trading_agent_jobs
                 set status = $1, steps = $2, progress_percent = $3, current_step = null, error = $4,
                     lease_expires_at = null, completed_at = $5,
                     duration_ms = (extract(epoch from ($5 - coalesce(started_at, $5))) * 1000)::bigint,
                     version = version + 1, updated_at = $5
                 where run_id = $6 and status = 'running' and lease_owner is not distinct from $7
                   and attempt = $8 and lease_expires_at is not distinct from $9",
            )
            .bind(finish.status().as_str())
            .bind(Json(steps.clone()))
            .bind(i16::from(overall_percent(steps)))
            .bind(finish.error().map(str::to_string))
            .bind(now),
        };
        let done = query
            .bind(observed.run_id.as_uuid())
            .bind(observed.lease_owner.clone())
            .bind(observed.attempt as i32)
            .bind(observed.lease_expires_at)
            .execute(&self.pool)
            .await?;
        self.feed.touched(observed.run_id);
        Ok(done.rows_affected() == 1)
    }

    async fn prune_archive(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        Ok(sqlx::query(
            "delete from trading_agent_jobs_archive where id in
               (select id from trading_agent_jobs_archive where archived_at < $1 order by archived_at limit $2)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn archive_finished(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        // One short statement per batch: the CTE locks only the rows it moves (skipping rows
        // another janitor holds), so the table is never locked as a whole.
        let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
            "with doomed as (
                 select id from trading_agent_jobs
                 where status in ('completed', 'failed', 'timeout', 'cancelled') and completed_at < $1
                 order by completed_at limit $2 for update skip locked
             ), gone as (
                 delete from trading_agent_jobs j using doomed where j.id = doomed.id returning j.*
             )
             insert into trading_agent_jobs_archive ({ARCHIVE_COLUMNS}, archived_at)
             select {ARCHIVE_COLUMNS}, $3 from gone"
        )))
        .bind(before)
        .bind(i64::from(batch))
        .bind(self.clock.now())
        .execute(&self.pool)
        .await?;
        Ok(moved.rows_affected())
    }

    async fn recent_steps(&self, model_id: &str, limit: u32) -> Result<Vec<Vec<StepProgress>>> {
        let rows: Vec<Json<Vec<StepProgress>>> = sqlx::query_scalar(
            "select steps from trading_agent_jobs where model_id = $1 and status = 'completed'
             order by completed_at desc limit $2",
        )
        .bind(model_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|j| j.0).collect())
    }

    async fn finished_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "select * from trading_agent_jobs where completed_at >= $1 order by completed_at desc limit $2",
        )
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    async fn usage_since(&self, user_id: &str, since: DateTime<Utc>) -> Result<UserUsage> {
        let (runs, tokens, cost_usd, oldest): (i64, i64, f64, Option<DateTime<Utc>>) = sqlx::query_as(
            "select count(*), coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint, \
             coalesce(sum(cost_usd), 0)::float8, min(updated_at) \
             from trading_agent_jobs \
             where user_id = $1 and updated_at >= $2 and (prompt_tokens + completion_tokens > 0 or cost_usd > 0)",
        )
        .bind(user_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(UserUsage { runs: runs as u64, tokens: tokens.max(0) as u64, cost_usd, oldest })
    }

    async fn recent_usage(&self, model_id: &str, limit: u32) -> Result<Vec<(u32, TokenUsage)>> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "select cast(llm_calls as bigint), prompt_tokens, completion_tokens from trading_agent_jobs
             where model_id = $1 and status = 'completed' and llm_calls > 0
             order by completed_at desc limit $2",
        )
        .bind(model_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(super::usage_of).collect())
    }

    async fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("select status, count(*) from trading_agent_jobs group by status")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(|(s, n)| Ok((parse_status(&s)?, n as u64))).collect()
    }

    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        sqlx::query("insert into trading_agent_settings (name, value) values ($1, $2) on conflict (name) do nothing")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("select value from trading_agent_settings where name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn publish(&self, event: &Event) -> Result<()> {
        sqlx::query("select pg_notify($1, $2)").bind(CHANNEL).bind(super::to_json(event)).execute(&self.pool).await?;
        Ok(())
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Forwards notifications from other processes into `events` and the feed for as long as
    /// the process runs. When the connection drops, the feed stops being trusted until a new
    /// listener is in place, and then everyone resynchronises: a notification sent while it
    /// was away is lost, which is also why workers poll.
    async fn listen(&self, events: Events) -> Result<Option<tokio::task::JoinHandle<()>>> {
        let mut listener = subscribe(&self.pool).await?;
        let feed = self.feed.clone();
        let pool = self.pool.clone();
        feed.resync();
        Ok(Some(tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) if n.channel() == RUNS_CHANNEL => match parse_change(n.payload()) {
                        Some((run_id, version)) => feed.changed(run_id, version),
                        None => tracing::warn!(payload = n.payload(), "ignoring a malformed run notification"),
                    },
                    Ok(Some(n)) => match serde_json::from_str::<Event>(n.payload()) {
                        Ok(event) => events.send_local(event),
                        Err(e) => tracing::warn!(error = %e, "ignoring a malformed notification"),
                    },
                    Ok(None) | Err(_) => {
                        tracing::warn!("notification connection lost; reconnecting");
                        feed.lost();
                        events.send_local(Event::Reconnected);
                        listener = loop {
                            match subscribe(&pool).await {
                                Ok(l) => break l,
                                Err(e) => {
                                    tracing::warn!(error = %e, "cannot listen for notifications yet; retrying");
                                    tokio::time::sleep(StdDuration::from_secs(1)).await;
                                }
                            }
                        };
                        feed.resync();
                        // Wake-ups may have been missed too.
                        events.send_local(Event::Reconnected);
                    }
                }
            }
        })))
    }

    async fn insert_token(&self, user_id: &str, token: &ApiToken, hash: &str) -> Result<()> {
        sqlx::query(
            "insert into trading_agent_tokens (id, user_id, name, token_hash, created_at) values ($1, $2, $3, $4, $5)",
        )
        .bind(&token.id)
        .bind(user_id)
        .bind(&token.name)
        .bind(hash)
        .bind(token.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn tokens_for_user(&self, user_id: &str) -> Result<Vec<ApiToken>> {
        let rows: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
            "select id, name, created_at from trading_agent_tokens where user_id = $1 order by seq desc",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, name, created_at)| ApiToken { id, name, created_at }).collect())
    }

    async fn delete_token(&self, user_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("delete from trading_agent_tokens where user_id = $1 and id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn token_owner(&self, hash: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("select user_id from trading_agent_tokens where token_hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn insert_share(&self, user_id: &str, share: &ShareLink, hash: &str) -> Result<()> {
        sqlx::query(
            "insert into trading_agent_shares (id, run_id, user_id, token_hash, created_at) values ($1, $2, $3, $4, $5)",
        )
        .bind(&share.id)
        .bind(share.run_id.to_string())
        .bind(user_id)
        .bind(hash)
        .bind(share.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn shares_for_run(&self, user_id: &str, run_id: RunId) -> Result<Vec<ShareLink>> {
        let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
            "select id, created_at from trading_agent_shares where user_id = $1 and run_id = $2 order by seq desc",
        )
        .bind(user_id)
        .bind(run_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, created_at)| ShareLink { id, run_id, created_at }).collect())
    }

    async fn delete_share(&self, user_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("delete from trading_agent_shares where user_id = $1 and id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn shared_run(&self, hash: &str) -> Result<Option<(RunId, String)>> {
        let row: Option<(String, String)> =
            sqlx::query_as("select run_id, user_id from trading_agent_shares where token_hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(run, user)| Ok((super::parse_run_id(&run)?, user))).transpose()
    }
}

/// A listener on both channels: events, and run versions from the `trading_agent_runs_notify`
/// trigger.
async fn subscribe(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection must reach `listen` before anything listens again: an eager reconnect
    // inside `try_recv` would be listening while the feed still counts as live, and the
    // notifications lost meanwhile would never be resynchronised.
    listener.eager_reconnect(false);
    listener.listen_all([CHANNEL, RUNS_CHANNEL]).await?;
    Ok(listener)
}

/// `"<run id> <version>"`, as the trigger sends it.
fn parse_change(payload: &str) -> Option<(RunId, i64)> {
    let (id, version) = payload.split_once(' ')?;
    Some((id.parse().ok()?, version.parse().ok()?))
}
