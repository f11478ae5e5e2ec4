//! The worker pool: claims pending jobs and runs them with the handlers registered for their
//! kinds.
//!
//! # Overview
//! One producer per process claims as many jobs as it has free slots, in one statement, and
//! commits; each job then runs in a task of its own, outside any transaction, and its end is
//! written through the completer ([`crate::batch::Ends`]). With nothing to claim the producer
//! sleeps until an event says a job is available or the poll interval passes.
//!
//! Beside the running jobs, one watcher per process writes their coalesced progress, extends
//! all their leases in one statement (a heartbeat every third of the lease), and reads
//! whether they were cancelled — every `check_every`, and at once on a cancel event. A job
//! stops when it finishes, is cancelled, loses its lease, or passes its deadline (`timeout_at`,
//! written at claim).
//!
//! # Failure handling
//! - Lease lost: the worker drops the job and writes nothing; the new owner decides.
//! - Database down while finishing: the final write is retried for a while; if it never lands
//!   the lease expires and the rescuer hands the job to another attempt, which resumes from
//!   the stored checkpoints.
//! - Shutdown: the producer stops claiming at once; running jobs get `shutdown_grace` to finish;
//!   the ones still running are released (back to `pending`, attempt not counted) so another
//!   process picks them up immediately.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::batch::{Ends, Writes};
use crate::clock::Clock;
use crate::context::{Handler, JobContext, JobError};
use crate::events::{Event, Events};
use crate::job::{Finish, Job, JobId, Outcome};
use crate::store::{JobStore, StoreError};
use crate::telemetry;

pub const WORKERS_DEFAULT: usize = 4;
pub const LEASE_DEFAULT: Duration = Duration::from_secs(30);
pub const POLL_EVERY_DEFAULT: Duration = Duration::from_secs(1);
pub const CHECK_EVERY_DEFAULT: Duration = Duration::from_millis(500);
/// A running job stops within this of its cancel request: the request's event reaches its
/// worker at once, and without events the watcher's next check (every `CHECK_EVERY_DEFAULT`)
/// finds it. The README promises it; `server/tests/api.rs` measures it.
pub const CANCEL_WITHIN: Duration = Duration::from_secs(1);
const _: () = assert!(CHECK_EVERY_DEFAULT.as_millis() < CANCEL_WITHIN.as_millis());
pub const SHUTDOWN_GRACE_DEFAULT: Duration = Duration::from_secs(10);
/// How long the final write of a job keeps retrying through a database outage.
const FINISH_RETRY_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How many jobs this process runs at once.
    pub workers: usize,
    /// How long a claim stays valid without a heartbeat. Heartbeats come every third of it.
    pub lease: Duration,
    /// How often an idle producer looks for work when no event woke it.
    pub poll_every: Duration,
    /// How often the watcher checks for cancellation and writes coalesced progress.
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
        if self.workers == 0 {
            return Err("a worker pool needs at least one worker".into());
        }
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

/// The handlers of a process, by kind.
#[derive(Clone, Default)]
pub struct Handlers(HashMap<String, Arc<dyn Handler>>);

impl Handlers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(mut self, kind: &str, handler: Arc<dyn Handler>) -> Self {
        self.0.insert(kind.to_string(), handler);
        self
    }

    pub(crate) fn noun(&self, kind: &str) -> &'static str {
        self.0.get(kind).map_or("job", |h| h.noun())
    }

    pub(crate) fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.0.keys().cloned().collect();
        kinds.sort();
        kinds
    }
}

/// How one job's run ended, as its worker saw it.
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

/// What the pool's jobs share: the store, the batchers, and the jobs running now.
struct Shared {
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    handlers: Handlers,
    events: Events,
    config: WorkerConfig,
    owner: String,
    writes: Writes,
    ends: Ends,
    running: Mutex<HashMap<JobId, JobContext>>,
}

/// A set of workers sharing one store, one producer and one watcher.
pub struct WorkerPool {
    shared: Arc<Shared>,
}

impl WorkerPool {
    pub fn new(
        store: Arc<dyn JobStore>,
        handlers: Handlers,
        events: Events,
        config: WorkerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        config.validate()?;
        let owner = format!("{}:{}", config.owner_prefix, &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let shared = Shared {
            writes: Writes::new(store.clone()),
            ends: Ends::new(store.clone()),
            store,
            clock,
            handlers,
            events,
            config,
            owner,
            running: Mutex::default(),
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// The lease owner this pool claims as.
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// Claims one job and runs it to its end, with a watcher beside it; `None` when there was
    /// nothing to claim. For tests and tools that step the queue one job at a time.
    pub async fn run_once(&self, hard_stop: &CancellationToken) -> Result<Option<(Job, RunEnd)>, StoreError> {
        let Some(job) = self.claim(1).await?.pop() else {
            return Ok(None);
        };
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(watch(self.shared.clone(), stop.clone()));
        let end = run_job(self.shared.clone(), job.clone(), hard_stop.clone(), None).await;
        stop.cancel();
        let _ = watcher.await;
        Ok(Some((job, end)))
    }

    async fn claim(&self, limit: u32) -> Result<Vec<Job>, StoreError> {
        let s = &self.shared;
        let lease = chrono::Duration::from_std(s.config.lease).expect("lease fits");
        let jobs = s.store.claim(&s.owner, lease, limit, &s.handlers.kinds()).await?;
        for job in &jobs {
            if job.attempt == 1 {
                telemetry::queue_wait(&job.kind, telemetry::between(job.created_at, s.clock.now()));
            }
        }
        Ok(jobs)
    }

    /// Runs until `shutdown` fires, then drains as the module docs describe.
    pub async fn run(self, shutdown: CancellationToken) {
        let s = self.shared.clone();
        let hard_stop = CancellationToken::new();
        let watch_stop = CancellationToken::new();
        let watcher = tokio::spawn(watch(s.clone(), watch_stop.clone()));
        let slots = Arc::new(Semaphore::new(s.config.workers));
        let mut tasks = tokio::task::JoinSet::new();
        let mut events = s.events.subscribe();
        let mut backoff = Duration::from_millis(250);
        while !shutdown.is_cancelled() {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => permit.expect("never closed"),
            };
            let free = 1 + slots.available_permits() as u32;
            match self.claim(free).await {
                Ok(jobs) if !jobs.is_empty() => {
                    backoff = Duration::from_millis(250);
                    let mut permit = Some(first);
                    for job in jobs {
                        let permit = match permit.take() {
                            Some(p) => p,
                            None => slots.clone().try_acquire_owned().expect("claimed no more than the free slots"),
                        };
                        let (shared, hard) = (s.clone(), hard_stop.clone());
                        tasks.spawn(run_job(shared, job, hard, Some(permit)));
                    }
                    // Reap finished tasks so the set does not grow.
                    while tasks.try_join_next().is_some() {}
                }
                Ok(_) => {
                    drop(first);
                    backoff = Duration::from_millis(250);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(s.config.poll_every) => {}
                        _ = wait_for_work(&mut events) => {}
                    }
                }
                Err(e) => {
                    drop(first);
                    tracing::warn!(worker = %s.owner, error = %e, "claim failed; backing off");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        let drained = async { while tasks.join_next().await.is_some() {} };
        tokio::pin!(drained);
        tokio::select! {
            _ = &mut drained => {}
            _ = tokio::time::sleep(s.config.shutdown_grace) => {
                tracing::info!("shutdown grace over; releasing running jobs");
                hard_stop.cancel();
                drained.await;
            }
        }
        watch_stop.cancel();
        let _ = watcher.await;
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

/// Removes a job from the running set when its run ends, however it ends.
struct Running<'a> {
    shared: &'a Shared,
    job_id: JobId,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.shared.running.lock().expect("not poisoned").remove(&self.job_id);
    }
}

/// Runs one claimed job to its end and writes how it ended. Its worker's slot (`permit`) is
/// free as soon as its handler is done: the final write goes through the completer while the
/// producer claims the next job.
async fn run_job(
    s: Arc<Shared>,
    job: Job,
    hard_stop: CancellationToken,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> RunEnd {
    let ctx = JobContext::new(job.clone(), s.writes.clone());
    s.running.lock().expect("not poisoned").insert(job.job_id, ctx.clone());
    let _running = Running { shared: &s, job_id: job.job_id };
    tracing::info!(jobId = %job.job_id, kind = %job.kind, attempt = job.attempt, worker = %s.owner, "Claimed");

    let deadline = job
        .timeout_at
        .map(|t| (t - s.clock.now()).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(Duration::from_millis(job.timeout_ms));
    let Some(handler) = s.handlers.0.get(&job.kind).cloned() else {
        // Claimed only kinds with a handler; a registry changed under it is a bug.
        return finish(&s, &ctx, Outcome::Failed(format!("no handler for jobs of kind '{}'", job.kind))).await;
    };
    let cancel = ctx.cancellation();
    enum Stop {
        Done(Result<serde_json::Value, JobError>),
        Interrupted,
        Timeout,
        Release,
    }
    let stop = tokio::select! {
        r = handler.run(ctx.clone()) => Stop::Done(r),
        _ = cancel.cancelled() => Stop::Interrupted,
        _ = tokio::time::sleep(deadline) => Stop::Timeout,
        _ = hard_stop.cancelled() => Stop::Release,
    };
    drop(permit);
    if ctx.is_lease_lost() {
        tracing::warn!(job_id = %job.job_id, worker = %s.owner, "lease lost; leaving the job to its new owner");
        return RunEnd::Abandoned;
    }
    let outcome = match stop {
        Stop::Done(Ok(output)) => Outcome::Completed(output),
        Stop::Done(Err(JobError::Failed(message))) => Outcome::Failed(message),
        Stop::Done(Err(JobError::Cancelled)) | Stop::Interrupted => Outcome::Cancelled,
        Stop::Done(Err(JobError::Lost(e))) => {
            tracing::error!(job_id = %job.job_id, error = %e, "job lost; the lease will expire and the job be rescued");
            return RunEnd::Abandoned;
        }
        Stop::Timeout => Outcome::Timeout(timed_out(handler.noun(), job.timeout_ms)),
        Stop::Release => Outcome::Released,
    };
    finish(&s, &ctx, outcome).await
}

/// Writes a job's end through the completer, retrying through a short outage.
async fn finish(s: &Shared, ctx: &JobContext, outcome: Outcome) -> RunEnd {
    let job = ctx.job();
    let end = match &outcome {
        Outcome::Completed(_) => RunEnd::Completed,
        Outcome::Failed(_) => RunEnd::Failed,
        Outcome::Timeout(_) => RunEnd::TimedOut,
        Outcome::Cancelled => RunEnd::Cancelled,
        Outcome::Released => RunEnd::Released,
    };
    let (progress, checkpoints) = ctx.unwritten().await;
    let finish = Finish { fence: ctx.fence().clone(), progress, checkpoints, outcome };
    let started = Instant::now();
    loop {
        match s.ends.finish(finish.clone()).await {
            Ok(true) => {
                let state = finish.outcome.state();
                match &finish.outcome {
                    Outcome::Failed(error) | Outcome::Timeout(error) => {
                        tracing::warn!(jobId = %job.job_id, kind = %job.kind, %state, error = %error, "Ended");
                    }
                    Outcome::Cancelled | Outcome::Completed(_) => {
                        tracing::info!(jobId = %job.job_id, kind = %job.kind, %state, "Ended");
                    }
                    Outcome::Released => {
                        tracing::info!(job_id = %job.job_id, "released at shutdown");
                        s.events.send_local(Event::JobAvailable);
                        if let Err(e) = s.store.publish(&Event::JobAvailable).await {
                            tracing::warn!(error = %e, "could not publish an event");
                        }
                        return end;
                    }
                }
                // Its end may free a slot the producer found full (an owner's or a family's
                // cap: the producer claims again as soon as the handler is done, before this
                // write lands) or wake its parent: look for work now, not at the next poll.
                s.events.send_local(Event::JobAvailable);
                let now = s.clock.now();
                telemetry::job_finished(
                    &job.kind,
                    finish.outcome.state(),
                    job.started_at.map(|t| telemetry::between(t, now)),
                );
                if end == RunEnd::TimedOut {
                    telemetry::timed_out("worker");
                }
                return end;
            }
            Ok(false) => {
                tracing::warn!(job_id = %job.job_id, "lease lost before the final write");
                return RunEnd::Abandoned;
            }
            Err(e) if started.elapsed() < FINISH_RETRY_FOR => {
                tracing::warn!(job_id = %job.job_id, error = %e, "final write failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                tracing::error!(job_id = %job.job_id, error = %e, "final write failed; the job will be rescued");
                return RunEnd::Abandoned;
            }
        }
    }
}

/// Beside the running jobs: flush coalesced progress, heartbeat, notice cancellation.
async fn watch(s: Arc<Shared>, stop: CancellationToken) {
    let lease = chrono::Duration::from_std(s.config.lease).expect("lease fits");
    let mut events = s.events.subscribe();
    let mut bus_open = true;
    let mut last_heartbeat = Instant::now();
    // A ticker rather than a fresh sleep per loop: a busy event bus must not postpone the
    // heartbeat.
    let mut tick = tokio::time::interval(s.config.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
            e = events.recv(), if bus_open => {
                match e {
                    Ok(Event::CancelRequested { job_id }) => {
                        let ctx = s.running.lock().expect("not poisoned").get(&job_id).cloned();
                        if let Some(ctx) = ctx {
                            ctx.request_cancel();
                        }
                    }
                    Err(RecvError::Closed) => bus_open = false,
                    _ => {}
                }
                continue;
            }
        }
        let running: Vec<JobContext> = s.running.lock().expect("not poisoned").values().cloned().collect();
        if running.is_empty() {
            continue;
        }
        // Coalesced progress goes out (all jobs' in one batch, as it happens); a write also
        // reads the cancel flag.
        for ctx in &running {
            ctx.write();
        }
        let extend = (last_heartbeat.elapsed() >= s.config.heartbeat_every()).then_some(lease);
        let fences: Vec<_> = running.iter().map(|ctx| ctx.fence().clone()).collect();
        match s.store.control(&fences, extend).await {
            Ok(controls) => {
                if extend.is_some() {
                    last_heartbeat = Instant::now();
                }
                for (ctx, control) in running.iter().zip(controls) {
                    match control {
                        Some(c) => ctx.apply(c),
                        None => ctx.lose_lease(),
                    }
                }
            }
            Err(e) => tracing::warn!(worker = %s.owner, error = %e, "watcher could not reach the store"),
        }
    }
}

/// Why a job ended at its deadline.
pub(crate) fn timed_out(noun: &str, timeout_ms: u64) -> String {
    format!("The {noun} did not finish within {} and was stopped.", human_duration(Duration::from_millis(timeout_ms)))
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
