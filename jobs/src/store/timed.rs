//! A [`JobStore`] that times every operation of the store it wraps, by name, into
//! [`telemetry::DB_STATEMENT`](crate::telemetry::DB_STATEMENT).
//!
//! One wrapper rather than timers inside each backend: the backends stay plain SQL, and both
//! are measured under the same names. Each name is one trait method — one statement or one
//! short transaction — so a slow claim or a slow insert shows as such. Failed operations are
//! timed too: a statement that waits for a dead database is exactly what should show.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{JobStore, Result};
use crate::events::{Event, Events};
use crate::feed::Feed;
use crate::job::{
    Control, Count, Fence, Filter, Finish, Insert, InsertOutcome, Job, JobId, Page, Settle, Stuck, Write,
};
use crate::telemetry;

pub struct TimedStore {
    inner: Arc<dyn JobStore>,
    backend: &'static str,
}

impl TimedStore {
    pub fn new(inner: Arc<dyn JobStore>, backend: &'static str) -> Self {
        Self { inner, backend }
    }

    async fn timed<T>(&self, statement: &'static str, op: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = op.await;
        telemetry::statement(self.backend, statement, start.elapsed());
        out
    }
}

#[async_trait]
impl JobStore for TimedStore {
    fn feed(&self) -> &Feed {
        self.inner.feed()
    }

    async fn insert(&self, insert: &Insert) -> Result<InsertOutcome> {
        self.timed("insert", self.inner.insert(insert)).await
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>> {
        self.timed("get", self.inner.get(id)).await
    }

    async fn list(&self, filter: &Filter) -> Result<Page> {
        self.timed("list", self.inner.list(filter)).await
    }

    async fn claim(&self, owner: &str, lease: Duration, limit: u32, kinds: &[String]) -> Result<Vec<Job>> {
        let claimed = self.timed("claim", self.inner.claim(owner, lease, limit, kinds)).await;
        if let Ok(jobs) = &claimed {
            telemetry::batch(self.backend, "claim", jobs.len());
        }
        claimed
    }

    async fn control(&self, fences: &[Fence], extend: Option<Duration>) -> Result<Vec<Option<Control>>> {
        let name = if extend.is_some() { "heartbeat" } else { "control" };
        telemetry::batch(self.backend, name, fences.len());
        self.timed(name, self.inner.control(fences, extend)).await
    }

    async fn write(&self, writes: &[Write]) -> Result<Vec<Option<Control>>> {
        telemetry::batch(self.backend, "write", writes.len());
        self.timed("write", self.inner.write(writes)).await
    }

    async fn finish(&self, finishes: &[Finish]) -> Result<Vec<bool>> {
        telemetry::batch(self.backend, "finish", finishes.len());
        self.timed("finish", self.inner.finish(finishes)).await
    }

    async fn cancel(&self, id: JobId) -> Result<Option<Job>> {
        self.timed("cancel", self.inner.cancel(id)).await
    }

    async fn stuck(&self, slack: Duration, limit: u32) -> Result<Vec<(Job, Stuck)>> {
        self.timed("stuck", self.inner.stuck(slack, limit)).await
    }

    async fn settle(&self, observed: &Job, settle: &Settle) -> Result<bool> {
        self.timed("settle", self.inner.settle(observed, settle)).await
    }

    async fn archive(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        self.timed("archive", self.inner.archive(before, batch)).await
    }

    async fn prune(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        self.timed("prune", self.inner.prune(before, batch)).await
    }

    async fn counts(&self) -> Result<Vec<Count>> {
        self.timed("counts", self.inner.counts()).await
    }

    async fn publish(&self, event: &Event) -> Result<()> {
        self.timed("publish", self.inner.publish(event)).await
    }

    async fn listen(&self, events: Events) -> Result<Option<tokio::task::JoinHandle<()>>> {
        self.inner.listen(events).await
    }
}
