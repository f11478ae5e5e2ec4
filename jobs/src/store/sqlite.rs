//! The SQLite backend: the embedded default.
//!
//! SQLite has one writer at a time. Rather than let connections race for the write lock and
//! retry on `SQLITE_BUSY`, every write goes through a pool of exactly one connection, and the
//! read-modify-write operations (insert under the per-owner limit, cancel, a batch of writes)
//! run in `begin immediate` transactions, which take the write lock up front — that is what
//! makes them atomic against other processes sharing the file too. Reads use a separate pool:
//! WAL mode lets them run beside the writer. Times are unix milliseconds from the store's
//! clock (one file is one machine: its processes share that clock), JSON is text.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{
    ACTIVE, JobStore, Pools, Result, StoreError, TERMINAL, from_json, ms, parse_id, parse_state, parse_stuck,
    repeat_outcome, time, to_json,
};
use crate::clock::Clock;
use crate::events::{Event, Events};
use crate::feed::Feed;
use crate::job::{
    Control, Count, Fence, Filter, Finish, Insert, InsertOutcome, Job, JobId, NewJob, Order, Outcome, Page, Settle,
    State, Stuck, Write,
};

const READ_CONNECTIONS: u32 = 8;
/// How often the watcher looks for commits of other processes.
const WATCH_EVERY: StdDuration = StdDuration::from_millis(250);
/// Rows written this long before the newest one seen are read again: a writer whose commit
/// landed after a later-stamped one is not missed.
const WATCH_OVERLAP_MS: i64 = 5_000;

/// Every column of a job, in table order: what the archive copies.
const COLUMNS: &str = "id, job_id, kind, owner, parent_id, child_limit, args, state, priority, attempt, \
    max_attempts, lease_owner, lease_expires_at, heartbeat_at, cancel_requested, version, idempotency_key, \
    args_hash, timeout_ms, timeout_at, progress, checkpoints, output, error, created_at, started_at, \
    completed_at, updated_at";

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

    pub fn pools(&self) -> Pools {
        Pools::Sqlite { writer: self.writer.clone(), reader: self.reader.clone() }
    }

    fn now(&self) -> i64 {
        ms(self.clock.now())
    }
}

fn decode(row: &SqliteRow) -> Result<Job> {
    let text = |c: &str| -> Result<String> { Ok(row.try_get::<String, _>(c)?) };
    let opt_text = |c: &str| -> Result<Option<String>> { Ok(row.try_get::<Option<String>, _>(c)?) };
    let int = |c: &str| -> Result<i64> { Ok(row.try_get::<i64, _>(c)?) };
    let opt_int = |c: &str| -> Result<Option<i64>> { Ok(row.try_get::<Option<i64>, _>(c)?) };
    Ok(Job {
        id: int("id")?,
        job_id: parse_id("job_id", &text("job_id")?)?,
        kind: text("kind")?,
        owner: text("owner")?,
        parent: opt_text("parent_id")?.map(|p| parse_id("parent_id", &p)).transpose()?,
        child_limit: opt_int("child_limit")?.map(|n| n.max(0) as u32),
        args: from_json("args", &text("args")?)?,
        state: parse_state(&text("state")?)?,
        priority: int("priority")? as i32,
        attempt: int("attempt")?.max(0) as u32,
        max_attempts: int("max_attempts")?.max(0) as u32,
        lease_owner: opt_text("lease_owner")?,
        lease_expires_at: time("lease_expires_at", opt_int("lease_expires_at")?)?,
        heartbeat_at: time("heartbeat_at", opt_int("heartbeat_at")?)?,
        cancel_requested: int("cancel_requested")? != 0,
        version: int("version")?,
        idempotency_key: opt_text("idempotency_key")?,
        args_hash: opt_text("args_hash")?,
        timeout_ms: int("timeout_ms")?.max(0) as u64,
        timeout_at: time("timeout_at", opt_int("timeout_at")?)?,
        progress: from_json("progress", &text("progress")?)?,
        checkpoints: from_json("checkpoints", &text("checkpoints")?)?,
        output: opt_text("output")?.map(|o| from_json("output", &o)).transpose()?,
        error: opt_text("error")?,
        created_at: time("created_at", Some(int("created_at")?))?.expect("some"),
        started_at: time("started_at", opt_int("started_at")?)?,
        completed_at: time("completed_at", opt_int("completed_at")?)?,
        updated_at: time("updated_at", Some(int("updated_at")?))?.expect("some"),
        archived: row.try_get::<Option<i64>, _>("archived").ok().flatten().unwrap_or(0) != 0,
    })
}

/// Inserts one job inside the caller's transaction.
async fn insert_row(
    tx: &mut SqliteConnection,
    job: &NewJob,
    state: State,
    parent: Option<JobId>,
    now: i64,
) -> Result<Job> {
    let row = sqlx::query(
        "insert into queue_jobs
            (job_id, kind, owner, parent_id, child_limit, args, state, priority, max_attempts, idempotency_key,
             args_hash, timeout_ms, progress, checkpoints, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)
         returning *",
    )
    .bind(job.job_id.to_string())
    .bind(&job.kind)
    .bind(&job.owner)
    .bind(parent.map(|p| p.to_string()))
    .bind(job.child_limit.map(i64::from))
    .bind(to_json(&job.args))
    .bind(state.as_str())
    .bind(job.priority)
    .bind(i64::from(job.max_attempts))
    .bind(&job.idempotency_key)
    .bind(&job.args_hash)
    .bind(job.timeout_ms as i64)
    .bind(to_json(&job.progress))
    .bind(to_json(&job.checkpoints))
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    decode(&row)
}

/// Makes pending the waiting parents among `parents` none of whose children is active any
/// more, inside the caller's transaction (the single writer: no child can end meanwhile).
async fn wake_parents(tx: &mut SqliteConnection, parents: &[JobId], now: i64) -> Result<Vec<JobId>> {
    let mut woken = Vec::new();
    for parent in parents {
        let done = sqlx::query(
            "update queue_jobs set state = 'pending', version = version + 1, updated_at = $2
             where job_id = $1 and state = 'waiting'
               and not exists (select 1 from queue_jobs c
                               where c.parent_id = $1 and c.state in ('waiting', 'pending', 'running'))",
        )
        .bind(parent.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            woken.push(*parent);
        }
    }
    Ok(woken)
}

/// The runs written since the last look, if anything was committed since (`seen` is the
/// last `data_version`, `since` the newest `updated_at` read).
async fn changed_since(conn: &mut SqliteConnection, seen: &mut i64, since: &mut i64) -> Result<Vec<(JobId, i64)>> {
    let now: i64 = sqlx::query_scalar("pragma data_version").fetch_one(&mut *conn).await?;
    if now == *seen {
        return Ok(Vec::new());
    }
    *seen = now;
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("select job_id, version, updated_at from queue_jobs where updated_at >= $1")
            .bind(*since - WATCH_OVERLAP_MS)
            .fetch_all(&mut *conn)
            .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (job_id, version, updated_at) in rows {
        *since = (*since).max(updated_at);
        out.push((parse_id("job_id", &job_id)?, version));
    }
    Ok(out)
}

/// The stored checkpoints with `n` more set, their keys and values bound in pairs from `$first`:
/// one `json_set` path per checkpoint; keys are bound, never spliced.
fn merge_checkpoints(n: usize, first: usize) -> String {
    let mut set = String::from("checkpoints");
    for i in 0..n {
        let (k, v) = (first + 2 * i, first + 1 + 2 * i);
        set = format!("json_set({set}, '$.' || json_quote(${k}), json(${v}))");
    }
    set
}

/// `"a", "b"` as a JSON array, for `in (select value from json_each(…))`.
fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    to_json(&items)
}

#[async_trait]
impl JobStore for SqliteStore {
    fn feed(&self) -> &Feed {
        &self.feed
    }

    async fn insert(&self, insert: &Insert) -> Result<InsertOutcome> {
        let job = &insert.job;
        let now = self.now();
        let mut tx = self.writer.begin_with("begin immediate").await?;
        if let Some(key) = &job.idempotency_key {
            let existing = sqlx::query("select * from queue_jobs where owner = $1 and idempotency_key = $2")
                .bind(&job.owner)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing {
                let existing = decode(&row)?;
                tx.rollback().await?;
                return Ok(repeat_outcome(existing, &job.args_hash));
            }
        }
        if let Some(limit) = insert.owner_limit {
            let active: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "select count(*) from queue_jobs where owner = $1 and state in {ACTIVE} and parent_id is null"
            )))
            .bind(&job.owner)
            .fetch_one(&mut *tx)
            .await?;
            if active >= i64::from(limit) {
                tx.rollback().await?;
                return Ok(InsertOutcome::LimitReached { active: active as u32 });
            }
        }
        let state = if insert.children.is_empty() { State::Pending } else { State::Waiting };
        let created = insert_row(&mut tx, job, state, None, now).await?;
        for child in &insert.children {
            insert_row(&mut tx, child, State::Pending, Some(job.job_id), now).await?;
        }
        tx.commit().await?;
        self.feed.touched(created.job_id);
        Ok(InsertOutcome::Created(created))
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS}, 0 as archived from queue_jobs where job_id = $1
             union all
             select {COLUMNS}, 1 as archived from queue_jobs_archive where job_id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| decode(&r)).transpose()
    }

    async fn list(&self, filter: &Filter) -> Result<Page> {
        let (conditions, binds) = conditions(filter);
        let columns = if filter.checkpoints {
            COLUMNS.to_string()
        } else {
            COLUMNS.replace("checkpoints,", "'{}' as checkpoints,")
        };
        let order = match filter.order {
            Order::Created => "created_at desc, id desc",
            Order::Inserted => "id",
            Order::Completed => "completed_at desc, id desc",
        };
        let mut sql = format!("select {columns}, 0 as archived from queue_jobs where {conditions}");
        if filter.archived {
            sql.push_str(&format!(
                " union all select {columns}, 1 as archived from queue_jobs_archive where {conditions}"
            ));
        }
        let n = binds.len();
        sql.push_str(&format!(" order by {order} limit ${} offset ${}", n + 1, n + 2));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            query = b.bind(query);
        }
        let rows = query.bind(i64::from(filter.limit)).bind(filter.offset as i64).fetch_all(&self.reader).await?;
        let jobs = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        let total = if filter.count {
            let mut sql = format!("select (select count(*) from queue_jobs where {conditions})");
            if filter.archived {
                sql.push_str(&format!(" + (select count(*) from queue_jobs_archive where {conditions})"));
            }
            let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                query = b.bind_scalar(query);
            }
            Some(query.fetch_one(&self.reader).await?.max(0) as u64)
        } else {
            None
        };
        Ok(Page { jobs, total })
    }

    async fn claim(&self, owner: &str, lease: Duration, limit: u32, kinds: &[String]) -> Result<Vec<Job>> {
        let now = self.now();
        let rows = sqlx::query(
            "update queue_jobs
             set state = 'running', attempt = attempt + 1, lease_owner = $1, lease_expires_at = $2 + $3,
                 heartbeat_at = $2, started_at = coalesce(started_at, $2), timeout_at = $2 + timeout_ms,
                 version = version + 1, updated_at = $2
             where id in (
                 with running as (
                     select owner, count(*) as jobs, count(parent_id) as children
                     from queue_jobs where state = 'running' group by owner),
                 candidates as (
                     select j.id, j.owner, j.priority, j.created_at, j.parent_id,
                            coalesce(r.jobs, 0) as jobs, coalesce(r.children, 0) as children,
                            case when p.state = 'waiting' then p.child_limit else 0 end as cap
                     from queue_jobs j
                     left join running r on r.owner = j.owner
                     left join queue_jobs p on p.job_id = j.parent_id
                     where j.state = 'pending' and j.kind in (select value from json_each($4))
                       and (j.parent_id is null
                            or coalesce(r.children, 0) < case when p.state = 'waiting' then p.child_limit else 0 end)
                     order by j.priority desc, j.created_at, j.id
                     limit $6),
                 numbered as (
                     select *,
                            row_number() over (partition by owner order by priority desc, created_at, id) as nth,
                            row_number() over (partition by owner, parent_id is null
                                               order by priority desc, created_at, id) as nth_of_kind
                     from candidates)
                 select id from numbered
                 where parent_id is null or children + nth_of_kind <= cap
                 order by priority desc, jobs + nth, created_at, id
                 limit $5)
             returning *",
        )
        .bind(owner)
        .bind(now)
        .bind(lease.num_milliseconds())
        .bind(json_list(kinds))
        .bind(i64::from(limit))
        .bind(super::claim_window(limit))
        .fetch_all(&self.writer)
        .await?;
        let mut jobs = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.created_at, j.id));
        for job in &jobs {
            self.feed.touched(job.job_id);
        }
        Ok(jobs)
    }

    async fn control(&self, fences: &[Fence], extend: Option<Duration>) -> Result<Vec<Option<Control>>> {
        let mut out = Vec::with_capacity(fences.len());
        if let Some(lease) = extend {
            let now = self.now();
            let mut tx = self.writer.begin().await?;
            for f in fences {
                let row: Option<i64> = sqlx::query_scalar(
                    "update queue_jobs set lease_expires_at = $1, heartbeat_at = $2
                     where job_id = $3 and lease_owner = $4 and attempt = $5 and state = 'running'
                     returning cancel_requested",
                )
                .bind(now + lease.num_milliseconds())
                .bind(now)
                .bind(f.job_id.to_string())
                .bind(&f.owner)
                .bind(i64::from(f.attempt))
                .fetch_optional(&mut *tx)
                .await?;
                out.push(row.map(|c| Control { cancel_requested: c != 0 }));
            }
            tx.commit().await?;
        } else {
            for f in fences {
                let row: Option<i64> = sqlx::query_scalar(
                    "select cancel_requested from queue_jobs
                     where job_id = $1 and lease_owner = $2 and attempt = $3 and state = 'running'",
                )
                .bind(f.job_id.to_string())
                .bind(&f.owner)
                .bind(i64::from(f.attempt))
                .fetch_optional(&self.reader)
                .await?;
                out.push(row.map(|c| Control { cancel_requested: c != 0 }));
            }
        }
        Ok(out)
    }

    async fn write(&self, writes: &[Write]) -> Result<Vec<Option<Control>>> {
        let now = self.now();
        let mut out = Vec::with_capacity(writes.len());
        let mut tx = self.writer.begin().await?;
        for w in writes {
            let sql = format!(
                "update queue_jobs set progress = $1, checkpoints = {}, version = version + 1, updated_at = $2
                 where job_id = $3 and lease_owner = $4 and attempt = $5 and state = 'running'
                 returning cancel_requested",
                merge_checkpoints(w.checkpoints.len(), 6)
            );
            let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .bind(to_json(&w.progress))
                .bind(now)
                .bind(w.fence.job_id.to_string())
                .bind(&w.fence.owner)
                .bind(i64::from(w.fence.attempt));
            for (key, value) in &w.checkpoints {
                query = query.bind(key).bind(to_json(value));
            }
            let row = query.fetch_optional(&mut *tx).await?;
            out.push(row.map(|c| Control { cancel_requested: c != 0 }));
        }
        tx.commit().await?;
        for (w, c) in writes.iter().zip(&out) {
            if c.is_some() {
                self.feed.touched(w.fence.job_id);
            }
        }
        Ok(out)
    }

    async fn finish(&self, finishes: &[Finish]) -> Result<Vec<bool>> {
        let now = self.now();
        let mut out = Vec::with_capacity(finishes.len());
        let mut parents = Vec::new();
        let mut tx = self.writer.begin_with("begin immediate").await?;
        for f in finishes {
            let row: Option<Option<String>> = match &f.outcome {
                Outcome::Released => {
                    let sql = format!(
                        "update queue_jobs
                         set state = 'pending', attempt = attempt - 1, lease_owner = null, lease_expires_at = null,
                             heartbeat_at = null, timeout_at = null, progress = $1, checkpoints = {},
                             version = version + 1, updated_at = $2
                         where job_id = $3 and lease_owner = $4 and attempt = $5 and state = 'running'
                         returning parent_id",
                        merge_checkpoints(f.checkpoints.len(), 6)
                    );
                    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .bind(to_json(&f.progress))
                        .bind(now)
                        .bind(f.fence.job_id.to_string())
                        .bind(&f.fence.owner)
                        .bind(i64::from(f.fence.attempt));
                    for (key, value) in &f.checkpoints {
                        query = query.bind(key).bind(to_json(value));
                    }
                    query.fetch_optional(&mut *tx).await?
                }
                outcome => {
                    let output = match outcome {
                        Outcome::Completed(v) => Some(to_json(v)),
                        _ => None,
                    };
                    let sql = format!(
                        "update queue_jobs
                         set state = $1, output = $2, error = $3, progress = $4, checkpoints = {},
                             lease_expires_at = null, completed_at = $5, version = version + 1, updated_at = $5
                         where job_id = $6 and lease_owner = $7 and attempt = $8 and state = 'running'
                         returning parent_id",
                        merge_checkpoints(f.checkpoints.len(), 9)
                    );
                    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .bind(outcome.state().as_str())
                        .bind(output)
                        .bind(outcome.error())
                        .bind(to_json(&f.progress))
                        .bind(now)
                        .bind(f.fence.job_id.to_string())
                        .bind(&f.fence.owner)
                        .bind(i64::from(f.fence.attempt));
                    for (key, value) in &f.checkpoints {
                        query = query.bind(key).bind(to_json(value));
                    }
                    let row: Option<Option<String>> = query.fetch_optional(&mut *tx).await?;
                    if let Some(Some(parent)) = &row {
                        parents.push(parse_id("parent_id", parent)?);
                    }
                    row
                }
            };
            out.push(row.is_some());
        }
        let woken = wake_parents(&mut tx, &parents, now).await?;
        tx.commit().await?;
        for (f, held) in finishes.iter().zip(&out) {
            if *held {
                self.feed.touched(f.fence.job_id);
            }
        }
        for p in woken {
            self.feed.touched(p);
        }
        Ok(out)
    }

    async fn cancel(&self, id: JobId) -> Result<Option<Job>> {
        let now = self.now();
        let mut tx = self.writer.begin_with("begin immediate").await?;
        let Some(row) = sqlx::query("select * from queue_jobs where job_id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job = decode(&row)?;
        let mut touched = vec![id];
        let updated = match job.state {
            State::Pending | State::Waiting => {
                let row = sqlx::query(
                    "update queue_jobs set state = 'cancelled', cancel_requested = 1, completed_at = $1,
                         version = version + 1, updated_at = $1
                     where id = $2 returning *",
                )
                .bind(now)
                .bind(job.id)
                .fetch_one(&mut *tx)
                .await?;
                if job.state == State::Waiting {
                    let children: Vec<String> = sqlx::query_scalar(
                        "update queue_jobs
                         set state = case when state = 'running' then state else 'cancelled' end,
                             completed_at = case when state = 'running' then completed_at else $1 end,
                             cancel_requested = 1, version = version + 1, updated_at = $1
                         where parent_id = $2 and state in ('pending', 'running') and cancel_requested = 0
                         returning job_id",
                    )
                    .bind(now)
                    .bind(id.to_string())
                    .fetch_all(&mut *tx)
                    .await?;
                    for c in children {
                        touched.push(parse_id("job_id", &c)?);
                    }
                }
                if let (State::Pending, Some(parent)) = (job.state, job.parent) {
                    touched.extend(wake_parents(&mut tx, &[parent], now).await?);
                }
                row
            }
            State::Running if !job.cancel_requested => {
                sqlx::query(
                    "update queue_jobs set cancel_requested = 1, version = version + 1, updated_at = $1
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
        for t in touched {
            self.feed.touched(t);
        }
        Ok(Some(job))
    }

    async fn stuck(&self, slack: Duration, limit: u32) -> Result<Vec<(Job, Stuck)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select * from (
                 select {COLUMNS}, case when timeout_at < $1 - $2 then 'overdue' else 'expired' end as reason
                 from queue_jobs where state = 'running' and (lease_expires_at < $1 or timeout_at < $1 - $2)
                 limit $3)
             union all
             select * from (
                 select {COLUMNS}, 'orphaned' as reason from queue_jobs p where p.state = 'waiting'
                   and not exists (select 1 from queue_jobs c
                                   where c.parent_id = p.job_id and c.state in ('waiting', 'pending', 'running'))
                 limit $3)"
        )))
        .bind(self.now())
        .bind(slack.num_milliseconds())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok((decode(r)?, parse_stuck(&r.try_get::<String, _>("reason")?)?))).collect()
    }

    async fn settle(&self, observed: &Job, settle: &Settle) -> Result<bool> {
        let now = self.now();
        let id = observed.job_id.to_string();
        let lease = observed.lease_expires_at.map(ms);
        let mut tx = self.writer.begin_with("begin immediate").await?;
        let done = match (observed.state, settle) {
            // A parent whose children all ended without waking it.
            (State::Waiting, Settle::Requeue) => {
                sqlx::query(
                    "update queue_jobs set state = 'pending', version = version + 1, updated_at = $1
                 where job_id = $2 and state = 'waiting'",
                )
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?
            }
            (_, Settle::Requeue) => {
                sqlx::query(
                    "update queue_jobs
                 set state = 'pending', lease_owner = null, lease_expires_at = null, heartbeat_at = null,
                     timeout_at = null, version = version + 1, updated_at = $1
                 where job_id = $2 and state = 'running' and lease_owner is $3 and attempt = $4
                   and lease_expires_at is $5",
                )
                .bind(now)
                .bind(&id)
                .bind(&observed.lease_owner)
                .bind(i64::from(observed.attempt))
                .bind(lease)
                .execute(&mut *tx)
                .await?
            }
            (_, Settle::End { state, error }) => {
                sqlx::query(
                    "update queue_jobs
                 set state = $1, error = $2, lease_expires_at = null, completed_at = $3,
                     version = version + 1, updated_at = $3
                 where job_id = $4 and state = 'running' and lease_owner is $5 and attempt = $6
                   and lease_expires_at is $7",
                )
                .bind(state.as_str())
                .bind(error)
                .bind(now)
                .bind(&id)
                .bind(&observed.lease_owner)
                .bind(i64::from(observed.attempt))
                .bind(lease)
                .execute(&mut *tx)
                .await?
            }
        }
        .rows_affected()
            == 1;
        let mut woken = Vec::new();
        if done
            && matches!(settle, Settle::End { .. })
            && let Some(parent) = observed.parent
        {
            woken = wake_parents(&mut tx, &[parent], now).await?;
        }
        tx.commit().await?;
        if done {
            self.feed.touched(observed.job_id);
        }
        for p in woken {
            self.feed.touched(p);
        }
        Ok(done)
    }

    async fn archive(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        let mut tx = self.writer.begin_with("begin immediate").await?;
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select id from queue_jobs where state in {TERMINAL} and completed_at < $1 order by completed_at limit $2"
        )))
        .bind(ms(before))
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let ids = json_list(&ids);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "insert into queue_jobs_archive ({COLUMNS}, archived_at)
             select {COLUMNS}, $1 from queue_jobs where id in (select value from json_each($2))"
        )))
        .bind(self.now())
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query("delete from queue_jobs where id in (select value from json_each($1))")
            .bind(&ids)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(moved)
    }

    async fn prune(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        Ok(sqlx::query(
            "delete from queue_jobs_archive where id in
               (select id from queue_jobs_archive where archived_at < $1 order by archived_at limit $2)",
        )
        .bind(ms(before))
        .bind(i64::from(batch))
        .execute(&self.writer)
        .await?
        .rows_affected())
    }

    async fn counts(&self) -> Result<Vec<Count>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "select kind, state, parent_id is not null, count(*) from queue_jobs group by 1, 2, 3 order by 1, 2, 3",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(kind, state, child, n)| {
                Ok(Count { kind, state: parse_state(&state)?, child: child != 0, jobs: n as u64 })
            })
            .collect()
    }

    async fn publish(&self, _event: &Event) -> Result<()> {
        Ok(())
    }

    /// Every process sharing the file writes through its own connections, so this one learns
    /// of their commits by watching `pragma data_version` on a connection of its own (it
    /// changes whenever another connection commits) and then reading which jobs moved.
    async fn listen(&self, _events: Events) -> Result<Option<tokio::task::JoinHandle<()>>> {
        let mut conn = self.reader.acquire().await?.detach();
        let mut seen: i64 = sqlx::query_scalar("pragma data_version").fetch_one(&mut conn).await?;
        let mut since: i64 =
            sqlx::query_scalar("select coalesce(max(updated_at), 0) from queue_jobs").fetch_one(&mut conn).await?;
        let feed = self.feed.clone();
        let reader = self.reader.clone();
        feed.resync();
        Ok(Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                match changed_since(&mut conn, &mut seen, &mut since).await {
                    Ok(changes) => {
                        for (job_id, version) in changes {
                            feed.changed(job_id, version);
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
}

/// A value bound to a listing's conditions.
enum Bind {
    Text(String),
    Int(i64),
}

impl Bind {
    fn bind<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
        match self {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
        }
    }

    fn bind_scalar<'q, O>(
        &self,
        q: sqlx::query::QueryScalar<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments>,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments> {
        match self {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
        }
    }
}

/// A listing's `where` clause and what it binds, numbered from `$1`.
fn conditions(filter: &Filter) -> (String, Vec<Bind>) {
    let mut parts = vec!["1 = 1".to_string()];
    let mut binds = Vec::new();
    let next = |b: Bind, binds: &mut Vec<Bind>| {
        binds.push(b);
        format!("${}", binds.len())
    };
    if let Some(kind) = &filter.kind {
        parts.push(format!("kind = {}", next(Bind::Text(kind.clone()), &mut binds)));
    }
    if let Some(owner) = &filter.owner {
        parts.push(format!("owner = {}", next(Bind::Text(owner.clone()), &mut binds)));
    }
    match &filter.parent {
        Some(None) => parts.push("parent_id is null".into()),
        Some(Some(p)) => parts.push(format!("parent_id = {}", next(Bind::Text(p.to_string()), &mut binds))),
        None => {}
    }
    if !filter.states.is_empty() {
        let list = json_list(&filter.states.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        parts.push(format!("state in (select value from json_each({}))", next(Bind::Text(list), &mut binds)));
    }
    for (field, value) in &filter.args_eq {
        let f = next(Bind::Text(field.clone()), &mut binds);
        let v = next(Bind::Text(value.clone()), &mut binds);
        parts.push(format!("args ->> {f} = {v}"));
    }
    if let Some(t) = filter.updated_since {
        parts.push(format!("updated_at >= {}", next(Bind::Int(ms(t)), &mut binds)));
    }
    if let Some(t) = filter.completed_since {
        parts.push(format!("completed_at >= {}", next(Bind::Int(ms(t)), &mut binds)));
    }
    (parts.join(" and "), binds)
}
