//! The SQL of the webhook outbox (see [`crate::webhooks`]).

use chrono::{DateTime, Utc};
use domain::RunId;
use domain::webhook::{Delivery, WebhookEvent};
use jobs::{Pools, StoreError};

use super::Store;
use crate::error::{Error, Result};

/// One event's delivery as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    /// `msg_…`: the `webhook-id` of every attempt.
    pub webhook_id: String,
    /// The run or batch it is about.
    pub subject: String,
    pub user_id: String,
    /// `start`, `completed`, or `step:<name>`.
    pub event: String,
    pub url: String,
    pub body: String,
    /// The schedule whose batch it is about, if any.
    pub schedule_id: Option<String>,
    pub attempts: u32,
    pub next_attempt_at: Option<i64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub created_at: i64,
}

const COLUMNS: &str = "webhook_id, subject, user_id, event, url, body, schedule_id, attempts, next_attempt_at, \
                       last_status, last_error, delivered_at, failed_at, created_at";

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
);

fn row(r: Row) -> DeliveryRow {
    DeliveryRow {
        webhook_id: r.0,
        subject: r.1,
        user_id: r.2,
        event: r.3,
        url: r.4,
        body: r.5,
        schedule_id: r.6,
        attempts: r.7.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: r.8,
        last_status: r.9.and_then(|s| u16::try_from(s).ok()),
        last_error: r.10,
        delivered_at: r.11,
        failed_at: r.12,
        created_at: r.13,
    }
}

impl Store {
    /// Records events' deliveries, each unless it is recorded already, in one transaction; how
    /// many were new.
    pub async fn record_deliveries(&self, rows: &[DeliveryRow]) -> Result<u32> {
        if rows.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "insert into trading_agent_webhook_deliveries ({COLUMNS})
             values ($1, $2, $3, $4, $5, $6, $7, 0, $8, null, null, null, null, $9)
             on conflict (subject, event) do nothing"
        );
        let done = on_writer!(self, |pool| {
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let mut done = 0;
            for d in rows {
                done += sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(&d.webhook_id)
                    .bind(&d.subject)
                    .bind(&d.user_id)
                    .bind(&d.event)
                    .bind(&d.url)
                    .bind(&d.body)
                    .bind(&d.schedule_id)
                    .bind(d.next_attempt_at)
                    .bind(d.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?
                    .rows_affected();
            }
            tx.commit().await.map_err(StoreError::from)?;
            done
        });
        Ok(done as u32)
    }

    /// The events already recorded of each of `subjects`: `(subject, event)`.
    pub async fn recorded_events(&self, subjects: &[String]) -> Result<std::collections::HashSet<(String, String)>> {
        let mut out = std::collections::HashSet::new();
        for chunk in subjects.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "select subject, event from trading_agent_webhook_deliveries where subject in ({})",
                marks.join(", ")
            );
            let rows: Vec<(String, String)> = on_reader!(self, |pool| {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for s in chunk {
                    q = q.bind(s);
                }
                q.fetch_all(pool).await.map_err(StoreError::from)?
            });
            out.extend(rows);
        }
        Ok(out)
    }

    /// Claims up to `limit` deliveries due at `now`: each counts an attempt and is not due
    /// again before `lease_until` (a process that dies while sending leaves it to another).
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>> {
        let lock = match self.pools {
            Pools::Sqlite { .. } => "",
            Pools::Postgres(_) => " for update skip locked",
        };
        let sql = format!(
            "update trading_agent_webhook_deliveries set attempts = attempts + 1, next_attempt_at = $2
             where webhook_id in (select webhook_id from trading_agent_webhook_deliveries
                                  where next_attempt_at <= $1 order by next_attempt_at limit {limit}{lock})
             returning {COLUMNS}"
        );
        let rows: Vec<Row> = on_writer!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(now.timestamp_millis())
                .bind(lease_until.timestamp_millis())
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        });
        Ok(rows.into_iter().map(row).collect())
    }

    /// The receiver took it.
    pub async fn delivery_done(&self, webhook_id: &str, status: u16, now: DateTime<Utc>) -> Result<()> {
        let sql = "update trading_agent_webhook_deliveries
                   set delivered_at = $2, last_status = $3, last_error = null, next_attempt_at = null
                   where webhook_id = $1";
        on_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(webhook_id)
                .bind(now.timestamp_millis())
                .bind(i64::from(status))
                .execute(pool)
                .await
                .map(drop)
                .map_err(StoreError::from)?
        });
        Ok(())
    }

    /// An attempt failed: tried again at `next`, or given up on (`None`).
    pub async fn delivery_failed(
        &self,
        webhook_id: &str,
        status: Option<u16>,
        why: &str,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let sql = "update trading_agent_webhook_deliveries
                   set last_status = $2, last_error = $3, next_attempt_at = $4, failed_at = $5
                   where webhook_id = $1 and delivered_at is null";
        let failed = next.is_none().then_some(now.timestamp_millis());
        on_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(webhook_id)
                .bind(status.map(i64::from))
                .bind(why)
                .bind(next.map(|n| n.timestamp_millis()))
                .bind(failed)
                .execute(pool)
                .await
                .map(drop)
                .map_err(StoreError::from)?
        });
        Ok(())
    }

    /// A schedule's webhook failed a day of retries with a delivery made at `made_at` (epoch
    /// ms): its batches go without it until it is set again. Unless the schedule was changed
    /// since that delivery was made: an owner who set the webhook again is not overruled by a
    /// delivery older than that.
    pub async fn disable_schedule_webhook(&self, schedule_id: &str, made_at: i64, now: DateTime<Utc>) -> Result<()> {
        let sql = "update trading_agent_schedules set webhook_disabled_at = $2
                   where schedule_id = $1 and webhook_disabled_at is null and updated_at <= $3";
        on_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(schedule_id)
                .bind(now.timestamp_millis())
                .bind(made_at)
                .execute(pool)
                .await
                .map(drop)
                .map_err(StoreError::from)?
        });
        Ok(())
    }

    /// `owner`'s deliveries about `subject`, oldest first.
    pub async fn deliveries_of(&self, owner: &str, subject: &str) -> Result<Vec<Delivery>> {
        let sql = format!(
            "select {COLUMNS} from trading_agent_webhook_deliveries where subject = $1 and user_id = $2
             order by created_at, webhook_id"
        );
        let rows: Vec<Row> = on_reader!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(subject)
                .bind(owner)
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        });
        let time = |ms: Option<i64>| ms.and_then(DateTime::from_timestamp_millis);
        rows.into_iter()
            .map(row)
            .map(|d| {
                let (event, step) = match d.event.split_once(':') {
                    Some((e, step)) => (e.to_string(), Some(step.to_string())),
                    None => (d.event.clone(), None),
                };
                Ok(Delivery {
                    webhook_id: d.webhook_id,
                    event: WebhookEvent::parse(&event)
                        .ok_or_else(|| Error::Internal(format!("a delivery of an unknown event: {event}")))?,
                    step,
                    url: d.url,
                    attempts: d.attempts,
                    last_status: d.last_status,
                    last_error: d.last_error,
                    delivered_at: time(d.delivered_at),
                    failed_at: time(d.failed_at),
                    next_attempt_at: time(d.next_attempt_at),
                    created_at: DateTime::from_timestamp_millis(d.created_at).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Runs with a webhook whose rows changed at or after `since`, with their owners.
    pub async fn runs_with_webhooks_since(&self, since: DateTime<Utc>) -> Result<Vec<(RunId, String)>> {
        self.with_webhooks_since("analysis", since)
            .await?
            .into_iter()
            .map(|(id, owner)| Ok((id.parse().map_err(|e: domain::IdError| Error::Internal(e.0))?, owner)))
            .collect()
    }

    /// Parents of `kind` (batches, backtests) with a webhook whose rows, or any of whose
    /// children's rows, changed at or after `since`, with their owners.
    pub async fn parents_with_webhooks_since(&self, kind: &str, since: DateTime<Utc>) -> Result<Vec<(String, String)>> {
        let sql = "select cast(p.job_id as text), p.owner from queue_jobs p
                   where p.kind = $2 and p.args ->> 'webhook' is not null
                     and (p.updated_at >= $1 or exists (select 1 from queue_jobs c
                                                      where c.parent_id = p.job_id and c.updated_at >= $1))";
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(since.timestamp_millis())
                .bind(kind)
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        }))
    }

    async fn with_webhooks_since(&self, kind: &str, since: DateTime<Utc>) -> Result<Vec<(String, String)>> {
        let sql = "select cast(job_id as text), owner from queue_jobs
                   where kind = $1 and args ->> 'webhook' is not null and updated_at >= $2";
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(kind)
                .bind(since.timestamp_millis())
                .fetch_all(pool)
                .await
                .map_err(StoreError::from)?
        }))
    }
}
