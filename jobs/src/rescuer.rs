//! The rescuer: running jobs whose lease expired (their worker died or lost the database).
//!
//! A job whose lease expired goes back to `pending` for another attempt, keeping its completed
//! steps and their checkpoints — unless it was asked to stop (it becomes `cancelled`) or it has
//! used all its attempts (it becomes `failed`, saying why). Each change is conditional on the
//! row still being exactly as it was read, so a worker that heartbeats at the last moment, or a
//! second rescuer in another process, wins or loses cleanly.

use std::sync::Arc;
use std::time::Duration;

use domain::StepStatus;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, Events};
use crate::model::{Finish, close_steps, reset_unfinished_steps};
use crate::store::{JobStore, Settle, StoreError};
use crate::telemetry;

pub const RESCUER_INTERVAL_DEFAULT: Duration = Duration::from_secs(5);
pub const RESCUER_BATCH_DEFAULT: u32 = 100;

#[derive(Debug, Clone)]
pub struct RescuerConfig {
    /// How often to look for expired leases.
    pub interval: Duration,
    /// At most this many jobs per look.
    pub batch: u32,
}

impl Default for RescuerConfig {
    fn default() -> Self {
        Self { interval: RESCUER_INTERVAL_DEFAULT, batch: RESCUER_BATCH_DEFAULT }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RescueReport {
    pub requeued: u32,
    pub failed: u32,
    pub cancelled: u32,
}

pub struct Rescuer {
    store: Arc<dyn JobStore>,
    events: Events,
    config: RescuerConfig,
}

impl Rescuer {
    pub fn new(store: Arc<dyn JobStore>, events: Events, config: RescuerConfig) -> Self {
        Self { store, events, config }
    }

    pub async fn run_once(&self) -> Result<RescueReport, StoreError> {
        let mut report = RescueReport::default();
        let now = self.store.clock().now();
        for job in self.store.expired_leases(self.config.batch).await? {
            let settle = if job.cancel_requested {
                Settle::End { steps: close_steps(&job.steps, &[], now), finish: Finish::Cancelled }
            } else if job.attempt >= job.max_attempts {
                let running: Vec<&str> =
                    job.steps.iter().filter(|s| s.status == StepStatus::InProgress).map(|s| s.name.as_str()).collect();
                Settle::End {
                    steps: close_steps(&job.steps, &running, now),
                    finish: Finish::Failed(format!(
                        "The analysis was interrupted {} times (the worker running it stopped responding) and was given up.",
                        job.attempt
                    )),
                }
            } else {
                Settle::Requeue { steps: reset_unfinished_steps(&job.steps) }
            };
            if self.store.settle(&job, &settle).await? {
                if let Settle::End { finish, .. } = &settle {
                    telemetry::run_finished(finish.status(), job.started_at.map(|s| telemetry::between(s, now)));
                }
                match &settle {
                    Settle::Requeue { .. } => {
                        telemetry::rescued("requeued");
                        report.requeued += 1;
                        tracing::warn!(run_id = %job.run_id, attempt = job.attempt, owner = ?job.lease_owner, "lease expired; job requeued");
                    }
                    Settle::End { finish: Finish::Cancelled, .. } => {
                        telemetry::rescued("cancelled");
                        report.cancelled += 1;
                    }
                    Settle::End { .. } => {
                        telemetry::rescued("failed");
                        report.failed += 1;
                        if let Settle::End { finish: Finish::Failed(error), .. } = &settle {
                            tracing::warn!(runId = %job.run_id, attempt = job.attempt, error = %error, "Failed");
                        }
                    }
                }
            }
        }
        if report.requeued > 0 {
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
