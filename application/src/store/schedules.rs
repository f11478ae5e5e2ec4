//! The SQL of schedules and the ticks they fired on (see [`crate::schedules`]).

use chrono::{DateTime, Utc};
use jobs::{Pools, StoreError};

use super::{Store, markers};
use crate::error::Result;

/// A schedule as stored: its request as JSON, its times as epoch milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    pub schedule_id: String,
    pub user_id: String,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    /// The batch request (JSON).
    pub request: String,
    pub paused: bool,
    /// None while paused.
    pub next_fire_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When its webhook was given up on, if it was.
    pub webhook_disabled_at: Option<i64>,
}

/// A tick as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FireRow {
    pub schedule_id: String,
    pub tick_at: i64,
    pub fired_at: i64,
    pub batch_id: String,
    pub missed: i64,
    /// Whether its batch was started (or refused for good).
    pub started: bool,
    pub error: Option<String>,
}

type Row = (String, String, String, String, String, String, i64, Option<i64>, i64, i64, Option<i64>);

const COLUMNS: &str = "schedule_id, user_id, name, cron, timezone, request, paused, next_fire_at, created_at, \
                       updated_at, webhook_disabled_at";

fn row(r: Row) -> ScheduleRow {
    ScheduleRow {
        schedule_id: r.0,
        user_id: r.1,
        name: r.2,
        cron: r.3,
        timezone: r.4,
        request: r.5,
        paused: r.6 != 0,
        next_fire_at: r.7,
        created_at: r.8,
        updated_at: r.9,
        webhook_disabled_at: r.10,
    }
}

type Fire = (String, i64, i64, String, i64, i64, Option<String>);

fn fire(r: Fire) -> FireRow {
    FireRow { schedule_id: r.0, tick_at: r.1, fired_at: r.2, batch_id: r.3, missed: r.4, started: r.5 != 0, error: r.6 }
}

impl Store {
    pub async fn insert_schedule(&self, s: &ScheduleRow) -> Result<()> {
        let sql = format!(
            "insert into trading_agent_schedules ({COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        on_writer!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&s.schedule_id)
                .bind(&s.user_id)
                .bind(&s.name)
                .bind(&s.cron)
                .bind(&s.timezone)
                .bind(&s.request)
                .bind(i64::from(s.paused))
                .bind(s.next_fire_at)
                .bind(s.created_at)
                .bind(s.updated_at)
                .bind(s.webhook_disabled_at)
                .execute(pool)
                .await
                .map(drop)
                .map_err(StoreError::from)?
        });
        Ok(())
    }

    /// Writes what a schedule is now; whether it was `owner`'s to write.
    pub async fn update_schedule(&self, s: &ScheduleRow) -> Result<bool> {
        let sql = "update trading_agent_schedules
                   set name = $3, cron = $4, timezone = $5, request = $6, paused = $7, next_fire_at = $8,
                       updated_at = $9, webhook_disabled_at = $10
                   where schedule_id = $1 and user_id = $2";
        let done = on_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(&s.schedule_id)
                .bind(&s.user_id)
                .bind(&s.name)
                .bind(&s.cron)
                .bind(&s.timezone)
                .bind(&s.request)
                .bind(i64::from(s.paused))
                .bind(s.next_fire_at)
                .bind(s.updated_at)
                .bind(s.webhook_disabled_at)
                .execute(pool)
                .await
                .map_err(StoreError::from)?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// Deletes one of `owner`'s schedules and the record of its ticks; whether there was one.
    pub async fn delete_schedule(&self, owner: &str, id: &str) -> Result<bool> {
        let done = on_writer!(self, |pool| {
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let done = sqlx::query("delete from trading_agent_schedules where schedule_id = $1 and user_id = $2")
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?
                .rows_affected();
            if done > 0 {
                sqlx::query("delete from trading_agent_schedule_fires where schedule_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            done
        });
        Ok(done > 0)
    }

    /// `owner`'s schedules, oldest first.
    pub async fn schedules_of(&self, owner: &str) -> Result<Vec<ScheduleRow>> {
        let sql = format!(
            "select {COLUMNS} from trading_agent_schedules where user_id = $1 order by created_at, schedule_id"
        );
        let rows: Vec<Row> = on_reader!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(owner).fetch_all(pool).await.map_err(StoreError::from)?
        });
        Ok(rows.into_iter().map(row).collect())
    }

    /// One of `owner`'s schedules.
    pub async fn schedule(&self, owner: &str, id: &str) -> Result<Option<ScheduleRow>> {
        let sql = format!("select {COLUMNS} from trading_agent_schedules where schedule_id = $1 and user_id = $2");
        let found: Option<Row> = on_reader!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(owner)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::from)?
        });
        Ok(found.map(row))
    }

    /// Everyone's schedules whose next tick is at or before `now`, earliest first.
    pub async fn due_schedules(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<ScheduleRow>> {
        let sql = format!(
            "select {COLUMNS} from trading_agent_schedules where next_fire_at <= $1 order by next_fire_at limit {limit}"
        );
        let rows: Vec<Row> = on_writer!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(now.timestamp_millis())
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        });
        Ok(rows.into_iter().map(row).collect())
    }

    /// Takes a tick: moves the schedule's next tick from `due` to `next` and records `fire`, in
    /// one transaction — only if its next tick is still `due`, so of several processes that
    /// found it due, one takes it. Whether this one did.
    pub async fn take_tick(&self, due: i64, next: i64, f: &FireRow) -> Result<bool> {
        let taken = on_writer!(self, |pool| {
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let moved = sqlx::query(
                "update trading_agent_schedules set next_fire_at = $1 where schedule_id = $2 and next_fire_at = $3",
            )
            .bind(next)
            .bind(&f.schedule_id)
            .bind(due)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .rows_affected();
            if moved == 1 {
                sqlx::query(
                    "insert into trading_agent_schedule_fires
                         (schedule_id, tick_at, fired_at, batch_id, missed, started, error)
                     values ($1, $2, $3, $4, $5, 0, null)",
                )
                .bind(&f.schedule_id)
                .bind(f.tick_at)
                .bind(f.fired_at)
                .bind(&f.batch_id)
                .bind(f.missed)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            moved == 1
        });
        Ok(taken)
    }

    /// A tick's batch was started, or refused for good (`error`).
    pub async fn fire_started(&self, schedule_id: &str, tick_at: i64, error: Option<&str>) -> Result<()> {
        let sql =
            "update trading_agent_schedule_fires set started = 1, error = $3 where schedule_id = $1 and tick_at = $2";
        on_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(schedule_id)
                .bind(tick_at)
                .bind(error)
                .execute(pool)
                .await
                .map(drop)
                .map_err(StoreError::from)?
        });
        Ok(())
    }

    /// Ticks taken since `since` whose batch was not started yet (the process that took them
    /// stopped, or the database failed it), with their schedules.
    pub async fn unstarted_fires(&self, since: DateTime<Utc>) -> Result<Vec<(ScheduleRow, FireRow)>> {
        let sql = "select f.schedule_id, f.tick_at, f.fired_at, f.batch_id, f.missed, f.started, f.error
                   from trading_agent_schedule_fires f
                   where f.started = 0 and f.fired_at >= $1 order by f.fired_at limit 100";
        let fires: Vec<Fire> = on_writer!(self, |pool| {
            sqlx::query_as(sql).bind(since.timestamp_millis()).fetch_all(pool).await.map_err(StoreError::from)?
        });
        let mut ids: Vec<&str> = fires.iter().map(|f| f.0.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql =
            format!("select {COLUMNS} from trading_agent_schedules where schedule_id in ({})", markers(1, ids.len()));
        let schedules: Vec<Row> = on_writer!(self, |pool| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in &ids {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await.map_err(StoreError::from)?
        });
        let schedules: Vec<ScheduleRow> = schedules.into_iter().map(row).collect();
        Ok(fires
            .into_iter()
            .map(fire)
            .filter_map(|f| Some((schedules.iter().find(|s| s.schedule_id == f.schedule_id)?.clone(), f)))
            .collect())
    }

    /// The latest `per` ticks of each of `schedules`, newest first.
    pub async fn fires_of(&self, schedules: &[String], per: u32) -> Result<Vec<FireRow>> {
        if schedules.is_empty() {
            return Ok(Vec::new());
        }
        let ids = markers(1, schedules.len());
        let sql = format!(
            "select schedule_id, tick_at, fired_at, batch_id, missed, started, error from (
                 select *, row_number() over (partition by schedule_id order by tick_at desc) as nth
                 from trading_agent_schedule_fires where schedule_id in ({ids})) latest
             where nth <= {per} order by schedule_id, tick_at desc"
        );
        let rows: Vec<Fire> = on_reader!(self, |pool| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in schedules {
                query = query.bind(id);
            }
            query.fetch_all(pool).await.map_err(StoreError::from)?
        });
        Ok(rows.into_iter().map(fire).collect())
    }
}
