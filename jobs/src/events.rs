//! Wake-ups inside a process, fed from other processes where the backend can.
//!
//! A worker waiting for work sleeps on [`Events::subscribe`] with a poll interval as its
//! fallback: a missed notification costs at most one interval, never a job. On SQLite every
//! producer and consumer shares the process, so a local broadcast is the whole story; on
//! PostgreSQL the store also `NOTIFY`s and each process's listener feeds what it hears into
//! its local broadcast.

use crate::job::JobId;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A job became pending: a new one, or one rescued, released or woken by its children.
    JobAvailable,
    /// Someone asked a running job to stop.
    CancelRequested { job_id: JobId },
    /// The notification connection came back: anything may have been missed.
    Reconnected,
}

/// A process's event bus. Clones share it.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Self {
        // Receivers that fall behind see `Lagged` and treat it as "something happened".
        let (tx, _) = broadcast::channel(256);
        Self { tx }
    }

    /// Delivers an event to this process's subscribers.
    pub fn send_local(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
