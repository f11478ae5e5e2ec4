//! The change feed: which jobs changed, as soon as this process can know.
//!
//! Every store write that bumps a job's `version` announces the job here once it has
//! committed. Writes made by other processes arrive through the store's listener: on
//! PostgreSQL a trigger `NOTIFY`s `job_id version` on every version change; on SQLite a
//! watcher notices commits from other connections (`pragma data_version`) and reads which
//! jobs moved. The progress cache and the live streams trust the feed only while it is
//! [`live`](Feed::is_live): while the listener is down they read the database every time, and
//! when it comes back a [`Change::Resync`] tells them to forget what they knew.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::broadcast;

use crate::job::JobId;

/// Changes a slow subscriber may fall behind by before it must resynchronise.
const CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The job changed; `version` is its new version when the announcer knows it.
    Job { job_id: JobId, version: Option<i64> },
    /// Anything may have changed (the listener reconnected): forget everything.
    Resync,
}

/// A process's change feed. Clones share it.
#[derive(Debug, Clone)]
pub struct Feed {
    tx: broadcast::Sender<Change>,
    live: Arc<AtomicBool>,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    /// A feed that is not live until a listener says so.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        Self { tx, live: Arc::new(AtomicBool::new(false)) }
    }

    /// A write of this process committed a new version of `job_id`.
    pub fn touched(&self, job_id: JobId) {
        let _ = self.tx.send(Change::Job { job_id, version: None });
    }

    /// Another process (or this one, heard back) wrote `version` of `job_id`.
    pub fn changed(&self, job_id: JobId, version: i64) {
        let _ = self.tx.send(Change::Job { job_id, version: Some(version) });
    }

    /// Whether every change made anywhere reaches this feed. False before the listener starts
    /// and while it reconnects.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// The listener lost its connection: changes from other processes may be missed.
    pub fn lost(&self) {
        self.live.store(false, Ordering::Release);
    }

    /// The listener is (back) in place: subscribers drop what they knew, then trust the feed.
    pub fn resync(&self) {
        let _ = self.tx.send(Change::Resync);
        self.live.store(true, Ordering::Release);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}
