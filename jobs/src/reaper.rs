//! The reaper: the backstop for the job timeout.
//!
//! A worker enforces its job's deadline itself. The reaper ends, as `timeout`, running jobs
//! whose deadline passed more than `slack` ago — a worker that keeps its lease alive but whose
//! analysis is stuck where cancellation cannot reach it. Once the row says `timeout`, that
//! worker's next fenced write fails and it stops.

use std::sync::Arc;
use std::time::Duration;

use domain::StepStatus;
use tokio_util::sync::CancellationToken;

use crate::model::{Finish, close_steps};
use crate::store::{JobStore, Settle, StoreError};
use crate::telemetry;
use crate::worker::human_duration;

pub const REAPER_INTERVAL_DEFAULT: Duration = Duration::from_secs(5);
pub const REAPER_SLACK_DEFAULT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ReaperConfig {
    pub interval: Duration,
    /// How long after a job's deadline its own worker still gets to end it.
    pub slack: Duration,
    pub batch: u32,
}

impl Default for ReaperConfig {
    fn default() -> Self {
        Self { interval: REAPER_INTERVAL_DEFAULT, slack: REAPER_SLACK_DEFAULT, batch: 100 }
    }
}

pub struct Reaper {
    store: Arc<dyn JobStore>,
    config: ReaperConfig,
}

impl Reaper {
    pub fn new(store: Arc<dyn JobStore>, config: ReaperConfig) -> Self {
        Self { store, config }
    }

    /// Ends overdue jobs; returns how many.
    pub async fn run_once(&self) -> Result<u32, StoreError> {
        let now = self.store.clock().now();
        let before = now - chrono::Duration::from_std(self.config.slack).expect("slack fits");
        let mut ended = 0;
        for job in self.store.overdue(before, self.config.batch).await? {
            let running: Vec<&str> =
                job.steps.iter().filter(|s| s.status == StepStatus::InProgress).map(|s| s.name.as_str()).collect();
            let error = format!(
                "The analysis did not finish within {} and was stopped.",
                human_duration(Duration::from_millis(job.timeout_ms))
            );
            let settle =
                Settle::End { steps: close_steps(&job.steps, &running, now), finish: Finish::Timeout(error.clone()) };
            if self.store.settle(&job, &settle).await? {
                tracing::warn!(runId = %job.run_id, status = "timeout", error = %error, by = "reaper", "Failed");
                telemetry::timed_out("reaper");
                telemetry::run_finished(domain::JobStatus::Timeout, job.started_at.map(|s| telemetry::between(s, now)));
                ended += 1;
            }
        }
        Ok(ended)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "reaper pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }
}
