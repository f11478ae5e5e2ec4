//! The SQLite backend: the embedded default.
//!
//! SQLite has one writer at a time. Rather than let connections race for the write lock and
//! retry on `SQLITE_BUSY`, every write goes through a pool of exactly one connection, and the
//! read-modify-write operations (insert under the per-user limit, cancel) run in `begin
//! immediate` transactions, which take the write lock up front — that is what makes them atomic
//! against other processes sharing the file too. Reads use a separate pool: WAL mode lets them
//! run beside the writer. Times are stored as unix milliseconds, JSON as text.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::backtest::BacktestId;
use domain::{ApiToken, ShareLink};
use domain::{JobStatus, RunId, StepProgress, TokenUsage};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{
    Control, JobStore, Result, Settle, StoreError, fenced, from_json, parse_run_id, parse_status, repeat_outcome,
    to_json,
};
use crate::clock::Clock;
use crate::events::{Event, Events};
use crate::feed::Feed;
use crate::model::{
    Backtest, Checkpoint, Fence, Finish, InsertOutcome, Job, NewBacktest, NewJob, ProgressSnapshot, UserUsage,
    close_steps, overall_percent,
};

const READ_CONNECTIONS: u32 = 8;
/// How often the watcher looks for commits of other processes.
const WATCH_EVERY: StdDuration = StdDuration::from_millis(250);
/// Rows written this long before the newest one seen are read again: a writer whose commit
/// landed after a later-stamped one is not missed.
const WATCH_OVERLAP_MS: i64 = 5_000;

/// The runs written since the last look, if anything was committed since (`seen` is the
/// last `data_version`, `since` the newest `updated_at` read).
async fn changed_since(
    conn: &mut sqlx::SqliteConnection,
    seen: &mut i64,
    since: &mut i64,
) -> Result<Vec<(RunId, i64)>> {
    let now: i64 = sqlx::query_scalar("pragma data_version").fetch_one(&mut *conn).await?;
    if now == *seen {
        return Ok(Vec::new());
    }
    *seen = now;
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("select run_id, version, updated_at from trading_agent_jobs where updated_at >= ?1")
            .bind(*since - WATCH_OVERLAP_MS)
            .fetch_all(&mut *conn)
            .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (run_id, version, updated_at) in rows {
        *since = (*since).max(updated_at);
        out.push((parse_run_id(&run_id)?, version));
    }
    Ok(out)
}

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    clock: Arc<dyn Clock>,
    feed: Feed,
}

impl SqliteStore {
    /// Opens (creating if missing, with its directory) the database file a `sqlite:` URL names.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(StdDuration::from_secs(10))
            .foreign_keys(true);
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        let reader = SqlitePoolOptions::new().max_connections(READ_CONNECTIONS).connect_with(options).await?;
        Ok(Self { writer, reader, clock, feed: Feed::new() })
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(column: &str, v: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    v.map(|m| DateTime::from_timestamp_millis(m).ok_or_else(|| StoreError::Corrupt(format!("{column}: {m}"))))
        .transpose()
}

fn decode(row: &SqliteRow) -> Result<Job> {
    let text = |c: &str| -> Result<String> { Ok(row.try_get::<String, _>(c)?) };
    let opt_text = |c: &str| -> Result<Option<String>> { Ok(row.try_get::<Option<String>, _>(c)?) };
    let int = |c: &str| -> Result<i64> { Ok(row.try_get::<i64, _>(c)?) };
    let opt_int = |c: &str| -> Result<Option<i64>> { Ok(row.try_get::<Option<i64>, _>(c)?) };
    Ok(Job {
        id: int("id")?,
        run_id: parse_run_id(&text("run_id")?)?,
        user_id: text("user_id")?,
        symbol: text("symbol")?,
        model_id: text("model_id")?,
        analysts: from_json("analysts", &text("analysts")?)?,
        as_of: opt_text("as_of")?
            .map(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|e| StoreError::Corrupt(format!("as_of: {e}"))))
            .transpose()?,
        status: parse_status(&text("status")?)?,
        current_step: opt_text("current_step")?,
        progress_percent: int("progress_percent")?.clamp(0, 100) as u8,
        steps: from_json("steps", &text("steps")?)?,
        checkpoints: from_json("checkpoints", &text("checkpoints")?)?,
        result: opt_text("result")?.map(|r| from_json("result", &r)).transpose()?,
        error: opt_text("error")?,
        priority: int("priority")? as i32,
        attempt: int("attempt")? as u32,
        max_attempts: int("max_attempts")? as u32,
        lease_owner: opt_text("lease_owner")?,
        lease_expires_at: time("lease_expires_at", opt_int("lease_expires_at")?)?,
        heartbeat_at: time("heartbeat_at", opt_int("heartbeat_at")?)?,
        cancel_requested: int("cancel_requested")? != 0,
        version: int("version")?,
        retry_of: opt_text("retry_of")?.map(|r| parse_run_id(&r)).transpose()?,
        idempotency_key: opt_text("idempotency_key")?,
        request_hash: opt_text("request_hash")?,
        timeout_ms: int("timeout_ms")?.max(0) as u64,
        timeout_at: time("timeout_at", opt_int("timeout_at")?)?,
        llm_calls: int("llm_calls")?.max(0) as u32,
        tokens: TokenUsage {
            prompt: int("prompt_tokens")?.max(0) as u64,
            completion: int("completion_tokens")?.max(0) as u64,
        },
        started_at: time("started_at", opt_int("started_at")?)?,
        completed_at: time("completed_at", opt_int("completed_at")?)?,
        created_at: time("created_at", Some(int("created_at")?))?.expect("some"),
        updated_at: time("updated_at", Some(int("updated_at")?))?.expect("some"),
        duration_ms: opt_int("duration_ms")?.map(|d| d.max(0) as u64),
        options: from_json("options", &text("options")?)?,
        cost_usd: row.try_get::<f64, _>("cost_usd")?,
        archived: row.try_get::<Option<bool>, _>("archived").ok().flatten().unwrap_or(false),
        backtest_id: opt_text("backtest_id")?.map(|b| parse_run_id(&b)).transpose()?,
    })
}

fn decode_backtest(row: &SqliteRow) -> Result<Backtest> {
    Ok(Backtest {
        backtest_id: parse_run_id(&row.try_get::<String, _>("backtest_id")?)?,
        user_id: row.try_get("user_id")?,
        spec: from_json("spec", &row.try_get::<String, _>("spec")?)?,
        cells: row.try_get::<i64, _>("cells")?.max(0) as u32,
        max_running: row.try_get::<i64, _>("max_running")?.max(0) as u32,
        cancelled_at: time("cancelled_at", row.try_get("cancelled_at")?)?,
        created_at: time("created_at", Some(row.try_get("created_at")?))?.expect("some"),
    })
}

/// Inserts one pending run inside the caller's transaction.
async fn insert_row(tx: &mut sqlx::SqliteConnection, job: &NewJob, now: i64) -> Result<Job> {
    let row = sqlx::query(
        "insert into trading_agent_jobs
            (run_id, user_id, symbol, model_id, analysts, as_of, steps, priority, max_attempts,
             timeout_ms, retry_of, idempotency_key, request_hash, created_at, updated_at, options, backtest_id)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15, ?16)
         returning *",
    )
    .bind(job.run_id.to_string())
    .bind(&job.user_id)
    .bind(&job.symbol)
    .bind(&job.model_id)
    .bind(to_json(&job.analysts))
    .bind(job.as_of.map(|d| d.format("%Y-%m-%d").to_string()))
    .bind(to_json(&job.initial_steps()))
    .bind(job.priority)
    .bind(job.max_attempts as i64)
    .bind(job.timeout_ms as i64)
    .bind(job.retry_of.map(|r| r.to_string()))
    .bind(&job.idempotency_key)
    .bind(&job.request_hash)
    .bind(now)
    .bind(to_json(&job.options))
    .bind(job.backtest_id.map(|b| b.to_string()))
    .fetch_one(&mut *tx)
    .await?;
    decode(&row)
}

fn control(row: Option<SqliteRow>, run_id: RunId) -> Result<Control> {
    match row {
        Some(r) => Ok(Control { cancel_requested: r.try_get::<i64, _>(0)? != 0 }),
        None => Err(StoreError::LeaseLost(run_id)),
    }
}

/// Every column but `id`, in table order: used to copy rows into the archive.
const ARCHIVE_COLUMNS: &str = "id, run_id, user_id, symbol, model_id, analysts, as_of, status, current_step, \
    progress_percent, steps, checkpoints, result, error, priority, attempt, max_attempts, lease_owner, \
    lease_expires_at, heartbeat_at, cancel_requested, version, retry_of, idempotency_key, request_hash, \
    timeout_ms, timeout_at, llm_calls, prompt_tokens, completion_tokens, started_at, completed_at, \
    created_at, updated_at, duration_ms, options, cost_usd, backtest_id";

#[async_trait]
impl JobStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Database(sqlx::Error::Migrate(Box::new(e))))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("select 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn insert(&self, job: &NewJob, active_limit: u32) -> Result<InsertOutcome> {
        let mut tx = self.writer.begin_with("begin immediate").await?;
        if let Some(key) = &job.idempotency_key {
            let existing = sqlx::query("select * from trading_agent_jobs where user_id = ?1 and idempotency_key = ?2")
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
             where user_id = ?1 and status in ('pending', 'running') and backtest_id is null",
        )
        .bind(&job.user_id)
        .fetch_one(&mut *tx)
        .await?;
        if active >= i64::from(active_limit) {
            tx.rollback().await?;
            return Ok(InsertOutcome::LimitReached { active: active as u32 });
        }
        let created = insert_row(&mut tx, job, self.now_ms()).await?;
        tx.commit().await?;
        Ok(InsertOutcome::Created(created))
    }

    async fn get(&self, run_id: RunId) -> Result<Option<Job>> {
        sqlx::query("select * from trading_agent_jobs where run_id = ?1")
            .bind(run_id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .map(|r| decode(&r))
            .transpose()
    }

    async fn get_archived(&self, run_id: RunId) -> Result<Option<Job>> {
        sqlx::query("select *, 1 as archived from trading_agent_jobs_archive where run_id = ?1")
            .bind(run_id.to_string())
            .fetch_optional(&self.reader)
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
            "select {ARCHIVE_COLUMNS}, 0 as archived from trading_agent_jobs
             where user_id = ?1 and (?2 is null or status = ?2) and backtest_id is null
             union all
             select {ARCHIVE_COLUMNS}, 1 as archived from trading_agent_jobs_archive
             where user_id = ?1 and (?2 is null or status = ?2) and backtest_id is null
             order by created_at desc, id desc limit ?3 offset ?4"
        ));
        let rows = sqlx::query(list)
            .bind(user_id)
            .bind(status)
            .bind(i64::from(limit))
            .bind(offset as i64)
            .fetch_all(&self.reader)
            .await?;
        let total: i64 = sqlx::query_scalar(
            "select (select count(*) from trading_agent_jobs where user_id = ?1 and (?2 is null or status = ?2) and backtest_id is null)
                  + (select count(*) from trading_agent_jobs_archive where user_id = ?1 and (?2 is null or status = ?2) and backtest_id is null)",
        )
        .bind(user_id)
        .bind(status)
        .fetch_one(&self.reader)
        .await?;
        Ok((rows.iter().map(decode).collect::<Result<_>>()?, total as u64))
    }

    async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<Job>> {
        let now = self.now_ms();
        let job = sqlx::query(
            "update trading_agent_jobs
             set status = 'running', attempt = attempt + 1, lease_owner = ?1, lease_expires_at = ?2,
                 heartbeat_at = ?3, started_at = coalesce(started_at, ?3), timeout_at = ?3 + timeout_ms,
                 version = version + 1, updated_at = ?3
             where id = (select j.id from trading_agent_jobs j
                         where j.status = 'pending'
                           and (j.backtest_id is null
                                or (select count(*) from trading_agent_jobs r
                                    where r.user_id = j.user_id and r.status = 'running' and r.backtest_id is not null)
                                   < (select case when b.cancelled_at is null then b.max_running else 0 end
                                      from trading_agent_backtests b where b.backtest_id = j.backtest_id))
                         order by j.priority desc,
                                  (select count(*) from trading_agent_jobs r
                                   where r.user_id = j.user_id and r.status = 'running'),
                                  j.created_at, j.id
                         limit 1)
             returning *",
        )
        .bind(owner)
        .bind(now + lease.num_milliseconds())
        .bind(now)
        .fetch_optional(&self.writer)
        .await?
        .map(|r| decode(&r))
        .transpose()?;
        if let Some(job) = &job {
            self.feed.touched(job.run_id);
        }
        Ok(job)
    }

    async fn heartbeat(&self, fence: &Fence, lease: Duration) -> Result<Control> {
        let now = self.now_ms();
        let row = sqlx::query(
            "update trading_agent_jobs set lease_expires_at = ?1, heartbeat_at = ?2
             where run_id = ?3 and lease_owner = ?4 and attempt = ?5 and status = 'running'
             returning cancel_requested",
        )
        .bind(now + lease.num_milliseconds())
        .bind(now)
        .bind(fence.run_id.to_string())
        .bind(&fence.owner)
        .bind(i64::from(fence.attempt))
        .fetch_optional(&self.writer)
        .await?;
        control(row, fence.run_id)
    }

    async fn control(&self, fence: &Fence) -> Result<Control> {
        let row = sqlx::query(
            "select cancel_requested from trading_agent_jobs
             where run_id = ?1 and lease_owner = ?2 and attempt = ?3 and status = 'running'",
        )
        .bind(fence.run_id.to_string())
        .bind(&fence.owner)
        .bind(i64::from(fence.attempt))
        .fetch_optional(&self.reader)
        .await?;
        control(row, fence.run_id)
    }

    async fn save_progress(&self, fence: &Fence, progress: &ProgressSnapshot) -> Result<Control> {
        let row = sqlx::query(
            "update trading_agent_jobs
             set steps = ?1, progress_percent = ?2, current_step = ?3, version = version + 1, updated_at = ?4
             where run_id = ?5 and lease_owner = ?6 and attempt = ?7 and status = 'running'
             returning cancel_requested",
        )
        .bind(to_json(&progress.steps))
        .bind(i64::from(progress.progress_percent))
        .bind(&progress.current_step)
        .bind(self.now_ms())
        .bind(fence.run_id.to_string())
        .bind(&fence.owner)
        .bind(i64::from(fence.attempt))
        .fetch_optional(&self.writer)
        .await?;
        self.feed.touched(fence.run_id);
        control(row, fence.run_id)
    }

    async fn save_checkpoint(
        &self,
        fence: &Fence,
        progress: &ProgressSnapshot,
        checkpoint: &Checkpoint,
    ) -> Result<Control> {
        let row = sqlx::query(
            "update trading_agent_jobs
             set steps = ?1, progress_percent = ?2, current_step = ?3,
                 checkpoints = json_set(checkpoints, '$.' || json_quote(?4), json(?5)),
                 llm_calls = llm_calls + ?6, prompt_tokens = prompt_tokens + ?7,
                 completion_tokens = completion_tokens + ?8, cost_usd = cost_usd + ?13,
                 version = version + 1, updated_at = ?9
             where run_id = ?10 and lease_owner = ?11 and attempt = ?12 and status = 'running'
             returning cancel_requested",
        )
        .bind(to_json(&progress.steps))
        .bind(i64::from(progress.progress_percent))
        .bind(&progress.current_step)
        .bind(&checkpoint.step)
        .bind(to_json(&checkpoint.output))
        .bind(i64::from(checkpoint.llm_calls))
        .bind(checkpoint.tokens.prompt as i64)
        .bind(checkpoint.tokens.completion as i64)
        .bind(self.now_ms())
        .bind(fence.run_id.to_string())
        .bind(&fence.owner)
        .bind(i64::from(fence.attempt))
        .bind(checkpoint.cost_usd)
        .fetch_optional(&self.writer)
        .await?;
        self.feed.touched(fence.run_id);
        control(row, fence.run_id)
    }

    async fn finish(&self, fence: &Fence, steps: &[StepProgress], finish: &Finish) -> Result<()> {
        let now = self.now_ms();
        let percent = if matches!(finish, Finish::Completed(_)) { 100 } else { overall_percent(steps) };
        let result = match finish {
            Finish::Completed(r) => Some(to_json(r.as_ref())),
            _ => None,
        };
        let done = sqlx::query(
            "update trading_agent_jobs
             set status = ?1, steps = ?2, progress_percent = ?3, current_step = null, result = ?4, error = ?5,
                 lease_expires_at = null, completed_at = ?6, duration_ms = ?6 - coalesce(started_at, ?6),
                 version = version + 1, updated_at = ?6
             where run_id = ?7 and lease_owner = ?8 and attempt = ?9 and status = 'running'",
        )
        .bind(finish.status().as_str())
        .bind(to_json(&steps))
        .bind(i64::from(percent))
        .bind(result)
        .bind(finish.error())
        .bind(now)
        .bind(fence.run_id.to_string())
        .bind(&fence.owner)
        .bind(i64::from(fence.attempt))
        .execute(&self.writer)
        .await?;
        self.feed.touched(fence.run_id);
        fenced(done.rows_affected(), fence.run_id)
    }

    async fn release(&self, fence: &Fence, steps: &[StepProgress]) -> Result<()> {
        let done = sqlx::query(
            "update trading_agent_jobs
             set status = 'pending', attempt = attempt - 1, lease_owner = null, lease_expires_at = null,
                 heartbeat_at = null, timeout_at = null, steps = ?1, progress_percent = ?2, current_step = null,
                 version = version + 1, updated_at = ?3
             where run_id = ?4 and lease_owner = ?5 and attempt = ?6 and status = 'running'",
        )
        .bind(to_json(&steps))
        .bind(i64::from(overall_percent(steps)))
        .bind(self.now_ms())
        .bind(fence.run_id.to_string())
        .bind(&fence.owner)
        .bind(i64::from(fence.attempt))
        .execute(&self.writer)
        .await?;
        self.feed.touched(fence.run_id);
        fenced(done.rows_affected(), fence.run_id)
    }

    async fn insert_backtest(&self, backtest: &NewBacktest) -> Result<Backtest> {
        let now = self.now_ms();
        let mut tx = self.writer.begin_with("begin immediate").await?;
        let row = sqlx::query(
            "insert into trading_agent_backtests (backtest_id, user_id, spec, cells, max_running, created_at)
             values (?1, ?2, ?3, ?4, ?5, ?6) returning *",
        )
        .bind(backtest.backtest_id.to_string())
        .bind(&backtest.user_id)
        .bind(to_json(&backtest.spec))
        .bind(backtest.cells.len() as i64)
        .bind(i64::from(backtest.max_running))
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
        sqlx::query("select * from trading_agent_backtests where backtest_id = ?1")
            .bind(backtest_id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .map(|r| decode_backtest(&r))
            .transpose()
    }

    async fn list_backtests(&self, user_id: &str, limit: u32) -> Result<Vec<Backtest>> {
        let rows = sqlx::query(
            "select * from trading_agent_backtests where user_id = ?1 order by created_at desc, id desc limit ?2",
        )
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(decode_backtest).collect()
    }

    /// The live cells and those the janitor has archived, in one statement (so one snapshot:
    /// a cell being archived is read once), without their checkpoints.
    async fn backtest_cells(&self, backtest_id: BacktestId) -> Result<Vec<Job>> {
        let columns = ARCHIVE_COLUMNS.replace("checkpoints,", "'{}' as checkpoints,");
        let query = sqlx::AssertSqlSafe(format!(
            "select {columns} from trading_agent_jobs where backtest_id = ?1
             union all
             select {columns} from trading_agent_jobs_archive where backtest_id = ?1
             order by id"
        ));
        let rows = sqlx::query(query).bind(backtest_id.to_string()).fetch_all(&self.reader).await?;
        rows.iter().map(decode).collect()
    }

    async fn mark_backtest_cancelled(&self, backtest_id: BacktestId) -> Result<()> {
        sqlx::query(
            "update trading_agent_backtests set cancelled_at = coalesce(cancelled_at, ?1) where backtest_id = ?2",
        )
        .bind(self.now_ms())
        .bind(backtest_id.to_string())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn queued_interactive(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from trading_agent_jobs where status = 'pending' and backtest_id is null",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(n as u64)
    }

    async fn request_cancel(&self, run_id: RunId) -> Result<Option<Job>> {
        let mut tx = self.writer.begin_with("begin immediate").await?;
        let Some(row) = sqlx::query("select * from trading_agent_jobs where run_id = ?1")
            .bind(run_id.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job = decode(&row)?;
        let now = self.now_ms();
        let updated = match job.status {
            JobStatus::Pending => {
                let steps = close_steps(&job.steps, &[], self.clock.now());
                sqlx::query(
                    "update trading_agent_jobs
                     set status = 'cancelled', cancel_requested = 1, steps = ?1, current_step = null,
                         completed_at = ?2, version = version + 1, updated_at = ?2
                     where id = ?3 returning *",
                )
                .bind(to_json(&steps))
                .bind(now)
                .bind(job.id)
                .fetch_one(&mut *tx)
                .await?
            }
            JobStatus::Running if !job.cancel_requested => {
                sqlx::query(
                    "update trading_agent_jobs set cancel_requested = 1, version = version + 1, updated_at = ?1
                     where id = ?2 returning *",
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
            "select * from trading_agent_jobs where status = 'running' and lease_expires_at < ?1
             order by lease_expires_at limit ?2",
        )
        .bind(self.now_ms())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(decode).collect()
    }

    async fn overdue(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "select * from trading_agent_jobs where status = 'running' and timeout_at < ?1
             order by timeout_at limit ?2",
        )
        .bind(ms(before))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(decode).collect()
    }

    async fn settle(&self, observed: &Job, settle: &Settle) -> Result<bool> {
        let now = self.now_ms();
        let query = match settle {
            Settle::Requeue { steps } => sqlx::query(
                "update trading_agent_jobs
                 set status = 'pending', lease_owner = null, lease_expires_at = null, heartbeat_at = null,
                     timeout_at = null, steps = ?1, progress_percent = ?2, current_step = null,
                     version = version + 1, updated_at = ?3
                 where run_id = ?4 and status = 'running' and lease_owner is ?5 and attempt = ?6
                   and lease_expires_at is ?7",
            )
            .bind(to_json(steps))
            .bind(i64::from(overall_percent(steps)))
            .bind(now),
            Settle::End { steps, finish } => sqlx::query(
                "update trading_agent_jobs
                 set status = ?1, steps = ?2, progress_percent = ?3, current_step = null, error = ?4,
                     lease_expires_at = null, completed_at = ?5, duration_ms = ?5 - coalesce(started_at, ?5),
                     version = version + 1, updated_at = ?5
                 where run_id = ?6 and status = 'running' and lease_owner is ?7 and attempt = ?8
                   and lease_expires_at is ?9",
            )
            .bind(finish.status().as_str())
            .bind(to_json(steps))
            .bind(i64::from(overall_percent(steps)))
            .bind(finish.error())
            .bind(now),
        };
        let done = query
            .bind(observed.run_id.to_string())
            .bind(&observed.lease_owner)
            .bind(i64::from(observed.attempt))
            .bind(observed.lease_expires_at.map(ms))
            .execute(&self.writer)
            .await?;
        self.feed.touched(observed.run_id);
        Ok(done.rows_affected() == 1)
    }

    async fn archive_finished(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        let mut tx = self.writer.begin_with("begin immediate").await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "select id from trading_agent_jobs
             where status in ('completed', 'failed', 'timeout', 'cancelled') and completed_at < ?1
             order by completed_at limit ?2",
        )
        .bind(ms(before))
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let ids = to_json(&ids);
        let insert = sqlx::AssertSqlSafe(format!(
            "insert into trading_agent_jobs_archive ({ARCHIVE_COLUMNS}, archived_at)
             select {ARCHIVE_COLUMNS}, ?1 from trading_agent_jobs where id in (select value from json_each(?2))"
        ));
        sqlx::query(insert).bind(self.now_ms()).bind(&ids).execute(&mut *tx).await?;
        let deleted = sqlx::query("delete from trading_agent_jobs where id in (select value from json_each(?1))")
            .bind(&ids)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    async fn prune_archive(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        Ok(sqlx::query(
            "delete from trading_agent_jobs_archive where id in
               (select id from trading_agent_jobs_archive where archived_at < ?1 order by archived_at limit ?2)",
        )
        .bind(ms(before))
        .bind(i64::from(batch))
        .execute(&self.writer)
        .await?
        .rows_affected())
    }

    async fn recent_steps(&self, model_id: &str, limit: u32) -> Result<Vec<Vec<StepProgress>>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "select steps from trading_agent_jobs where model_id = ?1 and status = 'completed'
             order by completed_at desc limit ?2",
        )
        .bind(model_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|s| from_json("steps", s)).collect()
    }

    async fn finished_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "select * from trading_agent_jobs where completed_at >= ?1 order by completed_at desc limit ?2",
        )
        .bind(ms(since))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(decode).collect()
    }

    async fn usage_since(&self, user_id: &str, since: DateTime<Utc>) -> Result<UserUsage> {
        let (runs, tokens, cost_usd, oldest): (i64, i64, f64, Option<i64>) = sqlx::query_as(
            "select count(*), coalesce(sum(prompt_tokens + completion_tokens), 0), \
             coalesce(sum(cost_usd), 0.0), min(updated_at) \
             from trading_agent_jobs \
             where user_id = ?1 and updated_at >= ?2 and (prompt_tokens + completion_tokens > 0 or cost_usd > 0)",
        )
        .bind(user_id)
        .bind(ms(since))
        .fetch_one(&self.reader)
        .await?;
        Ok(UserUsage { runs: runs as u64, tokens: tokens.max(0) as u64, cost_usd, oldest: time("updated_at", oldest)? })
    }

    async fn recent_usage(&self, model_id: &str, limit: u32) -> Result<Vec<(u32, TokenUsage)>> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "select cast(llm_calls as bigint), prompt_tokens, completion_tokens from trading_agent_jobs
             where model_id = ?1 and status = 'completed' and llm_calls > 0
             order by completed_at desc limit ?2",
        )
        .bind(model_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(super::usage_of).collect())
    }

    async fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("select status, count(*) from trading_agent_jobs group by status")
                .fetch_all(&self.reader)
                .await?;
        rows.into_iter().map(|(s, n)| Ok((parse_status(&s)?, n as u64))).collect()
    }

    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        sqlx::query("insert into trading_agent_settings (name, value) values (?1, ?2) on conflict (name) do nothing")
            .bind(name)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(sqlx::query_scalar("select value from trading_agent_settings where name = ?1")
            .bind(name)
            .fetch_one(&self.writer)
            .await?)
    }

    async fn publish(&self, _event: &Event) -> Result<()> {
        Ok(())
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Every process sharing the file writes through its own connections, so this one learns
    /// of their commits by watching `pragma data_version` on a connection of its own (it
    /// changes whenever another connection commits) and then reading which runs moved.
    async fn listen(&self, _events: Events) -> Result<Option<tokio::task::JoinHandle<()>>> {
        let mut conn = self.reader.acquire().await?.detach();
        let mut seen: i64 = sqlx::query_scalar("pragma data_version").fetch_one(&mut conn).await?;
        let mut since: i64 = sqlx::query_scalar("select coalesce(max(updated_at), 0) from trading_agent_jobs")
            .fetch_one(&mut conn)
            .await?;
        let feed = self.feed.clone();
        let reader = self.reader.clone();
        feed.resync();
        Ok(Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                match changed_since(&mut conn, &mut seen, &mut since).await {
                    Ok(changes) => {
                        for (run_id, version) in changes {
                            feed.changed(run_id, version);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watching the database for changes failed; retrying");
                        feed.lost();
                        match reader.acquire().await {
                            Ok(c) => {
                                conn = c.detach();
                                feed.resync();
                            }
                            Err(_) => tokio::time::sleep(StdDuration::from_secs(1)).await,
                        }
                    }
                }
            }
        })))
    }

    async fn insert_token(&self, user_id: &str, token: &ApiToken, hash: &str) -> Result<()> {
        sqlx::query(
            "insert into trading_agent_tokens (id, user_id, name, token_hash, created_at) values (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&token.id)
        .bind(user_id)
        .bind(&token.name)
        .bind(hash)
        .bind(ms(token.created_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn tokens_for_user(&self, user_id: &str) -> Result<Vec<ApiToken>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "select id, name, created_at from trading_agent_tokens where user_id = ?1 order by rowid desc",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(id, name, at)| {
                let created_at = DateTime::from_timestamp_millis(at)
                    .ok_or_else(|| StoreError::Corrupt(format!("created_at: {at}")))?;
                Ok(ApiToken { id, name, created_at })
            })
            .collect()
    }

    async fn delete_token(&self, user_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("delete from trading_agent_tokens where user_id = ?1 and id = ?2")
            .bind(user_id)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn token_owner(&self, hash: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("select user_id from trading_agent_tokens where token_hash = ?1")
            .bind(hash)
            .fetch_optional(&self.reader)
            .await?)
    }

    async fn insert_share(&self, user_id: &str, share: &ShareLink, hash: &str) -> Result<()> {
        sqlx::query(
            "insert into trading_agent_shares (id, run_id, user_id, token_hash, created_at) values (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&share.id)
        .bind(share.run_id.to_string())
        .bind(user_id)
        .bind(hash)
        .bind(ms(share.created_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn shares_for_run(&self, user_id: &str, run_id: RunId) -> Result<Vec<ShareLink>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select id, created_at from trading_agent_shares where user_id = ?1 and run_id = ?2 order by rowid desc",
        )
        .bind(user_id)
        .bind(run_id.to_string())
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(id, at)| {
                let created_at = DateTime::from_timestamp_millis(at)
                    .ok_or_else(|| StoreError::Corrupt(format!("created_at: {at}")))?;
                Ok(ShareLink { id, run_id, created_at })
            })
            .collect()
    }

    async fn delete_share(&self, user_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("delete from trading_agent_shares where user_id = ?1 and id = ?2")
            .bind(user_id)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn shared_run(&self, hash: &str) -> Result<Option<(RunId, String)>> {
        let row: Option<(String, String)> =
            sqlx::query_as("select run_id, user_id from trading_agent_shares where token_hash = ?1")
                .bind(hash)
                .fetch_optional(&self.reader)
                .await?;
        row.map(|(run, user)| Ok((parse_run_id(&run)?, user))).transpose()
    }
}
