//! The PostgreSQL backend: for several web and worker processes sharing one database.
//!
//! Time is the database's (`queue_now()`), so hosts whose clocks drift never disagree about
//! a lease; a test clock, when given, decides instead. Claims lock their rows with `for update
//! skip locked`, so concurrent claimers never wait on each other and never take the same job.
//! The per-owner limit takes a transaction-scoped advisory lock keyed by the owner, which
//! serialises that owner's inserts (and only theirs) across processes. Writes, heartbeats and
//! ends of running jobs come in batches ([`crate::batch`]), one statement for many jobs, their
//! arrays passed with `unnest`.
//!
//! Every statement that changes jobs' versions also `NOTIFY`s them, from a statement trigger (one
//! notification for a batch, not one a job). PostgreSQL commits
//! notifying transactions one at a time, across all its databases (a lock taken before the
//! commit record is written and released once it is flushed), so their WAL flushes are never
//! shared. Progress and checkpoint writes and heartbeats therefore commit without waiting for
//! the flush (`synchronous_commit = off` for that statement's own transaction): the lock is then
//! held for microseconds. Such a write is visible and announced at once like any other. Only a
//! crash of PostgreSQL or of its machine can lose the last moments of them (whole writes, never
//! parts of one), and that ends every connection, so every process resynchronises its feed; the
//! job's lease and fence are untouched. A lost checkpoint is work a resumed attempt does again.
//! (SQLite's `synchronous = NORMAL` takes a narrower form of this risk for every write: there
//! only a crash of the machine loses the last commits.) Claims, ends, inserts, cancels and
//! settles still wait for the flush.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgListener, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, Row};
use uuid::Uuid;

use super::{ACTIVE, JobStore, Pools, Result, TERMINAL, ms, parse_state, parse_stuck, repeat_outcome, time, to_json};
use crate::clock::Clock;
use crate::events::{Event, Events};
use crate::feed::Feed;
use crate::job::{
    Control, Count, Fence, Filter, Finish, Insert, InsertOutcome, Job, JobId, NewJob, Order, Outcome, Page, Settle,
    State, Stuck, Write,
};

/// The NOTIFY channel of [`Event`]s.
pub const EVENTS_CHANNEL: &str = "queue_events";
/// The channel the jobs table's trigger announces `job_id version` on after every version change.
pub const CHANGES_CHANNEL: &str = "queue_jobs_changed";
const POOL_SIZE: u32 = 16;

/// Every column of a job, in table order: what the archive copies.
const COLUMNS: &str = "id, job_id, kind, owner, parent_id, child_limit, args, state, priority, attempt, \
    max_attempts, lease_owner, lease_expires_at, heartbeat_at, cancel_requested, version, idempotency_key, \
    args_hash, timeout_ms, timeout_at, progress, checkpoints, output, error, created_at, started_at, \
    completed_at, updated_at";

/// The statement's one instant: the test clock's when one is given (`$1`), else the database's.
const CLOCK: &str = "clock as (select coalesce($1::bigint, queue_now()) as now)";

/// Locks the rows of the jobs in `$2` in the order of their ids before a statement updates
/// them. Two statements that update overlapping sets of running jobs — a batch of progress
/// writes and a batch of heartbeats, say — would otherwise each lock in the order its join
/// happens to visit them, and could wait for each other for ever (PostgreSQL then aborts one
/// as a deadlock). Ordered locks cannot cross.
const LOCKED_IN_ORDER: &str = "locked as materialized (
    select id from queue_jobs where job_id = any($2::uuid[]) order by id for update)";

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

    pub fn pools(&self) -> Pools {
        Pools::Postgres(self.pool.clone())
    }

    /// The instant a statement should use, or `None` for the database's own.
    fn now(&self) -> Option<i64> {
        self.clock.lease_time().map(ms)
    }
}

fn decode(row: &PgRow) -> Result<Job> {
    let args: Json<Value> = row.try_get("args")?;
    let progress: Json<Value> = row.try_get("progress")?;
    let checkpoints: Json<BTreeMap<String, Value>> = row.try_get("checkpoints")?;
    let output: Option<Json<Value>> = row.try_get("output")?;
    let state: String = row.try_get("state")?;
    Ok(Job {
        id: row.try_get("id")?,
        job_id: JobId(row.try_get::<Uuid, _>("job_id")?),
        kind: row.try_get("kind")?,
        owner: row.try_get("owner")?,
        parent: row.try_get::<Option<Uuid>, _>("parent_id")?.map(JobId),
        child_limit: row.try_get::<Option<i32>, _>("child_limit")?.map(|n| n.max(0) as u32),
        args: args.0,
        state: parse_state(&state)?,
        priority: row.try_get("priority")?,
        attempt: row.try_get::<i32, _>("attempt")?.max(0) as u32,
        max_attempts: row.try_get::<i32, _>("max_attempts")?.max(0) as u32,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: time("lease_expires_at", row.try_get("lease_expires_at")?)?,
        heartbeat_at: time("heartbeat_at", row.try_get("heartbeat_at")?)?,
        cancel_requested: row.try_get::<i32, _>("cancel_requested")? != 0,
        version: row.try_get("version")?,
        idempotency_key: row.try_get("idempotency_key")?,
        args_hash: row.try_get("args_hash")?,
        timeout_ms: row.try_get::<i64, _>("timeout_ms")?.max(0) as u64,
        timeout_at: time("timeout_at", row.try_get("timeout_at")?)?,
        progress: progress.0,
        checkpoints: checkpoints.0,
        output: output.map(|o| o.0),
        error: row.try_get("error")?,
        created_at: time("created_at", Some(row.try_get("created_at")?))?.expect("some"),
        started_at: time("started_at", row.try_get("started_at")?)?,
        completed_at: time("completed_at", row.try_get("completed_at")?)?,
        updated_at: time("updated_at", Some(row.try_get("updated_at")?))?.expect("some"),
        archived: row.try_get::<Option<bool>, _>("archived").ok().flatten().unwrap_or(false),
    })
}

/// Inserts jobs in one statement inside the caller's transaction, in the order given.
async fn insert_rows(
    tx: &mut PgConnection,
    jobs: &[&NewJob],
    state: State,
    parent: Option<JobId>,
    now: Option<i64>,
) -> Result<Vec<Job>> {
    let col = |f: &dyn Fn(&NewJob) -> String| jobs.iter().map(|j| f(j)).collect::<Vec<String>>();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "with {CLOCK}
         insert into queue_jobs
            (job_id, kind, owner, parent_id, child_limit, args, state, priority, max_attempts, idempotency_key,
             args_hash, timeout_ms, progress, checkpoints, created_at, updated_at)
         select n.job_id, n.kind, n.owner, $2, n.child_limit, n.args::jsonb, $3, n.priority, n.max_attempts,
                n.idempotency_key, n.args_hash, n.timeout_ms, n.progress::jsonb, n.checkpoints::jsonb,
                clock.now, clock.now
         from clock, unnest($4::uuid[], $5::text[], $6::text[], $7::int[], $8::text[], $9::int[], $10::int[],
                             $11::text[], $12::text[], $13::bigint[], $14::text[], $15::text[]) with ordinality
              as n(job_id, kind, owner, child_limit, args, priority, max_attempts, idempotency_key, args_hash,
                   timeout_ms, progress, checkpoints, ord)
         order by n.ord
         returning *"
    )))
    .bind(now)
    .bind(parent.map(|p| p.0))
    .bind(state.as_str())
    .bind(jobs.iter().map(|j| j.job_id.0).collect::<Vec<Uuid>>())
    .bind(col(&|j| j.kind.clone()))
    .bind(col(&|j| j.owner.clone()))
    .bind(jobs.iter().map(|j| j.child_limit.map(|n| n as i32)).collect::<Vec<Option<i32>>>())
    .bind(col(&|j| to_json(&j.args)))
    .bind(jobs.iter().map(|j| j.priority).collect::<Vec<i32>>())
    .bind(jobs.iter().map(|j| j.max_attempts as i32).collect::<Vec<i32>>())
    .bind(jobs.iter().map(|j| j.idempotency_key.clone()).collect::<Vec<Option<String>>>())
    .bind(jobs.iter().map(|j| j.args_hash.clone()).collect::<Vec<Option<String>>>())
    .bind(jobs.iter().map(|j| j.timeout_ms as i64).collect::<Vec<i64>>())
    .bind(col(&|j| to_json(&j.progress)))
    .bind(col(&|j| to_json(&j.checkpoints)))
    .fetch_all(&mut *tx)
    .await?;
    let mut jobs = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

/// Makes pending the waiting parents among `parents` none of whose children is active any
/// more, inside the caller's transaction. The parents are locked first: a sibling ending in
/// another transaction waits for this one, and then its own statement (a new snapshot) sees
/// this one's child ended — so two last children ending at once cannot both miss waking it.
async fn wake_parents(tx: &mut PgConnection, parents: &[JobId], now: Option<i64>) -> Result<Vec<JobId>> {
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = parents.iter().map(|p| p.0).collect();
    sqlx::query("select id from queue_jobs where job_id = any($1) and state = 'waiting' order by id for update")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    let woken: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "with {CLOCK}
         update queue_jobs p set state = 'pending', version = p.version + 1, updated_at = clock.now
         from clock
         where p.job_id = any($2) and p.state = 'waiting'
           and not exists (select 1 from queue_jobs c
                           where c.parent_id = p.job_id and c.state in ('waiting', 'pending', 'running'))
         returning p.job_id"
    )))
    .bind(now)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(woken.into_iter().map(JobId).collect())
}

fn fences<'a>(fences: impl Iterator<Item = &'a Fence> + Clone) -> (Vec<Uuid>, Vec<String>, Vec<i32>) {
    (
        fences.clone().map(|f| f.job_id.0).collect(),
        fences.clone().map(|f| f.owner.clone()).collect(),
        fences.map(|f| f.attempt as i32).collect(),
    )
}

/// A fence as a statement returns it: (`job_id`, owner, attempt).
type Held = (Uuid, String, i32);

fn held(f: &Fence) -> Held {
    (f.job_id.0, f.owner.clone(), f.attempt as i32)
}

/// Each fence's answer from the rows a fenced statement returned (the fence it matched and
/// `cancel_requested`): a batch may hold a stale fence and the live one of the same job.
fn answers(fences: &[&Fence], rows: Vec<(Uuid, String, i32, i32)>) -> Vec<Option<Control>> {
    let found: HashMap<Held, bool> = rows.into_iter().map(|(id, o, a, c)| ((id, o, a), c != 0)).collect();
    fences.iter().map(|f| found.get(&held(f)).map(|c| Control { cancel_requested: *c })).collect()
}

#[async_trait]
impl JobStore for PostgresStore {
    fn feed(&self) -> &Feed {
        &self.feed
    }

    async fn insert(&self, insert: &Insert) -> Result<InsertOutcome> {
        let job = &insert.job;
        let mut tx = self.pool.begin().await?;
        if insert.owner_limit.is_some() || job.idempotency_key.is_some() {
            // Serialises this owner's inserts across every process until commit.
            sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 7262))")
                .bind(&job.owner)
                .execute(&mut *tx)
                .await?;
        }
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
        let now = self.now();
        let state = if insert.children.is_empty() { State::Pending } else { State::Waiting };
        let created = insert_rows(&mut tx, &[job], state, None, now).await?.remove(0);
        if !insert.children.is_empty() {
            let children: Vec<&NewJob> = insert.children.iter().collect();
            insert_rows(&mut tx, &children, State::Pending, Some(job.job_id), now).await?;
        }
        tx.commit().await?;
        self.feed.touched(created.job_id);
        Ok(InsertOutcome::Created(created))
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS}, false as archived from queue_jobs where job_id = $1
             union all
             select {COLUMNS}, true as archived from queue_jobs_archive where job_id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| decode(&r)).transpose()
    }

    async fn list(&self, filter: &Filter) -> Result<Page> {
        let (conditions, binds) = conditions(filter);
        let columns = if filter.checkpoints {
            COLUMNS.to_string()
        } else {
            COLUMNS.replace("checkpoints,", "'{}'::jsonb as checkpoints,")
        };
        let order = match filter.order {
            Order::Created => "created_at desc, id desc",
            Order::Inserted => "id",
            Order::Completed => "completed_at desc nulls last, id desc",
        };
        let mut sql = format!("select {columns}, false as archived from queue_jobs where {conditions}");
        if filter.archived {
            sql.push_str(&format!(
                " union all select {columns}, true as archived from queue_jobs_archive where {conditions}"
            ));
        }
        let n = binds.len();
        sql.push_str(&format!(" order by {order} limit ${} offset ${}", n + 1, n + 2));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            query = b.bind(query);
        }
        let rows = query.bind(i64::from(filter.limit)).bind(filter.offset as i64).fetch_all(&self.pool).await?;
        let jobs = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        let total = if filter.count {
            let mut sql = format!("select (select count(*) from queue_jobs where {conditions})");
            if filter.archived {
                sql.push_str(&format!(" + (select count(*) from queue_jobs_archive where {conditions})"));
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                query = b.bind(query);
            }
            let total: i64 = query.fetch_one(&self.pool).await?.try_get(0)?;
            Some(total.max(0) as u64)
        } else {
            None
        };
        Ok(Page { jobs, total })
    }

    /// The running jobs are counted once per owner (`running`), not once per pending row; the
    /// claimable candidates are read in the claim index's order, a bounded window of them
    /// ([`super::claim_window`]), and numbered per owner, so that one statement can hand out
    /// several jobs fairly without taking more of an owner's children than its parents allow.
    async fn claim(&self, owner: &str, lease: Duration, limit: u32, kinds: &[String]) -> Result<Vec<Job>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "with {CLOCK},
             running as (
                 select owner, count(*) as jobs, count(parent_id) as children
                 from queue_jobs where state = 'running' group by owner),
             candidates as (
                 select j.id, j.owner, j.priority, j.created_at, j.parent_id,
                        coalesce(r.jobs, 0) as jobs, coalesce(r.children, 0) as children,
                        case when p.state = 'waiting' then p.child_limit else 0 end as cap
                 from queue_jobs j
                 left join running r on r.owner = j.owner
                 left join queue_jobs p on p.job_id = j.parent_id
                 where j.state = 'pending' and j.kind = any($4)
                   and (j.parent_id is null
                        or coalesce(r.children, 0) < case when p.state = 'waiting' then p.child_limit else 0 end)
                 order by j.priority desc, j.created_at, j.id
                 limit $6),
             numbered as (
                 select *,
                        row_number() over (partition by owner order by priority desc, created_at, id) as nth,
                        row_number() over (partition by owner, parent_id is null
                                           order by priority desc, created_at, id) as nth_of_kind
                 from candidates),
             chosen as (
                 select id from numbered
                 where parent_id is null or children + nth_of_kind <= cap
                 order by priority desc, jobs + nth, created_at, id
                 limit $5),
             locked as (
                 select q.id from queue_jobs q join chosen c on c.id = q.id
                 where q.state = 'pending' for update of q skip locked)
             update queue_jobs j
             set state = 'running', attempt = j.attempt + 1, lease_owner = $2, lease_expires_at = clock.now + $3,
                 heartbeat_at = clock.now, started_at = coalesce(j.started_at, clock.now),
                 timeout_at = clock.now + j.timeout_ms, version = j.version + 1, updated_at = clock.now
             from locked, clock
             where j.id = locked.id
             returning j.*"
        )))
        .bind(self.now())
        .bind(owner)
        .bind(lease.num_milliseconds())
        .bind(kinds)
        .bind(i64::from(limit))
        .bind(super::claim_window(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut jobs = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.created_at, j.id));
        for job in &jobs {
            self.feed.touched(job.job_id);
        }
        Ok(jobs)
    }

    async fn control(&self, list: &[Fence], extend: Option<Duration>) -> Result<Vec<Option<Control>>> {
        let (ids, owners, attempts) = fences(list.iter());
        let rows: Vec<(Uuid, String, i32, i32)> = match extend {
            // A lost heartbeat costs nothing that the next one does not mend: no flush wait.
            Some(lease) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "with {CLOCK}, {LOCKED_IN_ORDER}
                 update queue_jobs j set lease_expires_at = clock.now + $5, heartbeat_at = clock.now
                 from clock, locked, (select set_config('synchronous_commit', 'off', true)) as no_flush_wait,
                      unnest($2::uuid[], $3::text[], $4::int[]) as f(job_id, owner, attempt)
                 where j.id = locked.id and j.job_id = f.job_id and j.lease_owner = f.owner and j.attempt = f.attempt
                   and j.state = 'running'
                 returning j.job_id, f.owner, f.attempt, j.cancel_requested"
                )))
                .bind(self.now())
                .bind(&ids)
                .bind(&owners)
                .bind(&attempts)
                .bind(lease.num_milliseconds())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(
                    "select j.job_id, f.owner, f.attempt, j.cancel_requested
                 from queue_jobs j join unnest($1::uuid[], $2::text[], $3::int[]) as f(job_id, owner, attempt)
                   on j.job_id = f.job_id and j.lease_owner = f.owner and j.attempt = f.attempt
                 where j.state = 'running'",
                )
                .bind(&ids)
                .bind(&owners)
                .bind(&attempts)
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(answers(&list.iter().collect::<Vec<_>>(), rows))
    }

    /// Commits without waiting for the WAL flush (see the module's documentation).
    async fn write(&self, writes: &[Write]) -> Result<Vec<Option<Control>>> {
        let (ids, owners, attempts) = fences(writes.iter().map(|w| &w.fence));
        let rows: Vec<(Uuid, String, i32, i32)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "with {CLOCK}, {LOCKED_IN_ORDER}
             update queue_jobs j
             set progress = w.progress::jsonb, checkpoints = j.checkpoints || w.patch::jsonb,
                 version = j.version + 1, updated_at = clock.now
             from clock, locked, (select set_config('synchronous_commit', 'off', true)) as no_flush_wait,
                  unnest($2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[])
                  as w(job_id, owner, attempt, progress, patch)
             where j.id = locked.id and j.job_id = w.job_id and j.lease_owner = w.owner and j.attempt = w.attempt and j.state = 'running'
             returning j.job_id, w.owner, w.attempt, j.cancel_requested"
        )))
        .bind(self.now())
        .bind(&ids)
        .bind(&owners)
        .bind(&attempts)
        .bind(writes.iter().map(|w| to_json(&w.progress)).collect::<Vec<_>>())
        .bind(writes.iter().map(|w| to_json(&w.checkpoints)).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        let out = answers(&writes.iter().map(|w| &w.fence).collect::<Vec<_>>(), rows);
        for (w, c) in writes.iter().zip(&out) {
            if c.is_some() {
                self.feed.touched(w.fence.job_id);
            }
        }
        Ok(out)
    }

    async fn finish(&self, finishes: &[Finish]) -> Result<Vec<bool>> {
        let (ids, owners, attempts) = fences(finishes.iter().map(|f| &f.fence));
        let output = |f: &Finish| match &f.outcome {
            Outcome::Completed(v) => Some(to_json(v)),
            _ => None,
        };
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(Uuid, String, i32, Option<Uuid>, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "with {CLOCK}, {LOCKED_IN_ORDER}
             update queue_jobs j
             set state = f.state,
                 attempt = case when f.state = 'pending' then j.attempt - 1 else j.attempt end,
                 lease_owner = case when f.state = 'pending' then null else j.lease_owner end,
                 lease_expires_at = null,
                 heartbeat_at = case when f.state = 'pending' then null else j.heartbeat_at end,
                 timeout_at = case when f.state = 'pending' then null else j.timeout_at end,
                 output = f.output::jsonb, error = f.error, progress = f.progress::jsonb,
                 checkpoints = j.checkpoints || f.patch::jsonb,
                 completed_at = case when f.state = 'pending' then null else clock.now end,
                 version = j.version + 1, updated_at = clock.now
             from clock, locked,
                  unnest($2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
                  as f(job_id, owner, attempt, state, output, error, progress, patch)
             where j.id = locked.id and j.job_id = f.job_id and j.lease_owner = f.owner and j.attempt = f.attempt and j.state = 'running'
             returning j.job_id, f.owner, f.attempt, j.parent_id, j.state"
        )))
        .bind(now)
        .bind(&ids)
        .bind(&owners)
        .bind(&attempts)
        .bind(finishes.iter().map(|f| f.outcome.state().as_str().to_string()).collect::<Vec<_>>())
        .bind(finishes.iter().map(output).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| f.outcome.error().map(str::to_string)).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| to_json(&f.progress)).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| to_json(&f.checkpoints)).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        let parents: Vec<JobId> = rows
            .iter()
            .filter(|(.., state)| state != "pending")
            .filter_map(|(_, _, _, parent, _)| parent.map(JobId))
            .collect();
        let woken = wake_parents(&mut tx, &parents, now).await?;
        tx.commit().await?;
        let ended: std::collections::HashSet<Held> = rows.into_iter().map(|(id, o, a, _, _)| (id, o, a)).collect();
        let out: Vec<bool> = finishes.iter().map(|f| ended.contains(&held(&f.fence))).collect();
        for (id, _, _) in ended {
            self.feed.touched(JobId(id));
        }
        for p in woken {
            self.feed.touched(p);
        }
        Ok(out)
    }

    async fn cancel(&self, id: JobId) -> Result<Option<Job>> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query("select * from queue_jobs where job_id = $1 for update")
            .bind(id.0)
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
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "with {CLOCK}
                     update queue_jobs set state = 'cancelled', cancel_requested = 1, completed_at = clock.now,
                         version = version + 1, updated_at = clock.now
                     from clock where id = $2 returning queue_jobs.*"
                )))
                .bind(now)
                .bind(job.id)
                .fetch_one(&mut *tx)
                .await?;
                if job.state == State::Waiting {
                    let children: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "with {CLOCK}
                         update queue_jobs
                         set state = case when state = 'running' then state else 'cancelled' end,
                             completed_at = case when state = 'running' then completed_at else clock.now end,
                             cancel_requested = 1, version = version + 1, updated_at = clock.now
                         from clock
                         where parent_id = $2 and state in ('pending', 'running') and cancel_requested = 0
                         returning job_id"
                    )))
                    .bind(now)
                    .bind(id.0)
                    .fetch_all(&mut *tx)
                    .await?;
                    touched.extend(children.into_iter().map(JobId));
                }
                if let (State::Pending, Some(parent)) = (job.state, job.parent) {
                    touched.extend(wake_parents(&mut tx, &[parent], now).await?);
                }
                row
            }
            State::Running if !job.cancel_requested => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "with {CLOCK}
                     update queue_jobs set cancel_requested = 1, version = version + 1, updated_at = clock.now
                     from clock where id = $2 returning queue_jobs.*"
                )))
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
            "with {CLOCK}
             (select j.*, case when j.timeout_at < clock.now - $2 then 'overdue' else 'expired' end as reason
              from queue_jobs j, clock
              where j.state = 'running' and (j.lease_expires_at < clock.now or j.timeout_at < clock.now - $2)
              order by j.id limit $3)
             union all
             (select p.*, 'orphaned' as reason from queue_jobs p where p.state = 'waiting'
                and not exists (select 1 from queue_jobs c
                                where c.parent_id = p.job_id and c.state in ('waiting', 'pending', 'running'))
              order by p.id limit $3)"
        )))
        .bind(self.now())
        .bind(slack.num_milliseconds())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((decode(r)?, parse_stuck(&r.try_get::<String, _>("reason")?)?))).collect()
    }

    async fn settle(&self, observed: &Job, settle: &Settle) -> Result<bool> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let fenced = "job_id = $2 and state = 'running' and lease_owner is not distinct from $3 and attempt = $4 \
                      and lease_expires_at is not distinct from $5";
        let query = |sql: String| -> sqlx::query::Query<'static, Postgres, PgArguments> {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(observed.job_id.0)
                .bind(observed.lease_owner.clone())
                .bind(observed.attempt as i32)
                .bind(observed.lease_expires_at.map(ms))
        };
        let done = match (observed.state, settle) {
            // A parent whose children all ended without waking it.
            (State::Waiting, Settle::Requeue) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "with {CLOCK}
                     update queue_jobs set state = 'pending', version = version + 1, updated_at = clock.now
                     from clock where job_id = $2 and state = 'waiting'"
                )))
                .bind(now)
                .bind(observed.job_id.0)
                .execute(&mut *tx)
                .await?
            }
            (_, Settle::Requeue) => {
                query(format!(
                    "with {CLOCK}
                     update queue_jobs
                     set state = 'pending', lease_owner = null, lease_expires_at = null, heartbeat_at = null,
                         timeout_at = null, version = version + 1, updated_at = clock.now
                     from clock where {fenced}"
                ))
                .execute(&mut *tx)
                .await?
            }
            (_, Settle::End { state, error }) => {
                query(format!(
                    "with {CLOCK}
                     update queue_jobs
                     set state = $6, error = $7, lease_expires_at = null, completed_at = clock.now,
                         version = version + 1, updated_at = clock.now
                     from clock where {fenced}"
                ))
                .bind(state.as_str())
                .bind(error.clone())
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
        // One short statement per batch: the CTE locks only the rows it moves (skipping rows
        // another janitor holds), so the table is never locked as a whole.
        let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
            "with doomed as (
                 select id from queue_jobs
                 where state in {TERMINAL} and completed_at < $1
                 order by completed_at limit $2 for update skip locked
             ), gone as (
                 delete from queue_jobs j using doomed where j.id = doomed.id returning j.*
             )
             insert into queue_jobs_archive ({COLUMNS}, archived_at)
             select {COLUMNS}, coalesce($3::bigint, queue_now()) from gone"
        )))
        .bind(ms(before))
        .bind(i64::from(batch))
        .bind(self.now())
        .execute(&self.pool)
        .await?;
        Ok(moved.rows_affected())
    }

    async fn prune(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        Ok(sqlx::query(
            "delete from queue_jobs_archive where id in
               (select id from queue_jobs_archive where archived_at < $1 order by archived_at limit $2)",
        )
        .bind(ms(before))
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn counts(&self) -> Result<Vec<Count>> {
        let rows: Vec<(String, String, bool, i64)> = sqlx::query_as(
            "select kind, state, parent_id is not null, count(*) from queue_jobs group by 1, 2, 3 order by 1, 2, 3",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(kind, state, child, n)| Ok(Count { kind, state: parse_state(&state)?, child, jobs: n as u64 }))
            .collect()
    }

    async fn publish(&self, event: &Event) -> Result<()> {
        sqlx::query("select pg_notify($1, $2)").bind(EVENTS_CHANNEL).bind(to_json(event)).execute(&self.pool).await?;
        Ok(())
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
                    Ok(Some(n)) if n.channel() == CHANGES_CHANNEL => {
                        for change in n.payload().split(',') {
                            match parse_change(change) {
                                Some((job_id, version)) => feed.changed(job_id, version),
                                None => tracing::warn!(payload = change, "ignoring a malformed change notification"),
                            }
                        }
                    }
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
}

async fn subscribe(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection must reach `listen` before anything listens again: an eager reconnect
    // inside `try_recv` would be listening while the feed still counts as live, and the
    // notifications lost meanwhile would never be resynchronised.
    listener.eager_reconnect(false);
    listener.listen_all([EVENTS_CHANNEL, CHANGES_CHANNEL]).await?;
    Ok(listener)
}

/// `"<job id> <version>"`, one entry of what the triggers send.
fn parse_change(payload: &str) -> Option<(JobId, i64)> {
    let (id, version) = payload.split_once(' ')?;
    Some((id.parse().ok()?, version.parse().ok()?))
}

/// A value bound to a listing's conditions.
enum Bind {
    Text(String),
    Texts(Vec<String>),
    Uuid(Uuid),
    Int(i64),
}

impl Bind {
    fn bind<'q>(
        &self,
        q: sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        match self {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Texts(v) => q.bind(v.clone()),
            Bind::Uuid(u) => q.bind(*u),
            Bind::Int(i) => q.bind(*i),
        }
    }
}

/// A listing's `where` clause and what it binds, numbered from `$1`.
fn conditions(filter: &Filter) -> (String, Vec<Bind>) {
    let mut parts = vec!["true".to_string()];
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
        Some(Some(p)) => parts.push(format!("parent_id = {}", next(Bind::Uuid(p.0), &mut binds))),
        None => {}
    }
    if !filter.states.is_empty() {
        let states = filter.states.iter().map(|s| s.as_str().to_string()).collect();
        parts.push(format!("state = any({}::text[])", next(Bind::Texts(states), &mut binds)));
    }
    for (field, value) in &filter.args_eq {
        let f = next(Bind::Text(field.clone()), &mut binds);
        let v = next(Bind::Text(value.clone()), &mut binds);
        parts.push(format!("args ->> {f}::text = {v}"));
    }
    if let Some(t) = filter.updated_since {
        parts.push(format!("updated_at >= {}", next(Bind::Int(ms(t)), &mut binds)));
    }
    if let Some(t) = filter.completed_since {
        parts.push(format!("completed_at >= {}", next(Bind::Int(ms(t)), &mut binds)));
    }
    (parts.join(" and "), binds)
}
