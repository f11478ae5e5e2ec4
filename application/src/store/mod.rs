//! The application's own SQL: its migrations, its tables (API tokens, share links, settings)
//! and the figures it reads from the record of runs (`trading_agent_jobs`, a view over the
//! queue's jobs of kind `analysis`).
//!
//! One implementation for both databases: the statements are written in the SQL SQLite and
//! PostgreSQL share (`$n` parameters, times as epoch milliseconds, JSON read as text) and each
//! runs on whichever pool the database has. The queue's own SQL stays in `jobs`.

use chrono::{DateTime, Utc};
use domain::{
    ApiToken, HistoryOrder, HorizonOutcome, LogEntry, LogEvent, RunId, RunsQuery, ShareLink, StepProgress, TokenUsage,
};
use jobs::{Database, Pools, StoreError};

use crate::error::Result;
use crate::stats::ModelPace;

/// Runs `$body` with `$pool` bound to the database's pool for reads (SQLite's readers).
macro_rules! on_reader {
    ($self:ident, |$pool:ident| $body:expr) => {
        match &$self.pools {
            Pools::Sqlite { reader: $pool, .. } => $body,
            Pools::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the database's pool for writes (SQLite's one writer).
macro_rules! on_writer {
    ($self:ident, |$pool:ident| $body:expr) => {
        match &$self.pools {
            Pools::Sqlite { writer: $pool, .. } => $body,
            Pools::Postgres($pool) => $body,
        }
    };
}

mod schedules;
mod webhooks;
pub use schedules::{FireRow, ScheduleRow};
pub use webhooks::DeliveryRow;

/// Applies every migration: the queue's, then the application's (which build on them).
pub async fn migrate(db: &Database) -> Result<()> {
    db.migrate_queue().await?;
    let failed = |e| StoreError::Database(sqlx::Error::Migrate(Box::new(e)));
    match &db.pools {
        Pools::Sqlite { writer, .. } => sqlx::migrate!("../migrations/sqlite").run(writer).await.map_err(failed)?,
        Pools::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await.map_err(failed)?,
    }
    Ok(())
}

/// What one user's runs spent on model calls in a window (see [`Store::usage_since`]).
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

/// How a run turned out, as kept (see [`Store::upsert_outcome`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOutcome {
    pub run_id: RunId,
    pub horizons: Vec<HorizonOutcome>,
    /// Every horizon reached: it will not change.
    pub settled: bool,
    pub checked_at: DateTime<Utc>,
}

/// One row of the history as the store reads it (see [`Store::search_runs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    /// The row number: with `created_at`, the keyset order.
    pub id: i64,
    pub run_id: RunId,
    pub symbol: String,
    pub model_id: String,
    /// The analysts, as stored (a JSON array).
    pub analysts: String,
    pub depth: Option<String>,
    pub as_of: Option<String>,
    pub status: String,
    pub progress: i64,
    pub rating: Option<String>,
    pub confidence: Option<f64>,
    pub cost_usd: f64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub archived: bool,
}

/// A value bound to a numbered parameter of a statement built at run time.
#[derive(Debug, Clone)]
enum Param {
    Text(String),
    Int(i64),
}

/// The runs of the history: all but backtests' cells (a batch's runs are the user's own). The
/// condition of the history's indexes, written exactly as they are, on the table's columns
/// (see migration `20261209000001_batches`).
const IN_HISTORY: &str = "(case when args ->> 'batchId' is null then parent_id end) is null";

/// The `where` clause of a history search, with its parameters, for either table of runs.
fn history_where(owner: &str, query: &RunsQuery) -> (String, Vec<Param>) {
    let mut params = vec![Param::Text(owner.to_string())];
    let mut clauses = vec!["user_id = $1".to_string(), IN_HISTORY.to_string()];
    let bind = |params: &mut Vec<Param>, p: Param| {
        params.push(p);
        format!("${}", params.len())
    };
    if let Some(s) = &query.symbol {
        clauses.push(format!("symbol = {}", bind(&mut params, Param::Text(s.to_string()))));
    }
    if let Some(m) = &query.model_id {
        clauses.push(format!("model_id = {}", bind(&mut params, Param::Text(m.to_string()))));
    }
    if let Some(r) = query.rating {
        clauses.push(format!("result ->> 'rating' = {}", bind(&mut params, Param::Text(r.as_str().into()))));
    }
    if let Some(s) = query.status {
        clauses.push(format!("status = {}", bind(&mut params, Param::Text(s.as_str().into()))));
    }
    if let Some(d) = query.depth {
        let p = bind(&mut params, Param::Text(d.id().into()));
        clauses.push(format!("coalesce(options ->> 'depth', 'quick') = {p}"));
    }
    let day_ms = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis();
    if let Some(d) = query.from {
        clauses.push(format!("created_at >= {}", bind(&mut params, Param::Int(day_ms(d)))));
    }
    if let Some(d) = query.to {
        let next = d.succ_opt().unwrap_or(d);
        clauses.push(format!("created_at < {}", bind(&mut params, Param::Int(day_ms(next)))));
    }
    const AS_OF: &str = "coalesce(result ->> 'asOf', cast(as_of as text))";
    if let Some(d) = query.as_of_from {
        clauses.push(format!("{AS_OF} >= {}", bind(&mut params, Param::Text(d.to_string()))));
    }
    if let Some(d) = query.as_of_to {
        clauses.push(format!("{AS_OF} <= {}", bind(&mut params, Param::Text(d.to_string()))));
    }
    if let Some(t) = &query.tag {
        let p = bind(&mut params, Param::Text(t.clone()));
        clauses.push(format!(
            "cast(run_id as text) in (select t.run_id from trading_agent_tags t where t.user_id = $1 and t.tag = {p})"
        ));
    }
    for w in &query.words {
        let escaped = w.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let p = bind(&mut params, Param::Text(format!("%{escaped}%")));
        clauses.push(format!(
            "lower(coalesce(result ->> 'summary', '') || ' ' || coalesce(cast(result -> 'reports' as text), '') || ' ' \
             || coalesce(cast(result -> 'team' as text), '')) like {p} escape '\\'"
        ));
    }
    if let Some(called) = query.outcome {
        let right = i64::from(called == domain::Called::Right);
        let p = bind(&mut params, Param::Int(right));
        clauses.push(format!(
            "cast(run_id as text) in (select o.run_id from trading_agent_outcomes o where o.user_id = $1 and o.right_long = {p})"
        ));
    }
    (clauses.join(" and "), params)
}

/// The stored return of a row's run over the longest horizon, as the column `return_long`.
const RETURN_LONG: &str =
    ", (select o.return_long from trading_agent_outcomes o where o.run_id = cast(j.run_id as text)) as return_long";

/// Binds `params` in order to a query built at run time.
macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Param::Text(s) => q.bind(s.clone()),
                Param::Int(n) => q.bind(*n),
            };
        }
        q
    }};
}

#[derive(Clone)]
pub struct Store {
    pools: Pools,
}

/// `$first, $first+1, …`: `n` bind markers for an `in (…)` list.
fn markers(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| crate::Error::Internal(format!("a time out of range: {ms}")))
}

fn json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| crate::Error::Internal(format!("{what}: {e}")))
}

impl Store {
    pub fn new(pools: Pools) -> Self {
        Self { pools }
    }

    /// The column that orders rows of a table by insertion.
    fn seq(&self) -> &'static str {
        match self.pools {
            Pools::Sqlite { .. } => "rowid",
            Pools::Postgres(_) => "seq",
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        on_reader!(self, |pool| sqlx::query("select 1").execute(pool).await.map(drop).map_err(StoreError::from)?);
        Ok(())
    }

    /// What the runs of `owner` last updated at or after `since` spent on model calls; runs
    /// that spent nothing are not counted.
    pub async fn usage_since(&self, owner: &str, since: DateTime<Utc>) -> Result<UserUsage> {
        let sql = "select count(*), cast(coalesce(sum(prompt_tokens + completion_tokens), 0) as bigint),
                          cast(coalesce(sum(cost_usd), 0) as double precision), min(updated_at)
                   from trading_agent_jobs
                   where user_id = $1 and updated_at >= $2 and (prompt_tokens + completion_tokens > 0 or cost_usd > 0)";
        let (runs, tokens, cost_usd, oldest): (i64, i64, f64, Option<i64>) = on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(owner)
                .bind(since.timestamp_millis())
                .fetch_one(pool)
                .await
                .map_err(StoreError::from)?
        });
        Ok(UserUsage {
            runs: runs.max(0) as u64,
            tokens: tokens.max(0) as u64,
            cost_usd,
            oldest: oldest.map(time).transpose()?,
        })
    }

    /// The step lists of the most recent completed runs of a model, newest first.
    pub async fn recent_steps(&self, model_id: &str, limit: u32) -> Result<Vec<Vec<StepProgress>>> {
        let sql = "select cast(steps as text) from trading_agent_jobs where model_id = $1 and status = 'completed'
                   order by completed_at desc limit $2";
        let rows: Vec<String> = on_reader!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(model_id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        });
        rows.iter().map(|s| json("steps", s)).collect()
    }

    /// The model calls and tokens of the most recent completed runs of a model that called
    /// it, newest first.
    pub async fn recent_usage(&self, model_id: &str, limit: u32) -> Result<Vec<(u32, TokenUsage)>> {
        let sql = "select cast(llm_calls as bigint), cast(prompt_tokens as bigint), cast(completion_tokens as bigint)
                   from trading_agent_jobs where model_id = $1 and status = 'completed' and llm_calls > 0
                   order by completed_at desc limit $2";
        let rows: Vec<(i64, i64, i64)> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(model_id).bind(i64::from(limit)).fetch_all(pool).await.map_err(StoreError::from)?
        });
        Ok(rows
            .into_iter()
            .map(|(calls, prompt, completion)| {
                let tokens = TokenUsage { prompt: prompt.max(0) as u64, completion: completion.max(0) as u64 };
                (calls.clamp(0, i64::from(u32::MAX)) as u32, tokens)
            })
            .collect())
    }

    /// The stored value of a shared setting, storing `value` first if there is none.
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        on_writer!(self, |pool| {
            sqlx::query(
                "insert into trading_agent_settings (name, value) values ($1, $2) on conflict (name) do nothing",
            )
            .bind(name)
            .bind(value)
            .execute(pool)
            .await
            .map_err(StoreError::from)?;
            Ok(sqlx::query_scalar("select value from trading_agent_settings where name = $1")
                .bind(name)
                .fetch_one(pool)
                .await
                .map_err(StoreError::from)?)
        })
    }

    // Other ways to an identity ([`crate::access`]). Secrets are stored as their SHA-256 only.

    pub async fn insert_token(&self, owner: &str, token: &ApiToken, hash: &str) -> Result<()> {
        let sql =
            "insert into trading_agent_tokens (id, user_id, name, token_hash, created_at) values ($1, $2, $3, $4, $5)";
        on_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(&token.id)
                .bind(owner)
                .bind(&token.name)
                .bind(hash)
                .bind(token.created_at.timestamp_millis())
                .execute(pool)
                .await
                .map(drop)
                .map_err(StoreError::from)?
        });
        Ok(())
    }

    /// A user's tokens, newest first.
    pub async fn tokens_for(&self, owner: &str) -> Result<Vec<ApiToken>> {
        let sql = format!(
            "select id, name, created_at from trading_agent_tokens where user_id = $1 order by {} desc",
            self.seq()
        );
        let rows: Vec<(String, String, i64)> = on_reader!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(owner).fetch_all(pool).await.map_err(StoreError::from)?
        });
        rows.into_iter().map(|(id, name, at)| Ok(ApiToken { id, name, created_at: time(at)? })).collect()
    }

    /// Deletes one of a user's tokens; whether there was one.
    pub async fn delete_token(&self, owner: &str, id: &str) -> Result<bool> {
        let sql = "delete from trading_agent_tokens where user_id = $1 and id = $2";
        let done = on_writer!(self, |pool| {
            sqlx::query(sql).bind(owner).bind(id).execute(pool).await.map_err(StoreError::from)?.rows_affected()
        });
        Ok(done > 0)
    }

    /// The user a token's hash belongs to.
    pub async fn token_owner(&self, hash: &str) -> Result<Option<String>> {
        let sql = "select user_id from trading_agent_tokens where token_hash = $1";
        Ok(on_reader!(self, |pool| {
            sqlx::query_scalar(sql).bind(hash).fetch_optional(pool).await.map_err(StoreError::from)?
        }))
    }

    pub async fn insert_share(&self, owner: &str, share: &ShareLink, hash: &str) -> Result<()> {
        let sql = "insert into trading_agent_shares (id, run_id, user_id, token_hash, created_at) values ($1, $2, $3, $4, $5)";
        on_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(&share.id)
                .bind(share.run_id.to_string())
                .bind(owner)
                .bind(hash)
                .bind(share.created_at.timestamp_millis())
                .execute(pool)
                .await
                .map(drop)
                .map_err(StoreError::from)?
        });
        Ok(())
    }

    /// A user's share links of one run, newest first.
    pub async fn shares_for(&self, owner: &str, run_id: RunId) -> Result<Vec<ShareLink>> {
        let sql = format!(
            "select id, created_at from trading_agent_shares where user_id = $1 and run_id = $2 order by {} desc",
            self.seq()
        );
        let rows: Vec<(String, i64)> = on_reader!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .bind(run_id.to_string())
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        });
        rows.into_iter().map(|(id, at)| Ok(ShareLink { id, run_id, created_at: time(at)? })).collect()
    }

    /// Deletes one of a user's share links; whether there was one.
    pub async fn delete_share(&self, owner: &str, id: &str) -> Result<bool> {
        let sql = "delete from trading_agent_shares where user_id = $1 and id = $2";
        let done = on_writer!(self, |pool| {
            sqlx::query(sql).bind(owner).bind(id).execute(pool).await.map_err(StoreError::from)?.rows_affected()
        });
        Ok(done > 0)
    }

    /// The run a share link's hash opens, and its owner.
    pub async fn shared_run(&self, hash: &str) -> Result<Option<(RunId, String)>> {
        let sql = "select run_id, user_id from trading_agent_shares where token_hash = $1";
        let row: Option<(String, String)> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(hash).fetch_optional(pool).await.map_err(StoreError::from)?
        });
        row.map(|(run, user)| {
            let run = run.parse().map_err(|e: domain::IdError| crate::Error::Internal(e.0))?;
            Ok((run, user))
        })
        .transpose()
    }

    // The history: its search, and the tags owners put on their runs.

    /// One page of the runs of `owner` that `query` matches (archived ones included), newest
    /// first: at most `limit` after its cursor, or without one after skipping `offset`; with
    /// the count of every match when `count`.
    pub async fn search_runs(
        &self,
        owner: &str,
        query: &RunsQuery,
        limit: u32,
        offset: u64,
        count: bool,
    ) -> Result<(Vec<HistoryRow>, Option<u64>)> {
        let (filter, mut params) = history_where(owner, query);
        let total = if count {
            let sql = format!(
                "select (select count(*) from trading_agent_jobs where {filter})
                      + (select count(*) from trading_agent_jobs_archive where {filter})"
            );
            let n: i64 = on_reader!(self, |pool| {
                bind_all!(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)), &params)
                    .fetch_one(pool)
                    .await
                    .map_err(StoreError::from)?
            });
            Some(n.max(0) as u64)
        } else {
            None
        };
        let mut page = filter;
        let mut skip = String::new();
        match query.cursor {
            Some(c) => {
                params.push(Param::Int(c.created_ms));
                let at = params.len();
                params.push(Param::Int(c.id));
                page.push_str(&format!(" and (created_at < ${at} or (created_at = ${at} and id < ${}))", at + 1));
            }
            None => skip = format!(" offset {offset}"),
        }
        let columns = "id, cast(run_id as text) as run_id, symbol, model_id, cast(analysts as text) as analysts,
                       cast(options ->> 'depth' as text) as depth,
                       cast(coalesce(result ->> 'asOf', cast(as_of as text)) as text) as as_of, status,
                       cast(progress_percent as bigint) as progress, cast(result ->> 'rating' as text) as rating,
                       cast(result ->> 'confidence' as double precision) as confidence,
                       cast(cost_usd as double precision) as cost_usd, created_at, started_at, completed_at";
        // Another order than newest first sorts by the run's stored return (see
        // `upsert_outcome`), runs without one last, then newest first.
        let (return_column, order) = match query.order {
            HistoryOrder::Newest => ("", "created_at desc, id desc"),
            HistoryOrder::ReturnDesc => (RETURN_LONG, "return_long desc nulls last, created_at desc, id desc"),
            HistoryOrder::ReturnAsc => (RETURN_LONG, "return_long asc nulls last, created_at desc, id desc"),
        };
        // Each table gives its own first rows, in that order, before the two are merged:
        // PostgreSQL does not carry the order of the union into its branches, and would
        // otherwise read (and take the JSON apart of) every match to sort them.
        let first = u64::from(limit) + if query.cursor.is_some() { 0 } else { offset };
        let sql = format!(
            "select * from (select {columns}, cast(0 as bigint) as archived{return_column} from trading_agent_jobs j
                            where {page} order by {order} limit {first}) live
             union all
             select * from (select {columns}, cast(1 as bigint) as archived{return_column}
                            from trading_agent_jobs_archive j where {page} order by {order} limit {first}) archived
             order by {order} limit {limit}{skip}"
        );
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
            i64,
            Option<String>,
            Option<f64>,
            f64,
            i64,
            Option<i64>,
            Option<i64>,
            i64,
        );
        // A sort key past these columns is selected only to order by.
        let rows: Vec<Row> = on_reader!(self, |pool| {
            bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), &params)
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        });
        let rows = rows
            .into_iter()
            .map(|r| {
                let run_id = r.1.parse().map_err(|e: domain::IdError| crate::Error::Internal(e.0))?;
                Ok(HistoryRow {
                    id: r.0,
                    run_id,
                    symbol: r.2,
                    model_id: r.3,
                    analysts: r.4,
                    depth: r.5,
                    as_of: r.6,
                    status: r.7,
                    progress: r.8,
                    rating: r.9,
                    confidence: r.10,
                    cost_usd: r.11,
                    created_at: r.12,
                    started_at: r.13,
                    completed_at: r.14,
                    archived: r.15 != 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((rows, total))
    }

    /// The tags of each of `runs` that `owner` put on them, in the order given.
    pub async fn tags_of(&self, owner: &str, runs: &[RunId]) -> Result<Vec<(RunId, String)>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "select run_id, tag from trading_agent_tags where user_id = $1 and run_id in ({})
             order by run_id, ordinal",
            markers(2, runs.len())
        );
        let rows: Vec<(String, String)> = on_reader!(self, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(owner);
            for r in runs {
                q = q.bind(r.to_string());
            }
            q.fetch_all(pool).await.map_err(StoreError::from)?
        });
        rows.into_iter()
            .map(|(run, tag)| Ok((run.parse().map_err(|e: domain::IdError| crate::Error::Internal(e.0))?, tag)))
            .collect()
    }

    /// Replaces the tags `owner` put on a run.
    pub async fn set_tags(&self, owner: &str, run_id: RunId, tags: &[String]) -> Result<()> {
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            sqlx::query("delete from trading_agent_tags where run_id = $1")
                .bind(run_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            for (i, tag) in tags.iter().enumerate() {
                sqlx::query("insert into trading_agent_tags (run_id, user_id, tag, ordinal) values ($1, $2, $3, $4)")
                    .bind(run_id.to_string())
                    .bind(owner)
                    .bind(tag)
                    .bind(i as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
            }
            tx.commit().await.map_err(StoreError::from)?;
        });
        Ok(())
    }

    /// Keeps how `owner`'s run turned out (replacing what was kept): its `horizons`, and the
    /// longest one's return and call for the history's filter and order.
    pub async fn upsert_outcome(
        &self,
        owner: &str,
        run_id: RunId,
        horizons: &[HorizonOutcome],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let longest = horizons.last();
        let settled = !horizons.is_empty() && horizons.iter().all(|h| h.stock_return.is_some());
        let json = serde_json::to_string(horizons).expect("plain data");
        on_writer!(self, |pool| {
            sqlx::query(
                "insert into trading_agent_outcomes (run_id, user_id, horizons, return_long, right_long, settled, checked_at)
                 values ($1, $2, $3, $4, $5, $6, $7)
                 on conflict (run_id) do update set horizons = excluded.horizons, return_long = excluded.return_long,
                     right_long = excluded.right_long, settled = excluded.settled, checked_at = excluded.checked_at",
            )
            .bind(run_id.to_string())
            .bind(owner)
            .bind(&json)
            .bind(longest.and_then(|h| h.stock_return))
            .bind(longest.and_then(|h| h.right).map(i64::from))
            .bind(i64::from(settled))
            .bind(at.timestamp_millis())
            .execute(pool)
            .await
            .map_err(StoreError::from)?;
        });
        Ok(())
    }

    /// Up to `limit` of `owner`'s completed runs (newest first) of which nothing is kept of how
    /// they turned out: id, symbol, as-of day and rating.
    pub async fn unjudged_runs(&self, owner: &str, limit: u32) -> Result<Vec<(RunId, String, String, String)>> {
        let part = |table: &str| {
            format!(
                "select cast(run_id as text) as run_id, symbol, cast(result ->> 'asOf' as text) as as_of,
                        cast(result ->> 'rating' as text) as rating, created_at
                 from {table} where user_id = $1 and {IN_HISTORY} and status = 'completed'
                 and cast(run_id as text) not in (select o.run_id from trading_agent_outcomes o where o.user_id = $1)"
            )
        };
        let sql = format!(
            "select run_id, symbol, as_of, rating from ({} union all {}) u order by created_at desc limit {limit}",
            part("trading_agent_jobs"),
            part("trading_agent_jobs_archive")
        );
        let rows: Vec<(String, String, Option<String>, Option<String>)> = on_reader!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(owner).fetch_all(pool).await.map_err(StoreError::from)?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(id, symbol, as_of, rating)| Some((id.parse().ok()?, symbol, as_of?, rating?)))
            .collect())
    }

    /// What is kept of how `owner`'s `runs` turned out: per run its horizons, whether every
    /// horizon is reached, and when it was computed.
    pub async fn outcomes_of(&self, owner: &str, runs: &[RunId]) -> Result<Vec<StoredOutcome>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "select run_id, horizons, settled, checked_at from trading_agent_outcomes where user_id = $1 and run_id in ({})",
            markers(2, runs.len())
        );
        let rows: Vec<(String, String, i64, i64)> = on_reader!(self, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(owner);
            for r in runs {
                q = q.bind(r.to_string());
            }
            q.fetch_all(pool).await.map_err(StoreError::from)?
        });
        rows.into_iter()
            .map(|(run, horizons, settled, checked)| {
                let internal = |e: String| crate::Error::Internal(format!("outcome of {run}: {e}"));
                Ok(StoredOutcome {
                    run_id: run.parse().map_err(|e: domain::IdError| internal(e.0))?,
                    horizons: serde_json::from_str(&horizons).map_err(|e| internal(e.to_string()))?,
                    settled: settled != 0,
                    checked_at: DateTime::from_timestamp_millis(checked).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Stores the next piece (`part`, from 0 per step) of the text a run's model wrote for `step`.
    pub async fn insert_text(
        &self,
        run_id: RunId,
        step: &str,
        part: u32,
        delta: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let sql = "insert into trading_agent_text (run_id, step, part, delta, created_at) values ($1, $2, $3, $4, $5)";
        on_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(run_id.to_string())
                .bind(step)
                .bind(i64::from(part))
                .bind(delta)
                .bind(at.timestamp_millis())
                .execute(pool)
                .await
                .map(drop)
                .map_err(StoreError::from)?
        });
        Ok(())
    }

    /// The pieces of a run's text stored after the piece `after` (an id; `None` for all), in
    /// the order they were written, at most `limit`.
    pub async fn text_after(&self, run_id: RunId, after: Option<i64>, limit: u32) -> Result<Vec<TextPiece>> {
        let sql = "select id, step, cast(part as bigint), delta, created_at from trading_agent_text
                   where run_id = $1 and id > $2 order by id limit $3";
        let rows: Vec<(i64, String, i64, String, i64)> = on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(run_id.to_string())
                .bind(after.unwrap_or(-1))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        });
        rows.into_iter()
            .map(|(id, step, part, delta, at)| {
                Ok(TextPiece { id, step, part: part.max(0) as u32, delta, at: time(at)? })
            })
            .collect()
    }

    /// How many pieces of text each step of a run has stored.
    pub async fn text_parts(&self, run_id: RunId) -> Result<Vec<(String, u32)>> {
        let sql = "select step, count(*) from trading_agent_text where run_id = $1 group by step";
        let rows: Vec<(String, i64)> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(run_id.to_string()).fetch_all(pool).await.map_err(StoreError::from)?
        });
        Ok(rows.into_iter().map(|(step, n)| (step, n.max(0) as u32)).collect())
    }

    /// Adds an event to a run's log. The log is a record, not the run: an entry that cannot be
    /// written is traced and dropped.
    pub async fn append_log(&self, run_id: RunId, entry: &LogEntry) {
        if let Err(e) = self.insert_log(run_id, entry).await {
            tracing::warn!(runId = %run_id, error = %e, kind = entry.event.kind(), "could not write the run's log");
        }
    }

    async fn insert_log(&self, run_id: RunId, entry: &LogEntry) -> Result<()> {
        let sql = "insert into trading_agent_log
                     (run_id, created_at, kind, entry, model, first_output_ms, latency_ms, tokens_out)
                   values ($1, $2, $3, $4, $5, $6, $7, $8)";
        let (model, first, latency, tokens) = match &entry.event {
            LogEvent::Call { model, first_output_ms, latency_ms, tokens_out, .. } => (
                Some(model.as_str()),
                first_output_ms.map(|ms| ms as i64),
                Some(*latency_ms as i64),
                Some(*tokens_out as i64),
            ),
            _ => (None, None, None, None),
        };
        let json = serde_json::to_string(entry).expect("plain data");
        on_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(run_id.to_string())
                .bind(entry.at.timestamp_millis())
                .bind(entry.event.kind())
                .bind(&json)
                .bind(model)
                .bind(first)
                .bind(latency)
                .bind(tokens)
                .execute(pool)
                .await
                .map(drop)
                .map_err(StoreError::from)?
        });
        Ok(())
    }

    /// A run's log, in the order it was written; at most `limit` entries.
    pub async fn log_of(&self, run_id: RunId, limit: u32) -> Result<Vec<LogEntry>> {
        let sql = "select entry from trading_agent_log where run_id = $1 order by id limit $2";
        let rows: Vec<(String,)> = on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(run_id.to_string())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        });
        // An entry another version wrote and this one cannot read is left out.
        Ok(rows.into_iter().filter_map(|(json,)| serde_json::from_str(&json).ok()).collect())
    }

    /// Per model, the answered calls logged since `since`: how soon they began to write and
    /// how fast they wrote after that.
    pub async fn model_pace(&self, since: DateTime<Utc>) -> Result<Vec<ModelPace>> {
        let sql = "select model, count(*), cast(avg(first_output_ms) as double precision),
                          cast(sum(tokens_out) as bigint), cast(sum(latency_ms - first_output_ms) as bigint)
                   from trading_agent_log
                   where kind = 'call' and created_at >= $1 and first_output_ms is not null
                   group by model order by model";
        type Row = (Option<String>, i64, Option<f64>, Option<i64>, Option<i64>);
        let rows: Vec<Row> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(since.timestamp_millis()).fetch_all(pool).await.map_err(StoreError::from)?
        });
        Ok(rows
            .into_iter()
            .map(|(model, calls, first, tokens, writing_ms)| {
                let (tokens, writing_ms) = (tokens.unwrap_or(0).max(0) as u64, writing_ms.unwrap_or(0).max(0) as u64);
                ModelPace {
                    model: model.unwrap_or_default(),
                    calls: calls.max(0) as u64,
                    first_output_ms: first.unwrap_or(0.0),
                    tokens_per_sec: (writing_ms > 0 && tokens > 0)
                        .then(|| tokens as f64 / (writing_ms as f64 / 1000.0)),
                }
            })
            .collect())
    }
}

/// One stored piece of a run's text ([`Store::text_after`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TextPiece {
    /// Orders the pieces of a run as they were written.
    pub id: i64,
    pub step: String,
    /// The piece's place in its step's text, from 0.
    pub part: u32,
    pub delta: String,
    pub at: DateTime<Utc>,
}
