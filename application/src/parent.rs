//! The handler of a parent job — a backtest or a batch — which the queue runs once the last of
//! its children has ended: the parent is complete. What it holds is read from its children
//! whenever it is read, so its own job has nothing to compute.

use async_trait::async_trait;
use jobs::{Handler, JobContext, JobError};

/// Completes a parent job; its noun names it in the queue's errors.
pub struct ParentJob(pub &'static str);

#[async_trait]
impl Handler for ParentJob {
    async fn run(&self, _ctx: JobContext) -> Result<serde_json::Value, JobError> {
        Ok(serde_json::json!({}))
    }

    fn noun(&self) -> &'static str {
        self.0
    }
}
