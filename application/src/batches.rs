//! Batches: one request, one ordinary run per symbol, started together.
//!
//! A batch is a parent job of kind [`KIND`] whose args are the request; its runs are its
//! children on the same queue, stored with it in one transaction (all or none), each carrying
//! the batch's id in its args. The parent's `child_limit` is the owner's limit of active runs,
//! which the queue's claim enforces: at most that many of the owner's child runs run at once,
//! the rest wait their turn in the order of the symbols — queued, not refused. Unlike a
//! backtest's cells, a batch's runs are runs like any other: in the history, with their own
//! pages, retried and rerun one by one. When the last has ended, the batch's own job runs and
//! completes it; cancelling it cancels the runs not yet ended.

use std::sync::Arc;

use domain::batch::{BatchRequest, BatchRun, BatchStarted, BatchStatus, BatchSummary, BatchTotals, BatchView};
use domain::webhook::Webhook;
use domain::{BatchId, FieldError, JobStatus};
use jobs::{Insert, InsertOutcome, JobId, NewJob, State};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::run::{RunArgs, RunProgress, run_id};
use crate::runs::{RunService, to_json};

/// The job kind of a batch.
pub const KIND: &str = "batch";
/// Batches listed at most.
const LIST_LIMIT: u32 = 100;

/// A batch's args on the queue: the request, its symbols each once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchArgs {
    #[serde(flatten)]
    request: BatchRequest,
    /// Where its events are sent, checked (the request's `webhook` fields are not kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook: Option<Webhook>,
    /// The schedule whose tick started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule_id: Option<String>,
}

fn job_id(id: BatchId) -> JobId {
    JobId(id.as_uuid())
}

pub struct Batches {
    runs: Arc<RunService>,
}

impl Batches {
    pub fn new(runs: Arc<RunService>) -> Self {
        Self { runs }
    }

    /// Checks a request as each of its runs would be checked, every problem at once: a
    /// symbol's own as `symbols` with the symbol named, a setting's once.
    pub(crate) fn validate(&self, request: &BatchRequest) -> Result<(Vec<String>, Vec<domain::ValidStart>)> {
        let mut errors: Vec<FieldError> = Vec::new();
        let mut push = |e: FieldError| {
            if !errors.contains(&e) {
                errors.push(e);
            }
        };
        let symbols = request.symbols().map_err(&mut push).unwrap_or_default();
        let mut starts = Vec::with_capacity(symbols.len());
        let config = self.runs.config();
        for symbol in &symbols {
            let checked = request
                .run_of(symbol)
                .validate(&config.default_model)
                .and_then(|start| self.runs.checks.check(&start).map(|()| start));
            match checked {
                Ok(mut start) => {
                    self.runs.settle_options(&mut start);
                    starts.push(start);
                }
                Err(es) => {
                    for e in es {
                        if e.field == "symbol" {
                            push(FieldError::new("symbols", format!("{symbol}: {}", e.message)));
                        } else {
                            push(e);
                        }
                    }
                }
            }
        }
        if errors.is_empty() { Ok((symbols, starts)) } else { Err(Error::Invalid(errors)) }
    }

    /// The problems of a request's webhook, if any.
    pub(crate) async fn check_webhook(&self, request: &BatchRequest) -> std::result::Result<(), Vec<FieldError>> {
        self.runs.webhooks().check(request.webhook.as_deref(), request.webhook_events.as_deref()).await.map(drop)
    }

    /// Validates a request and queues the batch with all its runs.
    pub async fn start(&self, user_id: &str, request: &BatchRequest) -> Result<BatchStarted> {
        self.start_as(user_id, request, BatchId::from_uuid(uuid::Uuid::new_v4()), None, None).await
    }

    /// Starts the batch `batch_id` once: with `key`, a second start with the same key (another
    /// process's, or a retry's) answers the batch the first one stored.
    pub(crate) async fn start_as(
        &self,
        user_id: &str,
        request: &BatchRequest,
        batch_id: BatchId,
        key: Option<String>,
        schedule_id: Option<String>,
    ) -> Result<BatchStarted> {
        let checked = self.validate(request);
        let webhook = self.runs.webhooks().check(request.webhook.as_deref(), request.webhook_events.as_deref()).await;
        let ((symbols, starts), webhook) = match (checked, webhook) {
            (Ok(valid), Ok(webhook)) => (valid, webhook),
            (checked, webhook) => {
                let mut errors = match checked {
                    Err(Error::Invalid(e)) => e,
                    Err(e) => return Err(e),
                    Ok(_) => Vec::new(),
                };
                errors.extend(webhook.err().unwrap_or_default());
                return Err(Error::Invalid(errors));
            }
        };
        self.runs.check_daily_budget(user_id).await?;
        let queued = self.runs.queued_interactive().await?;
        if queued + starts.len() as u64 > u64::from(self.runs.config().max_queued) {
            return Err(Error::QueueFull { queued });
        }
        let config = self.runs.config();
        let children: Vec<NewJob> = starts
            .into_iter()
            .map(|start| NewJob {
                max_attempts: config.max_attempts,
                timeout_ms: config.job_timeout.as_millis() as u64,
                progress: to_json(&RunProgress::new(&start)),
                ..NewJob::new(
                    crate::run::KIND,
                    user_id,
                    to_json(&RunArgs {
                        start,
                        retry_of: None,
                        rerun_of: None,
                        batch_id: Some(batch_id),
                        webhook: None,
                    }),
                )
            })
            .collect();
        let runs = children.iter().map(|c| run_id(c.job_id)).collect();
        let stored = BatchRequest { symbols, webhook: None, webhook_events: None, ..request.clone() };
        let args = BatchArgs { request: stored, webhook, schedule_id };
        let parent = NewJob {
            job_id: job_id(batch_id),
            child_limit: Some(config.max_active_per_user),
            idempotency_key: key,
            ..NewJob::new(KIND, user_id, to_json(&args))
        };
        match self.runs.queue().insert(&Insert { job: parent, children, owner_limit: None }).await? {
            InsertOutcome::Created(_) => {
                for _ in &args.request.symbols {
                    crate::telemetry::run_started(false);
                }
                self.runs.notify_available().await;
                Ok(BatchStarted { batch_id, runs })
            }
            // Started before: its runs are the ones stored then.
            InsertOutcome::Existing(job) | InsertOutcome::IdempotencyConflict(job) => {
                let batch_id = BatchId::from_uuid(job.job_id.0);
                let runs = self.view(user_id, batch_id).await?.runs.iter().map(|r| r.run_id).collect();
                Ok(BatchStarted { batch_id, runs })
            }
            InsertOutcome::LimitReached { .. } => Err(Error::Internal("a batch has no limit to reach".into())),
        }
    }

    /// The batch's job, if it is `user_id`'s.
    async fn owned(&self, user_id: &str, batch_id: BatchId) -> Result<(jobs::Job, BatchArgs)> {
        self.runs.owned_parent(KIND, user_id, job_id(batch_id)).await
    }

    /// A batch of `user_id`'s: each run as it is now, and the totals.
    pub async fn view(&self, user_id: &str, batch_id: BatchId) -> Result<BatchView> {
        let (batch, BatchArgs { request, .. }) = self.owned(user_id, batch_id).await?;
        let runs: Vec<BatchRun> = self
            .runs
            .children(batch.job_id)
            .await?
            .into_iter()
            .map(|run| {
                let result = run.result.as_ref().filter(|_| run.status == JobStatus::Completed);
                Ok(BatchRun {
                    run_id: run.run_id,
                    symbol: run.start.symbol.to_string(),
                    status: run.status,
                    percent: run.progress.percent,
                    current_step: run.progress.current_step.clone(),
                    rating: result.map(|r| r.rating),
                    confidence: result.map(|r| r.confidence),
                    cost_usd: run.progress.usage.cost_usd,
                })
            })
            .collect::<Result<_>>()?;
        let totals = BatchTotals::of(&runs);
        let status = match (batch.state == State::Cancelled, totals.pending + totals.running) {
            (_, n) if n > 0 => BatchStatus::Running,
            (true, _) => BatchStatus::Cancelled,
            (false, _) => BatchStatus::Completed,
        };
        Ok(BatchView { batch_id, status, request, created_at: batch.created_at, runs, totals })
    }

    /// A batch of `user_id`'s, its webhook and the schedule that started it.
    pub(crate) async fn with_webhook(
        &self,
        user_id: &str,
        batch_id: BatchId,
    ) -> Result<(BatchView, Option<Webhook>, Option<String>)> {
        let (_, args) = self.owned(user_id, batch_id).await?;
        Ok((self.view(user_id, batch_id).await?, args.webhook, args.schedule_id))
    }

    /// Cancels a batch: no further run of it starts, pending runs end `cancelled` and running
    /// ones are asked to stop.
    pub async fn cancel(&self, user_id: &str, batch_id: BatchId) -> Result<BatchView> {
        let (job, _) = self.owned(user_id, batch_id).await?;
        self.runs.cancel_family(job.job_id).await?;
        self.view(user_id, batch_id).await
    }

    /// `user_id`'s batches, newest first.
    pub async fn list(&self, user_id: &str) -> Result<Vec<BatchSummary>> {
        let parents = self.runs.parents::<BatchArgs>(KIND, user_id, LIST_LIMIT).await?;
        Ok(parents
            .into_iter()
            .map(|(job, args)| BatchSummary {
                batch_id: BatchId::from_uuid(job.job_id.0),
                symbols: args.request.symbols,
                cancelled: job.state == State::Cancelled,
                created_at: job.created_at,
            })
            .collect())
    }
}
