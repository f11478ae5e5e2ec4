//! [`RunService`]: starting, reading, cancelling, retrying and listing runs.
//!
//! The REST handlers and the Leptos server functions both call this and nothing else, so the
//! two front doors behave identically. Every method takes the caller's user id; a run of
//! another user is reported exactly like a run that does not exist.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::{
    Cursor, Depth, FieldError, HistoryOrder, JobStatus, LogEntry, LogEvent, ModelId, Progress, Rating, RunId, RunState,
    RunSummary, RunsPage, RunsQuery, StartRequest, ValidStart,
};
use jobs::job::{Count, Filter, Order};
use jobs::{Clock, Database, Event, Events, Insert, InsertOutcome, JobStore, NewJob, State};
use sha2::{Digest, Sha256};

use crate::budget::DailyBudget;
use crate::cache::{CachedProgress, ProgressCache};
use crate::checks::Checks;
use crate::error::{Error, Result};
use crate::eta::{self, StepDurations};
use crate::run::{KIND, Run, RunArgs, RunProgress, job_id, run_id};
use crate::store::{HistoryRow, Store};
use crate::telemetry;

pub const MAX_ACTIVE_PER_USER_DEFAULT: u32 = 3;
pub const MAX_ATTEMPTS_DEFAULT: u32 = 3;
pub const JOB_TIMEOUT_DEFAULT: Duration = Duration::from_secs(600);
pub const POLL_AFTER_DEFAULT: Duration = Duration::from_secs(2);
pub const MAX_QUEUED_DEFAULT: u32 = 1000;
pub use domain::history::{PER_PAGE_DEFAULT, PER_PAGE_MAX};
pub const STANDARD_ROUNDS_DEFAULT: u32 = 1;
/// More rounds than this would only burn money: each round is a model call per debater.
pub const MAX_ROUNDS: u32 = 10;
const IDEMPOTENCY_KEY_MAX: usize = 255;
/// How long medians of step durations are reused before the history is read again.
const ETA_CACHE_FOR: Duration = Duration::from_secs(30);
const ETA_HISTORY_RUNS: u32 = 20;

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Active (pending + running) runs one user may have at once.
    pub max_active_per_user: u32,
    /// Attempts a run gets before an expired lease fails it.
    pub max_attempts: u32,
    /// How long one attempt may run.
    pub job_timeout: Duration,
    /// The model used when a request names none.
    pub default_model: ModelId,
    /// The `Retry-After` hint for clients polling an active run.
    pub poll_after: Duration,
    /// Rounds of each debate in a `standard` run (`STANDARD_ROUNDS`).
    pub standard_rounds: u32,
    /// Rounds of each debate in a `deep` run (`DEEP_ROUNDS`).
    pub deep_rounds: u32,
    /// The budget of a run whose request names none (`MAX_COST_USD`, `MAX_TOKENS`).
    pub default_max_cost_usd: Option<f64>,
    pub default_max_tokens: Option<u64>,
    /// Interactive runs waiting for a worker, from everyone, past which new runs are refused
    /// (backtest cells wait under their own cap).
    pub max_queued: u32,
    /// What one user's runs may spend in a rolling 24 hours (`DAILY_TOKENS_PER_USER`,
    /// `DAILY_COST_USD_PER_USER`); off by default.
    pub daily_budget: DailyBudget,
    /// Signing and reach of webhooks.
    pub webhooks: crate::webhooks::policy::WebhookConfig,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            max_active_per_user: MAX_ACTIVE_PER_USER_DEFAULT,
            max_attempts: MAX_ATTEMPTS_DEFAULT,
            job_timeout: JOB_TIMEOUT_DEFAULT,
            default_model: ModelId::offline(),
            poll_after: POLL_AFTER_DEFAULT,
            standard_rounds: STANDARD_ROUNDS_DEFAULT,
            deep_rounds: domain::DEEP_ROUNDS_DEFAULT,
            default_max_cost_usd: None,
            default_max_tokens: None,
            max_queued: MAX_QUEUED_DEFAULT,
            daily_budget: DailyBudget::default(),
            webhooks: crate::webhooks::policy::WebhookConfig {
                timeout: crate::webhooks::policy::TIMEOUT_DEFAULT,
                first_retry: crate::webhooks::policy::FIRST_RETRY_DEFAULT,
                ..Default::default()
            },
        }
    }
}

impl ServiceConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_active_per_user == 0 {
            return Err("MAX_ACTIVE_JOBS_PER_USER must be at least 1".into());
        }
        if self.max_queued == 0 {
            return Err("MAX_QUEUED_RUNS must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return Err("max attempts must be at least 1".into());
        }
        if self.job_timeout < Duration::from_secs(1) {
            return Err("JOB_TIMEOUT_SECS must be at least 1".into());
        }
        if !(1..=MAX_ROUNDS).contains(&self.standard_rounds) || !(1..=MAX_ROUNDS).contains(&self.deep_rounds) {
            return Err(format!("STANDARD_ROUNDS and DEEP_ROUNDS must be between 1 and {MAX_ROUNDS}"));
        }
        if self.default_max_cost_usd.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
            return Err("MAX_COST_USD must be a positive number".into());
        }
        if self.default_max_tokens == Some(0) {
            return Err("MAX_TOKENS must be positive".into());
        }
        self.daily_budget.validate()
    }
}

/// A run as `start` or `retry` left it.
#[derive(Debug, Clone)]
pub struct Started {
    pub run_id: RunId,
    pub status: JobStatus,
    /// False when an idempotent repeat returned an earlier run.
    pub created: bool,
}

/// Who is asking: the id carried by the signed session cookie.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

pub struct RunService {
    queue: Arc<dyn JobStore>,
    store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    events: Events,
    pub(crate) checks: Arc<Checks>,
    config: ServiceConfig,
    eta_cache: Mutex<HashMap<String, (Instant, Arc<StepDurations>)>>,
    progress: ProgressCache,
    /// One read of a run's row at a time: callers that miss together wait for the first.
    loading: Mutex<HashMap<RunId, Arc<tokio::sync::Mutex<()>>>>,
    webhooks: crate::webhooks::policy::WebhookPolicy,
}

impl RunService {
    pub fn new(db: &Database, events: Events, checks: Arc<Checks>, config: ServiceConfig) -> Result<Self, String> {
        config.validate()?;
        let webhooks = crate::webhooks::policy::WebhookPolicy::new(config.webhooks.clone())?;
        let queue = db.queue().clone();
        let progress = ProgressCache::new(queue.feed().clone());
        Ok(Self {
            queue,
            store: Store::new(db.pools.clone()),
            clock: db.clock.clone(),
            events,
            checks,
            config,
            eta_cache: Mutex::new(HashMap::new()),
            progress,
            loading: Mutex::default(),
            webhooks,
        })
    }

    /// The application's own tables.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn queue(&self) -> &Arc<dyn JobStore> {
        &self.queue
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// How webhooks are checked and sent.
    pub fn webhooks(&self) -> &crate::webhooks::policy::WebhookPolicy {
        &self.webhooks
    }

    /// Validates a request and queues a run for `user_id`.
    pub async fn start(&self, user_id: &str, request: &StartRequest, idempotency_key: Option<&str>) -> Result<Started> {
        let key = idempotency_key.map(check_idempotency_key).transpose()?;
        // Every field's problem at once, the webhook's among them.
        let checked = request.validate(&self.config.default_model);
        let webhook = self.webhooks.check(request.webhook.as_deref(), request.webhook_events.as_deref()).await;
        let (mut start, webhook) = match (checked, webhook) {
            (Ok(start), Ok(webhook)) => (start, webhook),
            (checked, webhook) => {
                let mut errors = checked.err().unwrap_or_default();
                errors.extend(webhook.err().unwrap_or_default());
                return Err(Error::Invalid(errors));
            }
        };
        self.checks.check(&start).map_err(Error::Invalid)?;
        let hash = request_hash(&start);
        self.settle_options(&mut start);
        let args = RunArgs { start, retry_of: None, rerun_of: None, batch_id: None, webhook };
        self.insert(user_id, args, None, key, Some(hash)).await
    }

    /// Fixes what the server decides for a run when it is created: the rounds its depth means
    /// and the default budget. Stored with the run, so a resumed attempt does what the first did.
    pub(crate) fn settle_options(&self, start: &mut ValidStart) {
        let o = &mut start.options;
        o.rounds = match o.depth {
            domain::Depth::Quick => None,
            domain::Depth::Standard => Some(self.config.standard_rounds),
            domain::Depth::Deep => Some(self.config.deep_rounds),
        };
        if o.max_cost_usd.is_none() {
            o.max_cost_usd = self.config.default_max_cost_usd;
        }
        if o.max_tokens.is_none() {
            o.max_tokens = self.config.default_max_tokens;
        }
    }

    /// Queues a new run with the same request as a failed, timed-out or cancelled one.
    pub async fn retry(&self, user_id: &str, run_id: RunId) -> Result<Started> {
        let old = self.owned(user_id, run_id).await?;
        if !old.status.is_retryable() {
            return Err(Error::NotRetryable(old.status));
        }
        // The model may have become unavailable since (a key removed): say so now, not later.
        self.checks.check(&old.start).map_err(Error::Invalid)?;
        let args =
            RunArgs { start: old.start, retry_of: Some(run_id), rerun_of: None, batch_id: None, webhook: old.webhook };
        self.insert(user_id, args, None, None, None).await
    }

    /// Queues the run `args` describe: from its first step, or from `taken_over` — a progress
    /// document with steps already done and the checkpoints that did them.
    pub(crate) async fn insert(
        &self,
        user_id: &str,
        args: RunArgs,
        taken_over: Option<(RunProgress, BTreeMap<String, serde_json::Value>)>,
        idempotency_key: Option<String>,
        request_hash: Option<String>,
    ) -> Result<Started> {
        let retry_of = args.retry_of;
        let (progress, checkpoints) = taken_over.unwrap_or_else(|| (RunProgress::new(&args.start), BTreeMap::new()));
        let job = NewJob {
            max_attempts: self.config.max_attempts,
            timeout_ms: self.config.job_timeout.as_millis() as u64,
            idempotency_key,
            args_hash: request_hash,
            progress: to_json(&progress),
            checkpoints,
            ..NewJob::new(KIND, user_id, to_json(&args))
        };
        self.check_daily_budget(user_id).await?;
        // Backtest cells wait under their own cap and must not lock people out.
        let queued = self.queued_interactive().await?;
        if queued >= u64::from(self.config.max_queued) {
            return Err(Error::QueueFull { queued });
        }
        let insert = Insert { owner_limit: Some(self.config.max_active_per_user), ..Insert::one(job) };
        match self.queue.insert(&insert).await? {
            InsertOutcome::Created(job) => {
                telemetry::run_started(retry_of.is_some());
                self.notify_available().await;
                Ok(Started { run_id: run_id(job.job_id), status: JobStatus::Pending, created: true })
            }
            InsertOutcome::Existing(job) => {
                let run = Run::from_job(job)?;
                Ok(Started { run_id: run.run_id, status: run.status, created: false })
            }
            InsertOutcome::IdempotencyConflict(job) => Err(Error::IdempotencyConflict { run_id: run_id(job.job_id) }),
            InsertOutcome::LimitReached { .. } => Err(Error::TooManyActive {
                limit: self.config.max_active_per_user,
                retry_after: self.config.poll_after.max(Duration::from_secs(5)),
            }),
        }
    }

    /// Runs of everyone's waiting for a worker, backtest cells aside.
    pub(crate) async fn queued_interactive(&self) -> Result<u64> {
        let pending = Filter {
            kind: Some(KIND.into()),
            parent: Some(None),
            states: vec![State::Pending],
            count: true,
            ..Filter::default()
        };
        Ok(self.queue.list(&pending).await?.total.unwrap_or(0))
    }

    /// Refuses a new run when the user's runs already spent the daily budget.
    pub async fn check_daily_budget(&self, user_id: &str) -> Result<()> {
        let budget = self.config.daily_budget;
        if budget.is_off() {
            return Ok(());
        }
        let now = self.clock.now();
        let used = self.store.usage_since(user_id, now - crate::budget::WINDOW).await?;
        match budget.exhausted(&used) {
            Some(spent) => Err(Error::DailyBudget { spent, retry_after: DailyBudget::retry_after(&used, now) }),
            None => Ok(()),
        }
    }

    /// The run, if it exists and belongs to `user_id`; archived runs too, so an old link
    /// still shows its result.
    pub async fn owned(&self, user_id: &str, run_id: RunId) -> Result<Run> {
        match self.queue.get(job_id(run_id)).await? {
            Some(job) if job.owner == user_id && job.kind == KIND => Run::from_job(job),
            _ => Err(Error::NotFound),
        }
    }

    /// The progress body of a run, and its version (the ETag).
    pub async fn progress(&self, user_id: &str, run_id: RunId) -> Result<(Progress, i64)> {
        let run = self.owned(user_id, run_id).await?;
        let version = run.version;
        Ok((self.to_progress(run).await, version))
    }

    /// The progress body of a run as served to pollers: from memory when this process knows
    /// it is current (no database query), else read, serialised once, and remembered.
    pub async fn progress_body(&self, user_id: &str, run_id: RunId) -> Result<Arc<CachedProgress>> {
        let body = match self.progress.get(run_id) {
            Ok(body) => body,
            Err(_) => self.load_progress(run_id).await?,
        };
        if body.owner != user_id {
            return Err(Error::NotFound);
        }
        Ok(body)
    }

    /// Reads, serialises and caches a run's body after a miss. When a change wakes many
    /// readers of one run at once (its open streams, its pollers), the first reads the row
    /// and the others take what it cached.
    async fn load_progress(&self, run_id: RunId) -> Result<Arc<CachedProgress>> {
        let gate = self.loading.lock().expect("not poisoned").entry(run_id).or_default().clone();
        let loaded = {
            let _turn = gate.lock().await;
            match self.progress.get(run_id) {
                Ok(body) => Ok(body),
                Err(ticket) => self.read_progress(run_id, ticket).await,
            }
        };
        let mut loading = self.loading.lock().expect("not poisoned");
        // Only the map and this caller hold it: nobody else is waiting.
        if Arc::strong_count(&gate) <= 2 {
            loading.remove(&run_id);
        }
        loaded
    }

    /// The row as a progress body, kept unless the run changed since `ticket`.
    async fn read_progress(&self, run_id: RunId, ticket: crate::cache::Ticket) -> Result<Arc<CachedProgress>> {
        let run = match self.queue.get(job_id(run_id)).await? {
            Some(job) if job.kind == KIND => Run::from_job(job)?,
            _ => return Err(Error::NotFound),
        };
        let owner = run.owner.clone();
        let version = run.version;
        let status = run.status;
        let progress = self.to_progress(run).await;
        let etag = etag(&progress, version);
        let body = serde_json::to_vec(&progress).map_err(|e| Error::Internal(e.to_string()))?;
        let body = Arc::new(CachedProgress { run_id, owner, version, status, etag, body: body.into() });
        self.progress.put(ticket, body.clone());
        Ok(body)
    }

    /// The cache behind [`progress_body`](Self::progress_body), and the feed it follows.
    pub fn progress_cache(&self) -> &ProgressCache {
        &self.progress
    }

    /// Cancels a run: a pending one at once, a running one as soon as its worker notices
    /// (within a second). Cancelling a run that already ended changes nothing.
    pub async fn cancel(&self, user_id: &str, run_id: RunId) -> Result<Progress> {
        let run = self.owned(user_id, run_id).await?;
        if run.status.is_terminal() {
            return Ok(self.to_progress(run).await);
        }
        let was_requested = run.cancel_requested;
        let job = self.queue.cancel(job_id(run_id)).await?.ok_or(Error::NotFound)?;
        let run = Run::from_job(job)?;
        if !was_requested {
            telemetry::cancel_requested();
            let entry = LogEntry { at: self.clock.now(), step: None, event: LogEvent::Cancelled {} };
            self.store().append_log(run_id, &entry).await;
        }
        if run.status == JobStatus::Cancelled {
            // A pending run ends here, never having run.
            jobs::telemetry::job_finished(KIND, State::Cancelled, None);
        }
        if run.status == JobStatus::Running {
            self.ask_to_stop(job_id(run_id)).await;
        }
        Ok(self.to_progress(run).await)
    }

    /// Tells the worker of a running job, in this process or another, to stop it.
    async fn ask_to_stop(&self, job_id: jobs::JobId) {
        let event = Event::CancelRequested { job_id };
        self.events.send_local(event.clone());
        if let Err(e) = self.queue.publish(&event).await {
            tracing::warn!(error = %e, "could not notify the worker; it will notice by polling");
        }
    }

    /// Tells the workers, here and in other processes, that jobs were queued.
    pub(crate) async fn notify_available(&self) {
        self.events.send_local(Event::JobAvailable);
        if let Err(e) = self.queue.publish(&Event::JobAvailable).await {
            // The jobs are stored; workers' polling will find them.
            tracing::warn!(error = %e, "could not notify workers");
        }
    }

    /// One of `user_id`'s parent jobs of `kind` (a backtest, a batch) with its args; another
    /// user's or another kind's is not found.
    pub(crate) async fn owned_parent<A: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        user_id: &str,
        id: jobs::JobId,
    ) -> Result<(jobs::Job, A)> {
        match self.queue.get(id).await? {
            Some(job) if job.owner == user_id && job.kind == kind => {
                let args = parent_args(&job)?;
                Ok((job, args))
            }
            _ => Err(Error::NotFound),
        }
    }

    /// `owner`'s parent jobs of `kind`, archived ones too, newest first, each with its args.
    pub(crate) async fn parents<A: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        owner: &str,
        limit: u32,
    ) -> Result<Vec<(jobs::Job, A)>> {
        let mine =
            Filter { kind: Some(kind.into()), owner: Some(owner.into()), archived: true, limit, ..Filter::default() };
        let jobs = self.queue.list(&mine).await?.jobs;
        jobs.into_iter()
            .map(|job| {
                let args = parent_args(&job)?;
                Ok((job, args))
            })
            .collect()
    }

    /// A parent job's children, archived ones too, in the order they were given, as runs.
    pub(crate) async fn children(&self, parent: jobs::JobId) -> Result<Vec<Run>> {
        let children = Filter {
            parent: Some(Some(parent)),
            archived: true,
            order: Order::Inserted,
            limit: u32::MAX,
            ..Filter::default()
        };
        self.queue.list(&children).await?.jobs.into_iter().map(Run::from_job).collect()
    }

    /// Cancels a parent job (a backtest, a batch): no further child starts, pending children
    /// end `cancelled` and the workers of running ones are told to stop them.
    pub(crate) async fn cancel_family(&self, parent: jobs::JobId) -> Result<()> {
        if self.queue.cancel(parent).await?.is_none() {
            return Ok(());
        }
        let running =
            Filter { parent: Some(Some(parent)), states: vec![State::Running], limit: u32::MAX, ..Filter::default() };
        for child in self.queue.list(&running).await?.jobs {
            self.ask_to_stop(child.job_id).await;
        }
        Ok(())
    }

    /// Live jobs per kind and state, for the metrics and the stats.
    pub async fn counts(&self) -> Result<Vec<Count>> {
        Ok(self.queue.counts().await?)
    }

    /// The operators' figures: the last hour and day, per hour, the queue, slow steps and
    /// recent failures.
    pub async fn stats(&self) -> Result<crate::stats::Stats> {
        let now = self.clock.now();
        let ended = Filter {
            kind: Some(KIND.into()),
            completed_since: Some(now - chrono::Duration::hours(24)),
            order: Order::Completed,
            limit: crate::stats::STATS_ROWS_MAX,
            ..Filter::default()
        };
        let runs = self.queue.list(&ended).await?.jobs.into_iter().map(Run::from_job).collect::<Result<Vec<_>>>()?;
        let counts: Vec<(JobStatus, u64)> = self
            .counts()
            .await?
            .into_iter()
            .filter(|c| c.kind == KIND)
            .map(|c| (crate::run::status_of(c.state), c.jobs))
            .collect();
        let mut stats = crate::stats::Stats::compute(&runs, &counts, now);
        stats.models = self.store().model_pace(now - chrono::Duration::hours(24)).await?;
        Ok(stats)
    }

    /// A page of the user's runs that `query` matches, newest first, archived ones included:
    /// after the query's cursor, or at its page (from 1), with the cursor of the next page.
    pub async fn list(&self, user_id: &str, query: &RunsQuery) -> Result<RunsPage> {
        let per_page = query.per_page.clamp(1, PER_PAGE_MAX);
        let page = query.page.max(1);
        // One more than the page, to know whether another follows.
        let offset = u64::from(page - 1) * u64::from(per_page);
        // Judged once, for a query's first page: the later pages (and every page of the CSV
        // download) keep the order the first one was read in.
        let by_outcome = query.outcome.is_some() || query.order != HistoryOrder::Newest;
        if by_outcome && page == 1 && query.cursor.is_none() {
            self.backfill_outcomes(user_id).await?;
        }
        let (mut rows, total) = self.store.search_runs(user_id, query, per_page + 1, offset, true).await?;
        let keyset = query.order == HistoryOrder::Newest;
        let next = (rows.len() > per_page as usize).then(|| {
            rows.truncate(per_page as usize);
            rows.last().filter(|_| keyset).map(|r| Cursor { created_ms: r.created_at, id: r.id }.encode())
        });
        let ids: Vec<RunId> = rows.iter().map(|r| r.run_id).collect();
        let mut tags: HashMap<RunId, Vec<String>> = HashMap::new();
        for (run, tag) in self.store.tags_of(user_id, &ids).await? {
            tags.entry(run).or_default().push(tag);
        }
        let mut runs = rows
            .into_iter()
            .map(|r| {
                let mut s = history_summary(r)?;
                s.tags = tags.remove(&s.run_id).unwrap_or_default();
                if s.as_of.is_none() {
                    s.as_of = self.checks.data_end(&s.symbol);
                }
                Ok(s)
            })
            .collect::<Result<Vec<_>>>()?;
        self.with_outcomes(user_id, &mut runs).await?;
        Ok(RunsPage { runs, page, per_page, total: total.unwrap_or(0), next: next.flatten() })
    }

    /// The tags the owner put on a run.
    pub async fn tags(&self, user_id: &str, run_id: RunId) -> Result<Vec<String>> {
        self.owned(user_id, run_id).await?;
        Ok(self.store.tags_of(user_id, &[run_id]).await?.into_iter().map(|(_, t)| t).collect())
    }

    /// Replaces the tags of one of the user's runs with `tags` (short labels, checked and
    /// lower-cased, duplicates dropped); what is stored.
    pub async fn set_tags(&self, user_id: &str, run_id: RunId, tags: &[String]) -> Result<Vec<String>> {
        let tags = domain::history::check_tags(tags).map_err(Error::Invalid)?;
        self.owned(user_id, run_id).await?;
        self.store.set_tags(user_id, run_id, &tags).await?;
        Ok(tags)
    }

    async fn durations(&self, model_id: &str) -> Arc<StepDurations> {
        if let Some((at, d)) = self.eta_cache.lock().expect("not poisoned").get(model_id)
            && at.elapsed() < ETA_CACHE_FOR
        {
            return d.clone();
        }
        let d = match self.store.recent_steps(model_id, ETA_HISTORY_RUNS).await {
            Ok(history) => Arc::new(StepDurations::from_history(&history)),
            // An estimate is not worth failing a progress read for.
            Err(_) => Arc::new(StepDurations::default()),
        };
        self.eta_cache.lock().expect("not poisoned").insert(model_id.to_string(), (Instant::now(), d.clone()));
        d
    }

    /// A run's progress body. It is a function of the run (and the recent step durations)
    /// alone: the remaining time is estimated as of its last write, and
    /// `estimatedCompletionAt` is the instant a page counts down to between writes.
    pub async fn to_progress(&self, run: Run) -> Progress {
        let eta = if run.is_active() {
            let model = run.start.model_id.as_str();
            // Before there is history, steps take what the catalog expects of the model's calls.
            let per_call = self.checks.models.expected_call(model);
            let durations =
                (*self.durations(model).await).clone().with_calls(per_call, run.start.options.debate_rounds());
            eta::remaining(&run.progress.steps, &durations, run.updated_at).map(|d| d.as_secs_f64().ceil() as u64)
        } else {
            None
        };
        let estimated_completion_at = eta.map(|s| run.updated_at + chrono::Duration::seconds(s as i64));
        let current_step = finished_step_label(&run).or(run.progress.current_step.clone());
        let duration = run.duration_ms();
        let usage = run.progress.usage;
        // A run without an as-of date is analysed as of its data's last day: say which.
        let as_of = run.start.as_of.or_else(|| self.checks.data_end(run.start.symbol.as_str()));
        let state = RunState {
            run_id: run.run_id,
            status: run.status,
            progress: run.progress.percent,
            current_step,
            steps: run.progress.steps,
            started_at: run.started_at,
            estimated_time_remaining: eta,
            estimated_completion_at,
            error: run.error,
            completed_at: run.completed_at,
            duration,
            symbol: run.start.symbol,
            model_id: run.start.model_id,
            analysts: run.start.analysts,
            as_of,
            created_at: run.created_at,
            updated_at: run.updated_at,
            attempt: run.attempt,
            cancel_requested: run.cancel_requested,
            retry_of: run.retry_of,
            rerun_of: run.rerun_of,
            batch_id: run.batch_id,
            llm_calls: usage.calls,
            depth: run.start.options.depth,
            cost_usd: usage.cost_usd,
            tokens: usage.tokens.total(),
        };
        Progress { run: state, result: run.result }
    }
}

/// A parent job's args; ones that do not decode are an internal error.
fn parent_args<A: serde::de::DeserializeOwned>(job: &jobs::Job) -> Result<A> {
    serde_json::from_value(job.args.clone())
        .map_err(|e| Error::Internal(format!("{} {}: args do not decode: {e}", job.kind, job.job_id)))
}

/// The strong ETag of a progress body: its version, and the estimate it carries (which can
/// differ between two builds of one version when the step history moved in between).
fn etag(progress: &Progress, version: i64) -> String {
    match progress.run.estimated_time_remaining {
        Some(eta) => format!("\"v{version}-{eta}\""),
        None => format!("\"v{version}\""),
    }
}

/// What `currentStep` says of a run that ended (the blueprint never leaves it null then):
/// "Complete", "Cancelled", "Timed out", or "Failed: <the step that failed>".
fn finished_step_label(run: &Run) -> Option<String> {
    match run.status {
        JobStatus::Pending | JobStatus::Running => None,
        JobStatus::Completed => Some("Complete".into()),
        JobStatus::Cancelled => Some("Cancelled".into()),
        JobStatus::Timeout => Some("Timed out".into()),
        JobStatus::Failed => Some(match run.progress.steps.iter().find(|s| s.status == domain::StepStatus::Failed) {
            Some(s) => format!("Failed: {}", s.name),
            None => "Failed".into(),
        }),
    }
}

/// A row of the history as the API lists it.
fn history_summary(r: HistoryRow) -> Result<RunSummary> {
    let bad = |what: &str, e: String| Error::Internal(format!("run {}: {what}: {e}", r.run_id));
    let status: JobStatus = match r.status.as_str() {
        "waiting" => JobStatus::Pending,
        s => s.parse().map_err(|e| bad("status", e))?,
    };
    let depth = match r.depth.as_deref() {
        None => Depth::Quick,
        Some(d) => d.parse().map_err(|e: domain::IdError| bad("depth", e.0))?,
    };
    let duration = match (r.started_at, r.completed_at) {
        (Some(s), Some(c)) => Some((c - s).max(0) as u64),
        _ => None,
    };
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| bad("time", format!("{ms} is out of range")))
    };
    Ok(RunSummary {
        run_id: r.run_id,
        analysts: serde_json::from_str(&r.analysts).map_err(|e| bad("analysts", e.to_string()))?,
        depth,
        as_of: r.as_of.as_deref().and_then(|d| d.parse().ok()),
        status,
        progress: r.progress.clamp(0, 100) as u8,
        rating: r.rating.as_deref().and_then(Rating::parse_any),
        confidence: r.confidence,
        cost_usd: r.cost_usd,
        created_at: time(r.created_at)?,
        started_at: r.started_at.map(time).transpose()?,
        completed_at: r.completed_at.map(time).transpose()?,
        duration,
        archived: r.archived,
        tags: Vec::new(),
        outcome: Vec::new(),
        symbol: r.symbol,
        model_id: r.model_id,
    })
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("plain data")
}

fn check_idempotency_key(key: &str) -> Result<String> {
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::Invalid(vec![FieldError::new(
            "Idempotency-Key",
            format!("must be 1–{IDEMPOTENCY_KEY_MAX} visible ASCII characters"),
        )]));
    }
    Ok(key.to_string())
}

/// A digest of the normalised request: the same analysis asked twice hashes the same.
fn request_hash(start: &ValidStart) -> String {
    let json = serde_json::to_vec(start).expect("plain data");
    let digest = Sha256::digest(json);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_requests_hash_alike() {
        let a = StartRequest {
            symbol: Some("aapl".into()),
            analysts: Some(vec!["risk".into(), "invest".into()]),
            ..Default::default()
        };
        let b = StartRequest {
            symbol: Some("AAPL".into()),
            analysts: Some(vec!["invest".into(), "risk".into(), "risk".into()]),
            model_id: Some("offline".into()),
            ..Default::default()
        };
        let c =
            StartRequest { symbol: Some("AAPL".into()), analysts: Some(vec!["invest".into()]), ..Default::default() };
        let m = ModelId::offline();
        let h = |r: &StartRequest| request_hash(&r.validate(&m).unwrap());
        assert_eq!(h(&a), h(&b));
        assert_ne!(h(&a), h(&c));
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(check_idempotency_key("order-42").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key(&"k".repeat(256)).is_err());
    }
}
