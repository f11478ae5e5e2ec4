//! The worker pool: claims pending jobs and runs them.
//!
//! # Overview
//! Each worker loops: claim one job (one statement, committed), run the analysis outside any
//! transaction, write how it ended, claim again. With nothing to claim it sleeps until an
//! event says a job is available or the poll interval passes.
//!
//! While a job runs, a watcher beside it extends the lease (heartbeat), writes coalesced
//! progress, and checks whether the run was cancelled — every `check_every`, and at once on a
//! cancel event. The run stops when it finishes, is cancelled, loses its lease, or passes its
//! deadline (`timeout_at`, written at claim).
//!
//! # Failure handling
//! - Lease lost: the worker drops the analysis and writes nothing; the new owner decides.
//! - Database down while finishing: the final write is retried for a while; if it never lands
//!   the lease expires and the rescuer hands the job to another attempt, which resumes from
//!   the stored checkpoints.
//! - Shutdown: workers stop claiming at once; running jobs get `shutdown_grace` to finish;
//!   the ones still running are released (back to `pending`, attempt not counted) so another
//!   process picks them up immediately.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::StepStatus;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::analysis::{Analysis, AnalysisError, JobContext, StepUsage};
use crate::events::{Event, Events};
use crate::model::{Finish, Job, close_steps, reset_unfinished_steps};
use crate::store::{JobStore, StoreError};
use crate::telemetry;

pub const WORKERS_DEFAULT: usize = 4;
pub const LEASE_DEFAULT: Duration = Duration::from_secs(30);
pub const POLL_EVERY_DEFAULT: Duration = Duration::from_secs(1);
pub const CHECK_EVERY_DEFAULT: Duration = Duration::from_millis(500);
pub const SHUTDOWN_GRACE_DEFAULT: Duration = Duration::from_secs(10);
/// How long the final write of a job keeps retrying through a database outage.
const FINISH_RETRY_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How many jobs this process runs at once.
    pub workers: usize,
    /// How long a claim stays valid without a heartbeat. Heartbeats come every third of it.
    pub lease: Duration,
    /// How often an idle worker looks for work when no event woke it.
    pub poll_every: Duration,
    /// How often a running job's watcher checks for cancellation and writes coalesced progress.
    pub check_every: Duration,
    /// How long running jobs may go on after shutdown begins before they are released.
    pub shutdown_grace: Duration,
    /// Prefix of lease owner names: e.g. `host:pid`.
    pub owner_prefix: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            workers: WORKERS_DEFAULT,
            lease: LEASE_DEFAULT,
            poll_every: POLL_EVERY_DEFAULT,
            check_every: CHECK_EVERY_DEFAULT,
            shutdown_grace: SHUTDOWN_GRACE_DEFAULT,
            owner_prefix: default_owner_prefix(),
        }
    }
}

impl WorkerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.lease < Duration::from_secs(1) {
            return Err("the lease must be at least 1 s".into());
        }
        if self.check_every.is_zero() || self.check_every >= self.lease / 3 {
            return Err("check_every must be positive and shorter than a third of the lease".into());
        }
        if self.poll_every.is_zero() {
            return Err("poll_every must be positive".into());
        }
        Ok(())
    }

    fn heartbeat_every(&self) -> Duration {
        self.lease / 3
    }
}

/// `hostname:pid`, so an operator can tell which process holds a lease.
pub fn default_owner_prefix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}:{}", std::process::id())
}

/// One worker: claims and runs one job at a time.
pub struct Worker {
    store: Arc<dyn JobStore>,
    analysis: Arc<dyn Analysis>,
    events: Events,
    config: WorkerConfig,
    owner: String,
}

/// How one job's run ended, as the worker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Completed,
    Failed,
    TimedOut,
    Cancelled,
    /// Given back at shutdown.
    Released,
    /// The lease was lost or the final write could not be made: the store decides.
    Abandoned,
}

impl Worker {
    pub fn new(
        store: Arc<dyn JobStore>,
        analysis: Arc<dyn Analysis>,
        events: Events,
        config: WorkerConfig,
        index: usize,
    ) -> Self {
        let owner = format!("{}:{}:{}", config.owner_prefix, index, &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Self { store, analysis, events, config, owner }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims one job and runs it to its end. `None` when there was nothing to claim.
    pub async fn run_once(&self, hard_stop: &CancellationToken) -> Result<Option<(Job, RunEnd)>, StoreError> {
        let lease = chrono::Duration::from_std(self.config.lease).expect("lease fits");
        let Some(job) = self.store.claim(&self.owner, lease).await? else {
            return Ok(None);
        };
        if job.attempt == 1 {
            telemetry::queue_wait(telemetry::between(job.created_at, self.store.clock().now()));
        }
        let end = self.run_job(&job, hard_stop).await;
        Ok(Some((job, end)))
    }

    /// Runs until `stop` fires; a job in progress then gets until `hard_stop`.
    pub async fn run(&self, stop: CancellationToken, hard_stop: CancellationToken) {
        let mut events = self.events.subscribe();
        let mut backoff = Duration::from_millis(250);
        while !stop.is_cancelled() {
            match self.run_once(&hard_stop).await {
                Ok(Some(_)) => {
                    backoff = Duration::from_millis(250);
                    continue;
                }
                Ok(None) => {
                    backoff = Duration::from_millis(250);
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(self.config.poll_every) => {}
                        _ = wait_for_work(&mut events) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(worker = %self.owner, error = %e, "claim failed; backing off");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn run_job(&self, job: &Job, hard_stop: &CancellationToken) -> RunEnd {
        let fence = job.fence().expect("a claimed job is running under a lease");
        let spent = StepUsage { llm_calls: job.llm_calls, tokens: job.tokens, cost_usd: job.cost_usd };
        let ctx = JobContext::new(
            job.spec(),
            fence.clone(),
            job.steps.clone(),
            job.checkpoints.clone(),
            spent,
            self.store.clone(),
        );
        tracing::info!(
            runId = %job.run_id,
            symbol = %job.symbol,
            modelId = %job.model_id,
            attempt = job.attempt,
            worker = %self.owner,
            "Started"
        );

        let clock = self.store.clock();
        let deadline = job
            .timeout_at
            .map(|t| (t - clock.now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_millis(job.timeout_ms));

        // Aborted when this future ends or is dropped: the watcher never outlives its job.
        let watcher =
            AbortOnDrop(tokio::spawn(watch(ctx.clone(), self.store.clone(), self.events.clone(), self.config.clone())));
        let cancel = ctx.cancellation();
        /// Why the run stopped, as seen by this worker.
        enum Stop {
            Completed(Box<domain::AnalysisResult>),
            Failed { step: Option<String>, message: String },
            Engine(String),
            Interrupted,
            Timeout,
            Release,
        }
        let stop = tokio::select! {
            r = self.analysis.run(ctx.clone()) => match r {
                Ok(result) => Stop::Completed(Box::new(result)),
                Err(AnalysisError::Failed { step, message }) => Stop::Failed { step, message },
                Err(AnalysisError::Cancelled) => Stop::Interrupted,
                Err(AnalysisError::Engine(e)) => Stop::Engine(e),
            },
            _ = cancel.cancelled() => Stop::Interrupted,
            _ = tokio::time::sleep(deadline) => Stop::Timeout,
            _ = hard_stop.cancelled() => Stop::Release,
        };
        drop(watcher);

        if ctx.is_lease_lost() {
            tracing::warn!(run_id = %job.run_id, worker = %self.owner, "lease lost; leaving the job to its new owner");
            return RunEnd::Abandoned;
        }
        let now = clock.now();
        let steps = ctx.steps().await;
        match stop {
            Stop::Completed(result) => {
                let steps = close_steps(&steps, &[], now);
                let end = self.finish(job, &steps, Finish::Completed(result), RunEnd::Completed).await;
                if end == RunEnd::Completed {
                    let spent = ctx.spent();
                    tracing::info!(
                        runId = %job.run_id,
                        durationMs = job.started_at.map(|s| (now - s).num_milliseconds().max(0)).unwrap_or(0),
                        llmCalls = spent.llm_calls,
                        tokens = spent.tokens.total(),
                        cost = spent.cost_usd,
                        "Completed"
                    );
                }
                end
            }
            Stop::Failed { step, message } => {
                let failed: Vec<&str> = step.as_deref().into_iter().collect();
                let steps = close_steps(&steps, &failed, now);
                self.finish(job, &steps, Finish::Failed(message), RunEnd::Failed).await
            }
            Stop::Interrupted => {
                let steps = close_steps(&steps, &[], now);
                self.finish(job, &steps, Finish::Cancelled, RunEnd::Cancelled).await
            }
            Stop::Engine(e) => {
                tracing::error!(run_id = %job.run_id, error = %e, "engine error; the lease will expire and the job be rescued");
                RunEnd::Abandoned
            }
            Stop::Timeout => {
                let running: Vec<&str> =
                    steps.iter().filter(|s| s.status == StepStatus::InProgress).map(|s| s.name.as_str()).collect();
                let steps = close_steps(&steps, &running, now);
                let message = format!(
                    "The analysis did not finish within {} and was stopped.",
                    human_duration(Duration::from_millis(job.timeout_ms))
                );
                self.finish(job, &steps, Finish::Timeout(message), RunEnd::TimedOut).await
            }
            Stop::Release => {
                let steps = reset_unfinished_steps(&steps);
                match self.store.release(&fence, &steps).await {
                    Ok(()) => {
                        self.announce(Event::JobAvailable).await;
                        tracing::info!(run_id = %job.run_id, "released at shutdown");
                        RunEnd::Released
                    }
                    Err(e) => {
                        tracing::warn!(run_id = %job.run_id, error = %e, "release failed; the lease will expire");
                        RunEnd::Abandoned
                    }
                }
            }
        }
    }

    async fn finish(&self, job: &Job, steps: &[domain::StepProgress], finish: Finish, end: RunEnd) -> RunEnd {
        let fence = job.fence().expect("running");
        let started = Instant::now();
        loop {
            match self.store.finish(&fence, steps, &finish).await {
                Ok(()) => {
                    match &finish {
                        Finish::Failed(error) | Finish::Timeout(error) => {
                            tracing::warn!(runId = %job.run_id, status = %finish.status(), error = %error, "Failed");
                        }
                        Finish::Cancelled => tracing::info!(runId = %job.run_id, "Cancelled"),
                        Finish::Completed(_) => {}
                    }
                    let now = self.store.clock().now();
                    telemetry::run_finished(finish.status(), job.started_at.map(|s| telemetry::between(s, now)));
                    if end == RunEnd::TimedOut {
                        telemetry::timed_out("worker");
                    }
                    return end;
                }
                Err(StoreError::LeaseLost(_)) => {
                    tracing::warn!(run_id = %job.run_id, "lease lost before the final write");
                    return RunEnd::Abandoned;
                }
                Err(e) if started.elapsed() < FINISH_RETRY_FOR => {
                    tracing::warn!(run_id = %job.run_id, error = %e, "final write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    tracing::error!(run_id = %job.run_id, error = %e, "final write failed; the job will be rescued");
                    return RunEnd::Abandoned;
                }
            }
        }
    }

    async fn announce(&self, event: Event) {
        self.events.send_local(event.clone());
        if let Err(e) = self.store.publish(&event).await {
            tracing::warn!(error = %e, "could not publish an event");
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Returns when an event suggests there may be work.
async fn wait_for_work(events: &mut tokio::sync::broadcast::Receiver<Event>) {
    loop {
        match events.recv().await {
            Ok(Event::JobAvailable) | Ok(Event::Reconnected) | Err(RecvError::Lagged(_)) => return,
            Ok(Event::CancelRequested { .. }) => continue,
            // The bus is gone (shutdown); let the poll interval take over.
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Beside a running job: heartbeat, flush coalesced progress, notice cancellation.
async fn watch(ctx: JobContext, store: Arc<dyn JobStore>, events: Events, config: WorkerConfig) {
    let lease = chrono::Duration::from_std(config.lease).expect("lease fits");
    let run_id = ctx.spec().run_id;
    let mut events = events.subscribe();
    let mut bus_open = true;
    let mut last_heartbeat = Instant::now();
    // A ticker rather than a fresh sleep per loop: a busy event bus must not postpone the
    // heartbeat.
    let mut tick = tokio::time::interval(config.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            e = events.recv(), if bus_open => {
                match e {
                    Ok(Event::CancelRequested { run_id: r }) if r == run_id => {
                        ctx.request_cancel();
                        return;
                    }
                    Err(RecvError::Closed) => bus_open = false,
                    _ => {}
                }
                continue;
            }
        }
        // Coalesced progress goes out first; a progress write also reads the cancel flag.
        let flushed = ctx.flush().await;
        let result = if last_heartbeat.elapsed() >= config.heartbeat_every() {
            let r = store.heartbeat(ctx.fence(), lease).await;
            if r.is_ok() {
                last_heartbeat = Instant::now();
            }
            Some(r)
        } else if flushed {
            None
        } else {
            Some(store.control(ctx.fence()).await)
        };
        match result {
            Some(Ok(control)) => ctx.apply(control),
            Some(Err(StoreError::LeaseLost(_))) => {
                ctx.lose_lease();
                return;
            }
            Some(Err(e)) => tracing::warn!(%run_id, error = %e, "watcher could not reach the store"),
            None => {}
        }
        if ctx.cancellation().is_cancelled() {
            return;
        }
    }
}

/// "10 minutes", "90 seconds", "1 second", "300 milliseconds".
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if d < Duration::from_secs(1) {
        format!("{} milliseconds", d.as_millis())
    } else if s == 1 && d.subsec_millis() == 0 {
        "1 second".into()
    } else if d.subsec_millis() != 0 {
        format!("{:.1} seconds", d.as_secs_f64())
    } else if s >= 120 && s.is_multiple_of(60) {
        format!("{} minutes", s / 60)
    } else if s == 60 {
        "1 minute".into()
    } else {
        format!("{s} seconds")
    }
}

/// A set of workers sharing one store and one analysis.
pub struct WorkerPool {
    store: Arc<dyn JobStore>,
    analysis: Arc<dyn Analysis>,
    events: Events,
    config: WorkerConfig,
}

impl WorkerPool {
    pub fn new(
        store: Arc<dyn JobStore>,
        analysis: Arc<dyn Analysis>,
        events: Events,
        config: WorkerConfig,
    ) -> Result<Self, String> {
        config.validate()?;
        Ok(Self { store, analysis, events, config })
    }

    /// Runs the workers until `shutdown` fires, then drains as the module docs describe.
    pub async fn run(self, shutdown: CancellationToken) {
        let hard_stop = CancellationToken::new();
        let mut handles = Vec::new();
        for i in 0..self.config.workers {
            let worker =
                Worker::new(self.store.clone(), self.analysis.clone(), self.events.clone(), self.config.clone(), i);
            let (stop, hard) = (shutdown.clone(), hard_stop.clone());
            handles.push(tokio::spawn(async move { worker.run(stop, hard).await }));
        }
        shutdown.cancelled().await;
        let grace = self.config.shutdown_grace;
        let all = futures::future::join_all(handles);
        tokio::pin!(all);
        tokio::select! {
            _ = &mut all => {}
            _ = tokio::time::sleep(grace) => {
                tracing::info!("shutdown grace over; releasing running jobs");
                hard_stop.cancel();
                all.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_timeouts_are_not_rounded_to_nothing() {
        assert_eq!(human_duration(Duration::from_millis(300)), "300 milliseconds");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 seconds");
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(90)), "90 seconds");
        assert_eq!(human_duration(Duration::from_secs(60)), "1 minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
    }
}
