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
use domain::backtest::BacktestId;
use domain::{ApiToken, JobStatus, RunId, ShareLink, StepProgress, TokenUsage};

use super::{Control, JobStore, Result, Settle};
use crate::clock::Clock;
use crate::events::{Event, Events};
use crate::feed::Feed;
use crate::model::{
    Backtest, Checkpoint, Fence, Finish, InsertOutcome, Job, NewBacktest, NewJob, ProgressSnapshot, UserUsage,
};
use crate::telemetry;

pub struct TimedStore {
    inner: Arc<dyn JobStore>,
}

impl TimedStore {
    pub fn new(inner: Arc<dyn JobStore>) -> Self {
        Self { inner }
    }

    async fn timed<T>(&self, statement: &'static str, op: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = op.await;
        telemetry::statement(self.inner.backend(), statement, start.elapsed());
        out
    }
}

#[async_trait]
impl JobStore for TimedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock()
    }

    fn feed(&self) -> &Feed {
        self.inner.feed()
    }

    async fn migrate(&self) -> Result<()> {
        self.inner.migrate().await
    }

    async fn ping(&self) -> Result<()> {
        self.timed("ping", self.inner.ping()).await
    }

    async fn insert(&self, job: &NewJob, active_limit: u32) -> Result<InsertOutcome> {
        self.timed("insert", self.inner.insert(job, active_limit)).await
    }

    async fn get(&self, run_id: RunId) -> Result<Option<Job>> {
        self.timed("get", self.inner.get(run_id)).await
    }

    async fn get_archived(&self, run_id: RunId) -> Result<Option<Job>> {
        self.timed("get_archived", self.inner.get_archived(run_id)).await
    }

    async fn list_for_user(
        &self,
        user_id: &str,
        status: Option<JobStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<Job>, u64)> {
        self.timed("list_for_user", self.inner.list_for_user(user_id, status, limit, offset)).await
    }

    async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<Job>> {
        self.timed("claim", self.inner.claim(owner, lease)).await
    }

    async fn heartbeat(&self, fence: &Fence, lease: Duration) -> Result<Control> {
        self.timed("heartbeat", self.inner.heartbeat(fence, lease)).await
    }

    async fn control(&self, fence: &Fence) -> Result<Control> {
        self.timed("control", self.inner.control(fence)).await
    }

    async fn save_progress(&self, fence: &Fence, progress: &ProgressSnapshot) -> Result<Control> {
        self.timed("save_progress", self.inner.save_progress(fence, progress)).await
    }

    async fn save_checkpoint(
        &self,
        fence: &Fence,
        progress: &ProgressSnapshot,
        checkpoint: &Checkpoint,
    ) -> Result<Control> {
        self.timed("save_checkpoint", self.inner.save_checkpoint(fence, progress, checkpoint)).await
    }

    async fn finish(&self, fence: &Fence, steps: &[StepProgress], finish: &Finish) -> Result<()> {
        self.timed("finish", self.inner.finish(fence, steps, finish)).await
    }

    async fn release(&self, fence: &Fence, steps: &[StepProgress]) -> Result<()> {
        self.timed("release", self.inner.release(fence, steps)).await
    }

    async fn request_cancel(&self, run_id: RunId) -> Result<Option<Job>> {
        self.timed("request_cancel", self.inner.request_cancel(run_id)).await
    }

    async fn expired_leases(&self, limit: u32) -> Result<Vec<Job>> {
        self.timed("expired_leases", self.inner.expired_leases(limit)).await
    }

    async fn overdue(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Job>> {
        self.timed("overdue", self.inner.overdue(before, limit)).await
    }

    async fn settle(&self, observed: &Job, settle: &Settle) -> Result<bool> {
        self.timed("settle", self.inner.settle(observed, settle)).await
    }

    async fn archive_finished(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        self.timed("archive_finished", self.inner.archive_finished(before, batch)).await
    }

    async fn prune_archive(&self, before: DateTime<Utc>, batch: u32) -> Result<u64> {
        self.timed("prune_archive", self.inner.prune_archive(before, batch)).await
    }

    async fn recent_steps(&self, model_id: &str, limit: u32) -> Result<Vec<Vec<StepProgress>>> {
        self.timed("recent_steps", self.inner.recent_steps(model_id, limit)).await
    }

    async fn finished_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<Job>> {
        self.timed("finished_since", self.inner.finished_since(since, limit)).await
    }

    async fn usage_since(&self, user_id: &str, since: DateTime<Utc>) -> Result<UserUsage> {
        self.timed("usage_since", self.inner.usage_since(user_id, since)).await
    }

    async fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>> {
        self.timed("count_by_status", self.inner.count_by_status()).await
    }

    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        self.timed("setting_or_insert", self.inner.setting_or_insert(name, value)).await
    }

    async fn publish(&self, event: &Event) -> Result<()> {
        self.timed("publish", self.inner.publish(event)).await
    }

    async fn listen(&self, events: Events) -> Result<Option<tokio::task::JoinHandle<()>>> {
        self.inner.listen(events).await
    }

    async fn insert_backtest(&self, backtest: &NewBacktest) -> Result<Backtest> {
        self.timed("insert_backtest", self.inner.insert_backtest(backtest)).await
    }

    async fn get_backtest(&self, backtest_id: BacktestId) -> Result<Option<Backtest>> {
        self.timed("get_backtest", self.inner.get_backtest(backtest_id)).await
    }

    async fn list_backtests(&self, user_id: &str, limit: u32) -> Result<Vec<Backtest>> {
        self.timed("list_backtests", self.inner.list_backtests(user_id, limit)).await
    }

    async fn backtest_cells(&self, backtest_id: BacktestId) -> Result<Vec<Job>> {
        self.timed("backtest_cells", self.inner.backtest_cells(backtest_id)).await
    }

    async fn mark_backtest_cancelled(&self, backtest_id: BacktestId) -> Result<()> {
        self.timed("mark_backtest_cancelled", self.inner.mark_backtest_cancelled(backtest_id)).await
    }

    async fn queued_interactive(&self) -> Result<u64> {
        self.timed("queued_interactive", self.inner.queued_interactive()).await
    }

    async fn insert_token(&self, user_id: &str, token: &ApiToken, hash: &str) -> Result<()> {
        self.timed("insert_token", self.inner.insert_token(user_id, token, hash)).await
    }

    async fn tokens_for_user(&self, user_id: &str) -> Result<Vec<ApiToken>> {
        self.timed("tokens_for_user", self.inner.tokens_for_user(user_id)).await
    }

    async fn delete_token(&self, user_id: &str, id: &str) -> Result<bool> {
        self.timed("delete_token", self.inner.delete_token(user_id, id)).await
    }

    async fn token_owner(&self, hash: &str) -> Result<Option<String>> {
        self.timed("token_owner", self.inner.token_owner(hash)).await
    }

    async fn insert_share(&self, user_id: &str, share: &ShareLink, hash: &str) -> Result<()> {
        self.timed("insert_share", self.inner.insert_share(user_id, share, hash)).await
    }

    async fn shares_for_run(&self, user_id: &str, run_id: RunId) -> Result<Vec<ShareLink>> {
        self.timed("shares_for_run", self.inner.shares_for_run(user_id, run_id)).await
    }

    async fn delete_share(&self, user_id: &str, id: &str) -> Result<bool> {
        self.timed("delete_share", self.inner.delete_share(user_id, id)).await
    }

    async fn shared_run(&self, hash: &str) -> Result<Option<(RunId, String)>> {
        self.timed("shared_run", self.inner.shared_run(hash)).await
    }

    async fn recent_usage(&self, model_id: &str, limit: u32) -> Result<Vec<(u32, TokenUsage)>> {
        self.timed("recent_usage", self.inner.recent_usage(model_id, limit)).await
    }
}
