//! Signed webhooks: a run, a batch or a backtest may name an https URL to be told of its events, sent as
//! Standard Webhooks deliveries (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,`
//! base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under `WEBHOOK_SECRET`).
//!
//! The outbox: an event is a change of a job's row — a run claimed (start), a step finished
//! (step), an end (completed) — committed by the queue like any other. The [`Dispatcher`]
//! reads the rows of runs and batches with a webhook that changed lately and records each
//! event they show in `trading_agent_webhook_deliveries`, once (`(subject, event)` is unique),
//! with its `webhook-id` and body fixed; so an event is never lost (its row is durable before
//! anything is sent) nor recorded twice (however many processes read it). Deliveries are
//! claimed with a lease, sent with a 10 s timeout and no redirects, and retried on any answer
//! but a 2xx for more than a day (5 s, 30 s, 5 min, 30 min, 2 h, 5 h, then every 10 h), always
//! with the same id and body: a receiver that keeps the ids it has seen sees each event once.
//!
//! Where a URL may lead: never to a loopback, private, link-local or otherwise non-public
//! address (unless `WEBHOOK_ALLOW_PRIVATE`), checked when the webhook is given and again at
//! every delivery by the resolver the client connects through, so a name that resolves
//! elsewhere later (DNS rebinding) is refused too ([`policy`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::webhook::{Delivery, WebhookEvent};
use domain::{BacktestId, BatchId, RunId};
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::backtests::Backtests;
use crate::batches::Batches;
use crate::error::{Error, Result};
use crate::run::Run;
use crate::runs::RunService;
use crate::store::{DeliveryRow, Store};

pub mod policy;
pub use policy::{FIRST_RETRY_DEFAULT, TIMEOUT_DEFAULT, WebhookConfig, WebhookPolicy, is_public, sign};

/// How often the dispatcher looks for events and deliveries due.
pub const PASS_EVERY: Duration = Duration::from_millis(250);
/// Deliveries sent at once by one process.
const CLAIM_AT_ONCE: u32 = 64;
/// Runs read at once while their events are recorded.
const READS_AT_ONCE: usize = 8;

/// Records events into the outbox and sends what is due.
pub struct Dispatcher {
    store: Store,
    runs: Arc<RunService>,
    batches: Arc<Batches>,
    backtests: Arc<Backtests>,
    clock: Arc<dyn jobs::Clock>,
    /// Rows changed since this are read again (a margin before the last pass).
    since: std::sync::Mutex<DateTime<Utc>>,
}

/// Rows changed this long before the last pass are read again: the writers' clocks may differ.
const SCAN_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

impl Dispatcher {
    pub fn new(
        runs: Arc<RunService>,
        batches: Arc<Batches>,
        backtests: Arc<Backtests>,
        clock: Arc<dyn jobs::Clock>,
    ) -> Self {
        // Once started, a process looks a day back: retries last that long.
        let since = clock.now() - chrono::TimeDelta::days(1);
        Self { store: runs.store().clone(), runs, batches, backtests, clock, since: std::sync::Mutex::new(since) }
    }

    fn policy(&self) -> &WebhookPolicy {
        self.runs.webhooks()
    }

    /// Records the events of runs and batches that changed lately; how many were new. A row is
    /// read again for a few seconds after it changed, so what it shows is checked against what
    /// is recorded first, and only an event not yet recorded costs its body.
    pub async fn record(&self) -> Result<u32> {
        let now = self.clock.now();
        let since = *self.since.lock().expect("not poisoned");
        let runs = self.store.runs_with_webhooks_since(since).await?;
        let subjects: Vec<String> = runs.iter().map(|(id, _)| id.to_string()).collect();
        let recorded_before = self.store.recorded_events(&subjects).await?;
        // The runs are read a few at a time, and their new events stored in one transaction.
        let recorded_before = &recorded_before;
        let reads: Vec<_> = runs
            .into_iter()
            .map(|(run_id, owner)| {
                Box::pin(async move { self.run_deliveries(run_id, &owner, recorded_before, now).await })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<DeliveryRow>>> + Send + '_>>
            })
            .collect();
        let mut rows = Vec::new();
        let mut reads = futures::stream::iter(reads).buffer_unordered(READS_AT_ONCE);
        while let Some(found) = reads.next().await {
            rows.extend(found?);
        }
        let mut recorded = self.store.record_deliveries(&rows).await?;
        for (id, owner) in self.store.parents_with_webhooks_since(crate::batches::KIND, since).await? {
            recorded += self.store.record_deliveries(&self.batch_deliveries(&id, &owner, now).await?).await?;
        }
        for (id, owner) in self.store.parents_with_webhooks_since(crate::backtests::KIND, since).await? {
            recorded += self.store.record_deliveries(&self.backtest_deliveries(&id, &owner, now).await?).await?;
        }
        *self.since.lock().expect("not poisoned") = now - SCAN_MARGIN;
        Ok(recorded)
    }

    /// The deliveries of the events a run's row shows that are not recorded yet.
    async fn run_deliveries(
        &self,
        run_id: RunId,
        owner: &str,
        recorded_before: &std::collections::HashSet<(String, String)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryRow>> {
        let run = match self.runs.owned(owner, run_id).await {
            Ok(run) => run,
            Err(Error::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let Some(webhook) = run.webhook.clone() else { return Ok(Vec::new()) };
        let subject = run_id.to_string();
        let key = |event: WebhookEvent, step: &Option<String>| match step {
            Some(step) => format!("step:{step}"),
            None => event.as_str().to_string(),
        };
        let due: Vec<(WebhookEvent, Option<String>)> = run_events(&run, &webhook.events)
            .into_iter()
            .filter(|(event, step)| !recorded_before.contains(&(subject.clone(), key(*event, step))))
            .collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let progress =
            serde_json::to_value(self.runs.to_progress(run).await).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(due
            .into_iter()
            .map(|(event, step)| {
                let mut body = serde_json::json!({
                    "type": format!("run.{}", event.as_str()),
                    "timestamp": now,
                    "data": progress,
                });
                if let Some(step) = &step {
                    body["step"] = step.clone().into();
                }
                new_delivery(&subject, owner, &key(event, &step), &webhook.url, &body, None, now)
            })
            .collect())
    }

    /// The deliveries of the events a batch shows (recorded ones are left as they are).
    async fn batch_deliveries(&self, id: &str, owner: &str, now: DateTime<Utc>) -> Result<Vec<DeliveryRow>> {
        let batch_id: BatchId = id.parse().map_err(|e: domain::IdError| Error::Internal(e.0))?;
        let (view, webhook, schedule) = match self.batches.with_webhook(owner, batch_id).await {
            Ok(found) => found,
            Err(Error::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let ended = view.runs.iter().filter(|r| r.status.is_terminal()).map(|r| r.run_id).collect();
        let parent =
            Parent { kind: "batch", id, owner, running: view.status == domain::batch::BatchStatus::Running, ended };
        parent_deliveries(&parent, webhook, &view, schedule.as_deref(), now)
    }

    /// The deliveries of the events a backtest shows.
    async fn backtest_deliveries(&self, id: &str, owner: &str, now: DateTime<Utc>) -> Result<Vec<DeliveryRow>> {
        let backtest_id: BacktestId = id.parse().map_err(|e: domain::IdError| Error::Internal(e.0))?;
        let (view, webhook) = match self.backtests.with_webhook(owner, backtest_id).await {
            Ok(found) => found,
            Err(Error::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let ended = view.cells.iter().filter(|c| c.status.is_terminal()).map(|c| c.run_id).collect();
        let running = view.status == domain::backtest::BacktestStatus::Running;
        let parent = Parent { kind: "backtest", id, owner, running, ended };
        parent_deliveries(&parent, webhook, &view, None, now)
    }

    /// Sends the deliveries due, [`CLAIM_AT_ONCE`] at a time until fewer are due; how many
    /// arrived.
    pub async fn deliver(&self) -> Result<u32> {
        let mut delivered = 0;
        loop {
            let (claimed, arrived) = self.deliver_some().await?;
            delivered += arrived;
            if claimed < CLAIM_AT_ONCE as usize {
                return Ok(delivered);
            }
        }
    }

    /// Claims and sends one round of deliveries: how many were claimed, and how many arrived.
    async fn deliver_some(&self) -> Result<(usize, u32)> {
        let policy = self.policy();
        let Some(key) = policy.config.secret.clone() else { return Ok((0, 0)) };
        let now = self.clock.now();
        // A delivery in flight is not claimed again before its timeout has surely passed.
        let lease = chrono::TimeDelta::from_std(policy.config.timeout * 3).unwrap_or(chrono::TimeDelta::seconds(30));
        let claimed = self.store.claim_deliveries(now, now + lease, CLAIM_AT_ONCE).await?;
        let count = claimed.len();
        let sends = claimed.into_iter().map(|d| {
            let key = key.clone();
            async move {
                let outcome = self.send(&key, &d).await;
                (d, outcome)
            }
        });
        let mut delivered = 0;
        for (d, outcome) in futures::future::join_all(sends).await {
            let now = self.clock.now();
            match outcome {
                Ok(status) => {
                    delivered += 1;
                    self.store.delivery_done(&d.webhook_id, status, now).await?;
                }
                Err((status, why)) => match policy.backoff(d.attempts) {
                    Some(wait) => {
                        let next = now + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::hours(10));
                        self.store.delivery_failed(&d.webhook_id, status, &why, Some(next), now).await?;
                    }
                    None => {
                        tracing::warn!(webhookId = %d.webhook_id, url = %d.url, error = %why, "webhook given up after its retries");
                        self.store.delivery_failed(&d.webhook_id, status, &why, None, now).await?;
                        if let Some(schedule) = &d.schedule_id {
                            self.store.disable_schedule_webhook(schedule, d.created_at, now).await?;
                        }
                    }
                },
            }
        }
        Ok((count, delivered))
    }

    /// One attempt: the receiver's status if it was a 2xx, else its status (if it answered)
    /// and why it failed.
    async fn send(&self, key: &[u8], d: &DeliveryRow) -> std::result::Result<u16, (Option<u16>, String)> {
        let policy = self.policy();
        if !policy.config.allow_private {
            // An address in the URL itself is not resolved, so it is checked here.
            if let Some(host) = url::Url::parse(&d.url).ok().and_then(|u| u.host_str().map(String::from))
                && let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
                && !is_public(ip)
            {
                return Err((None, format!("{ip} is not a public address")));
            }
        }
        let timestamp = self.clock.now().timestamp();
        let resp = policy
            .client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sign(key, &d.webhook_id, timestamp, &d.body))
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| (None, error_chain(&e)))?;
        let status = resp.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err((Some(status.as_u16()), format!("the receiver answered {status}")))
        }
    }

    /// A run's deliveries, if it is `owner`'s.
    pub async fn deliveries(&self, owner: &str, run_id: RunId) -> Result<Vec<Delivery>> {
        self.runs.owned(owner, run_id).await?;
        self.store.deliveries_of(owner, &run_id.to_string()).await
    }

    /// Records and sends until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.record().await {
                tracing::warn!(error = %e, "recording webhook events failed; trying again");
            }
            if let Err(e) = self.deliver().await {
                tracing::warn!(error = %e, "sending webhooks failed; trying again");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(PASS_EVERY) => {}
            }
        }
    }
}

/// An error and its causes in one line (reqwest's own says little: "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A parent job — a batch or a backtest — as its events are read: whether it still runs, and
/// its children that have ended.
struct Parent<'a> {
    kind: &'static str,
    id: &'a str,
    owner: &'a str,
    running: bool,
    ended: Vec<RunId>,
}

/// The deliveries of the events a parent shows, of those its webhook wants: `start`, a `step`
/// per child ended (with its `runId`), `completed`; each with the parent's view as its data.
fn parent_deliveries(
    parent: &Parent<'_>,
    webhook: Option<domain::webhook::Webhook>,
    view: &impl serde::Serialize,
    schedule: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<DeliveryRow>> {
    let Some(webhook) = webhook else { return Ok(Vec::new()) };
    let wants = |e: WebhookEvent| webhook.events.contains(&e);
    let kind = parent.kind;
    let mut due: Vec<(String, String, Option<RunId>)> = Vec::new();
    if wants(WebhookEvent::Start) {
        due.push(("start".into(), format!("{kind}.start"), None));
    }
    if wants(WebhookEvent::Step) {
        for run in &parent.ended {
            due.push((format!("step:{run}"), format!("{kind}.step"), Some(*run)));
        }
    }
    if wants(WebhookEvent::Completed) && !parent.running {
        due.push(("completed".into(), format!("{kind}.completed"), None));
    }
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let data = serde_json::to_value(view).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(due
        .into_iter()
        .map(|(key, kind, run)| {
            let mut body = serde_json::json!({ "type": kind, "timestamp": now, "data": data });
            if let Some(run) = run {
                body["runId"] = run.to_string().into();
            }
            new_delivery(parent.id, parent.owner, &key, &webhook.url, &body, schedule, now)
        })
        .collect())
}

/// The events a run's row shows, of those wanted: `(event, step)`.
fn run_events(run: &Run, wanted: &[WebhookEvent]) -> Vec<(WebhookEvent, Option<String>)> {
    let mut due = Vec::new();
    if wanted.contains(&WebhookEvent::Start) && run.started_at.is_some() {
        due.push((WebhookEvent::Start, None));
    }
    if wanted.contains(&WebhookEvent::Step) {
        for s in run.progress.steps.iter().filter(|s| s.status == domain::StepStatus::Completed) {
            due.push((WebhookEvent::Step, Some(s.name.clone())));
        }
    }
    if wanted.contains(&WebhookEvent::Completed) && run.status.is_terminal() {
        due.push((WebhookEvent::Completed, None));
    }
    due
}

fn new_delivery(
    subject: &str,
    owner: &str,
    event: &str,
    url: &str,
    body: &serde_json::Value,
    schedule_id: Option<&str>,
    now: DateTime<Utc>,
) -> DeliveryRow {
    DeliveryRow {
        webhook_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        subject: subject.to_string(),
        user_id: owner.to_string(),
        event: event.to_string(),
        url: url.to_string(),
        body: body.to_string(),
        schedule_id: schedule_id.map(String::from),
        attempts: 0,
        next_attempt_at: Some(now.timestamp_millis()),
        last_status: None,
        last_error: None,
        delivered_at: None,
        failed_at: None,
        created_at: now.timestamp_millis(),
    }
}
