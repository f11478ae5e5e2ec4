//! The rescuer: jobs whose worker is gone, late, or never woken.
//!
//! - A running job whose lease expired (its worker died or lost the database) goes back to
//!   `pending` for another attempt, keeping its checkpoints — unless it was asked to stop (it
//!   becomes `cancelled`) or it has used all its attempts (it becomes `failed`, saying why).
//! - A running job whose deadline passed more than `slack` ago ends as `timeout`: the backstop
//!   for a worker that keeps its lease alive but whose job is stuck where cancellation cannot
//!   reach it. Once the row says `timeout`, that worker's next fenced write fails and it stops.
//! - A waiting parent none of whose children is active any more becomes `pending` (the end of
//!   its last child normally does that; this mends a wake-up lost to a crash).
//!
//! Each change is conditional on the row still being exactly as it was read, so a worker that
//! heartbeats at the last moment, or a second rescuer in another process, wins or loses cleanly.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::events::{Event, Events};
use crate::job::{Settle, State, Stuck};
use crate::store::{JobStore, StoreError};
use crate::telemetry;
use crate::worker::{Handlers, timed_out};

pub const RESCUER_INTERVAL_DEFAULT: Duration = Duration::from_secs(5);
pub const RESCUER_BATCH_DEFAULT: u32 = 100;
pub const RESCUER_SLACK_DEFAULT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct RescuerConfig {
    /// How often to look.
    pub interval: Duration,
    /// At most this many jobs per look.
    pub batch: u32,
    /// How long after a job's deadline its own worker still gets to end it.
    pub slack: Duration,
}

impl Default for RescuerConfig {
    fn default() -> Self {
        Self { interval: RESCUER_INTERVAL_DEFAULT, batch: RESCUER_BATCH_DEFAULT, slack: RESCUER_SLACK_DEFAULT }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RescueReport {
    pub requeued: u32,
    pub failed: u32,
    pub cancelled: u32,
    pub timed_out: u32,
    pub woken: u32,
}

pub struct Rescuer {
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    events: Events,
    handlers: Handlers,
    config: RescuerConfig,
}

impl Rescuer {
    /// `handlers` name each kind in the errors written (see [`crate::Handler::noun`]).
    pub fn new(
        store: Arc<dyn JobStore>,
        clock: Arc<dyn Clock>,
        events: Events,
        handlers: Handlers,
        config: RescuerConfig,
    ) -> Self {
        Self { store, clock, events, handlers, config }
    }

    pub async fn run_once(&self) -> Result<RescueReport, StoreError> {
        let mut report = RescueReport::default();
        let now = self.clock.now();
        let slack = chrono::Duration::from_std(self.config.slack).expect("slack fits");
        for (job, why) in self.store.stuck(slack, self.config.batch).await? {
            let noun = self.handlers.noun(&job.kind);
            let settle = if why == Stuck::Orphaned {
                Settle::Requeue
            } else if why == Stuck::Overdue {
                Settle::End { state: State::Timeout, error: Some(timed_out(noun, job.timeout_ms)) }
            } else if job.cancel_requested {
                Settle::End { state: State::Cancelled, error: None }
            } else if job.attempt >= job.max_attempts {
                Settle::End {
                    state: State::Failed,
                    error: Some(format!(
                        "The {noun} was interrupted {} times (the worker running it stopped responding) and was given up.",
                        job.attempt
                    )),
                }
            } else {
                Settle::Requeue
            };
            if !self.store.settle(&job, &settle).await? {
                continue;
            }
            match &settle {
                Settle::Requeue if job.state == State::Waiting => report.woken += 1,
                Settle::Requeue => {
                    telemetry::rescued("requeued");
                    report.requeued += 1;
                    tracing::warn!(job_id = %job.job_id, attempt = job.attempt, owner = ?job.lease_owner, "lease expired; job requeued");
                }
                Settle::End { state, error } => {
                    telemetry::job_finished(&job.kind, *state, job.started_at.map(|s| telemetry::between(s, now)));
                    match state {
                        State::Timeout => {
                            telemetry::timed_out("reaper");
                            report.timed_out += 1;
                            tracing::warn!(jobId = %job.job_id, kind = %job.kind, state = "timeout", error = ?error, by = "rescuer", "Ended");
                        }
                        State::Cancelled => {
                            telemetry::rescued("cancelled");
                            report.cancelled += 1;
                        }
                        _ => {
                            telemetry::rescued("failed");
                            report.failed += 1;
                            tracing::warn!(jobId = %job.job_id, kind = %job.kind, state = "failed", attempt = job.attempt, error = ?error, "Ended");
                        }
                    }
                }
            }
        }
        if report.requeued > 0 || report.woken > 0 {
            self.events.send_local(Event::JobAvailable);
            self.store.publish(&Event::JobAvailable).await?;
        }
        Ok(report)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "rescuer pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }
}
