//! The janitor: moves finished jobs older than the retention period into
//! `trading_agent_jobs_archive`, a small batch per transaction, so the live table stays small
//! and no statement holds locks for long.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{JobStore, StoreError};

pub const RETENTION_DAYS_DEFAULT: u32 = 30;
pub const JANITOR_BATCH_DEFAULT: u32 = 500;
pub const JANITOR_INTERVAL_DEFAULT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct JanitorConfig {
    /// Finished jobs older than this many days are archived.
    pub retention_days: u32,
    /// Jobs moved per transaction.
    pub batch: u32,
    /// Time between passes when running as a service.
    pub interval: Duration,
}

impl Default for JanitorConfig {
    fn default() -> Self {
        Self {
            retention_days: RETENTION_DAYS_DEFAULT,
            batch: JANITOR_BATCH_DEFAULT,
            interval: JANITOR_INTERVAL_DEFAULT,
        }
    }
}

pub struct Janitor {
    store: Arc<dyn JobStore>,
    config: JanitorConfig,
}

impl Janitor {
    pub fn new(store: Arc<dyn JobStore>, config: JanitorConfig) -> Result<Self, String> {
        if config.batch == 0 {
            return Err("the janitor's batch size must be positive".into());
        }
        Ok(Self { store, config })
    }

    /// Archives everything that is due, batch by batch. Returns how many jobs moved.
    pub async fn run_once(&self) -> Result<u64, StoreError> {
        let before = self.store.clock().now() - chrono::Duration::days(i64::from(self.config.retention_days));
        let mut total = 0;
        loop {
            let moved = self.store.archive_finished(before, self.config.batch).await?;
            total += moved;
            if moved < u64::from(self.config.batch) {
                break;
            }
            // Let other writers in between batches.
            tokio::task::yield_now().await;
        }
        if total > 0 {
            tracing::info!(archived = total, "janitor archived finished jobs");
        }
        Ok(total)
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
