//! What a process remembers of runs' progress bodies, so that polls cost no database query.
//!
//! An entry is a run's owner, version, ETag and serialised body, as last read. The
//! [`Feed`](jobs::feed::Feed) invalidates entries as writes commit; the cache drains it under
//! its lock before every decision, so a change announced before a poll arrives is always seen
//! by that poll. While the feed is not live (no listener yet, or it is reconnecting) nothing is
//! served from memory and nothing is stored.
//!
//! A reader that misses takes a [`Ticket`] before it reads the database and hands it back with
//! what it read; if the run changed (or the feed resynchronised) in between, the read is
//! returned to its caller — it was true when made — but not kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use domain::{JobStatus, RunId};
use tokio::sync::broadcast::{self, error::TryRecvError};

use jobs::feed::{Change, Feed};

/// Entries kept before the cache starts over (each is a few kilobytes at most).
const MAX_ENTRIES: usize = 50_000;

/// A run's progress body as served.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedProgress {
    pub run_id: RunId,
    pub owner: String,
    pub version: i64,
    pub status: JobStatus,
    /// The strong ETag: it covers every byte of `body`.
    pub etag: String,
    /// The JSON of [`domain::Progress`].
    pub body: Bytes,
}

impl CachedProgress {
    pub fn is_active(&self) -> bool {
        !self.status.is_terminal()
    }
}

/// Proof of when a reader missed, to decide whether what it read may be kept.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    seq: u64,
    live: bool,
}

#[derive(Debug, Default)]
struct Entry {
    /// The sequence number of the last change announced without its version (this
    /// process's own writes).
    touched: u64,
    /// The newest version announced.
    newest: i64,
    body: Option<Arc<CachedProgress>>,
}

struct Inner {
    rx: broadcast::Receiver<Change>,
    /// Counts changes drained; every change gets the next number.
    seq: u64,
    /// The sequence number of the last resynchronisation.
    resynced: u64,
    runs: HashMap<RunId, Entry>,
}

pub struct ProgressCache {
    feed: Feed,
    inner: Mutex<Inner>,
}

impl ProgressCache {
    pub fn new(feed: Feed) -> Self {
        let rx = feed.subscribe();
        Self { feed, inner: Mutex::new(Inner { rx, seq: 0, resynced: 0, runs: HashMap::new() }) }
    }

    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// The cached body of `run_id` if it is known to be current, else a ticket to read it.
    pub fn get(&self, run_id: RunId) -> Result<Arc<CachedProgress>, Ticket> {
        // Read liveness before draining: a resync sent before it turned live is then drained.
        let live = self.feed.is_live();
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.drain();
        if live && let Some(body) = inner.runs.get(&run_id).and_then(|e| e.body.clone()) {
            return Ok(body);
        }
        Err(Ticket { seq: inner.seq, live })
    }

    /// Keeps what a reader read after a miss, unless the run changed since its ticket.
    pub fn put(&self, ticket: Ticket, body: Arc<CachedProgress>) {
        if !ticket.live {
            return;
        }
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.drain();
        if inner.resynced > ticket.seq || !self.feed.is_live() {
            return;
        }
        if inner.runs.len() >= MAX_ENTRIES && !inner.runs.contains_key(&body.run_id) {
            inner.runs.clear();
        }
        let entry = inner.runs.entry(body.run_id).or_default();
        if entry.touched > ticket.seq || entry.newest > body.version {
            return;
        }
        if entry.body.as_ref().is_some_and(|b| b.version > body.version) {
            return;
        }
        entry.body = Some(body);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("not poisoned").runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn drain(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(Change::Job { job_id, version }) => {
                    let run_id = crate::run::run_id(job_id);
                    self.seq += 1;
                    let seq = self.seq;
                    if self.runs.len() >= MAX_ENTRIES && !self.runs.contains_key(&run_id) {
                        self.resynced = seq;
                        self.runs.clear();
                    }
                    let entry = self.runs.entry(run_id).or_default();
                    match version {
                        // A notification of a version the body already shows (a read that
                        // raced the notification of the same write) keeps it.
                        Some(v) => {
                            entry.newest = entry.newest.max(v);
                            if entry.body.as_ref().is_some_and(|b| b.version < v) {
                                entry.body = None;
                            }
                        }
                        None => {
                            entry.touched = seq;
                            entry.body = None;
                        }
                    }
                }
                Ok(Change::Resync) | Err(TryRecvError::Lagged(_)) => {
                    self.seq += 1;
                    self.resynced = self.seq;
                    self.runs.clear();
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(run_id: RunId, version: i64) -> Arc<CachedProgress> {
        Arc::new(CachedProgress {
            run_id,
            owner: "u".into(),
            version,
            status: JobStatus::Running,
            etag: format!("\"v{version}\""),
            body: Bytes::from_static(b"{}"),
        })
    }

    fn run() -> RunId {
        RunId::from_uuid(uuid::Uuid::new_v4())
    }

    #[test]
    fn nothing_is_served_or_kept_until_the_feed_is_live() {
        let feed = Feed::new();
        let cache = ProgressCache::new(feed.clone());
        let id = run();
        let ticket = cache.get(id).unwrap_err();
        cache.put(ticket, body(id, 1));
        assert!(cache.get(id).is_err());
        feed.resync();
        let ticket = cache.get(id).unwrap_err();
        cache.put(ticket, body(id, 1));
        assert_eq!(cache.get(id).unwrap().version, 1);
    }

    #[test]
    fn a_change_invalidates_and_a_read_that_raced_it_is_not_kept() {
        let feed = Feed::new();
        feed.resync();
        let cache = ProgressCache::new(feed.clone());
        let id = run();
        let ticket = cache.get(id).unwrap_err();
        cache.put(ticket, body(id, 1));
        feed.touched(crate::run::job_id(id));
        let ticket = cache.get(id).unwrap_err();
        // The run changes again while the reader is at the database: its read is not kept.
        feed.touched(crate::run::job_id(id));
        cache.put(ticket, body(id, 2));
        assert!(cache.get(id).is_err());
        // A notification for a version the body already has keeps it.
        let ticket = cache.get(id).unwrap_err();
        cache.put(ticket, body(id, 3));
        feed.changed(crate::run::job_id(id), 3);
        assert_eq!(cache.get(id).unwrap().version, 3);
        feed.changed(crate::run::job_id(id), 4);
        assert!(cache.get(id).is_err());
    }

    #[test]
    fn losing_the_listener_bypasses_the_cache_and_a_resync_forgets_everything() {
        let feed = Feed::new();
        feed.resync();
        let cache = ProgressCache::new(feed.clone());
        let id = run();
        let ticket = cache.get(id).unwrap_err();
        cache.put(ticket, body(id, 1));
        feed.lost();
        assert!(cache.get(id).is_err());
        feed.resync();
        assert!(cache.get(id).is_err(), "a resync drops what was known before it");
        assert!(cache.is_empty());
    }
}
