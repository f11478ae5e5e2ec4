//! The janitor: moves finished jobs older than the retention period into
//! `queue_jobs_archive`, a small batch per transaction, so the live table stays small
//! and no statement holds locks for long; then deletes archived jobs older than the archive's
//! retention, in batches too (the blueprint's daily `DELETE`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::{JobStore, StoreError};

pub const RETENTION_DAYS_DEFAULT: u32 = 30;
pub const ARCHIVE_RETENTION_DAYS_DEFAULT: u32 = 365;
pub const JANITOR_BATCH_DEFAULT: u32 = 500;
pub const JANITOR_INTERVAL_DEFAULT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct JanitorConfig {
    /// Finished jobs older than this many days are archived.
    pub retention_days: u32,
    /// Archived jobs are deleted this many days after they were archived; `None` keeps them.
    pub archive_retention_days: Option<u32>,
    /// Jobs moved (or deleted) per statement.
    pub batch: u32,
    /// Time between passes when running as a service.
    pub interval: Duration,
}

impl Default for JanitorConfig {
    fn default() -> Self {
        Self {
            retention_days: RETENTION_DAYS_DEFAULT,
            archive_retention_days: Some(ARCHIVE_RETENTION_DAYS_DEFAULT),
            batch: JANITOR_BATCH_DEFAULT,
            interval: JANITOR_INTERVAL_DEFAULT,
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JanitorReport {
    /// Finished jobs moved to the archive.
    pub archived: u64,
    /// Archived jobs deleted.
    pub pruned: u64,
}

pub struct Janitor {
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    config: JanitorConfig,
}

impl Janitor {
    pub fn new(store: Arc<dyn JobStore>, clock: Arc<dyn Clock>, config: JanitorConfig) -> Result<Self, String> {
        if config.batch == 0 {
            return Err("the janitor's batch size must be positive".into());
        }
        Ok(Self { store, clock, config })
    }

    /// Archives everything that is due, then prunes the archive, batch by batch.
    pub async fn run_once(&self) -> Result<JanitorReport, StoreError> {
        let now = self.clock.now();
        let before = now - chrono::Duration::days(i64::from(self.config.retention_days));
        let archived = self.batches(|batch| self.store.archive(before, batch)).await?;
        let pruned = match self.config.archive_retention_days {
            Some(days) => {
                let before = now - chrono::Duration::days(i64::from(days));
                self.batches(|batch| self.store.prune(before, batch)).await?
            }
            None => 0,
        };
        if archived > 0 || pruned > 0 {
            tracing::info!(archived, pruned, "janitor archived ended jobs and pruned the archive");
        }
        Ok(JanitorReport { archived, pruned })
    }

    /// Repeats `step` (one batch) until a batch comes back short; returns the total.
    async fn batches<F, Fut>(&self, step: F) -> Result<u64, StoreError>
    where
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = Result<u64, StoreError>>,
    {
        let mut total = 0;
        loop {
            let n = step(self.config.batch).await?;
            total += n;
            if n < u64::from(self.config.batch) {
                return Ok(total);
            }
            // Let other writers in between batches.
            tokio::task::yield_now().await;
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "janitor pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }
}
