//! The analysis as the queue runs it: the handler of jobs of kind [`crate::run::KIND`], calling the
//! pipeline with a reporter that keeps the run's progress document — its steps, and what its
//! stored steps cost — and writes it through the job's context.
//!
//! A step's output is stored with the document that counts its cost, in one write, so a
//! resumed attempt finds the two together: it skips the step and its cost is counted once.

use std::sync::Arc;

use agents::{Pipeline, PipelineError, Reporter};
use async_trait::async_trait;
use domain::{Budget, Usage};
use jobs::{Clock, Handler, JobContext, JobError};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::budget::{self, DailyBudget};
use crate::run::{RunArgs, RunProgress};
use crate::store::Store;
use crate::telemetry;
use crate::tracker::{Tracker, close_steps, reset_unfinished_steps};

/// The handler of analysis runs.
pub struct AnalysisJob {
    pipeline: Arc<Pipeline>,
    clock: Arc<dyn Clock>,
    /// The owners' daily budget, and where their spending is read.
    daily: Option<(DailyBudget, Store)>,
}

impl AnalysisJob {
    pub fn new(pipeline: Arc<Pipeline>, clock: Arc<dyn Clock>) -> Self {
        Self { pipeline, clock, daily: None }
    }

    /// Holds each run to what is left of its owner's `budget`, read before each model step.
    pub fn with_daily_budget(mut self, budget: DailyBudget, store: Store) -> Self {
        self.daily = (!budget.is_off()).then_some((budget, store));
        self
    }
}

#[async_trait]
impl Handler for AnalysisJob {
    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        let job = ctx.job();
        let args: RunArgs = serde_json::from_value(job.args.clone())
            .map_err(|e| JobError::Failed(format!("The run's request cannot be read: {e}.")))?;
        let stored: RunProgress = serde_json::from_value(job.progress.clone()).unwrap_or_default();
        // A resumed attempt starts over every step the last one did not finish.
        let steps = if stored.steps.is_empty() {
            RunProgress::new(&args.start).steps
        } else {
            reset_unfinished_steps(&stored.steps)
        };
        let run_id = job.job_id;
        tracing::info!(
            runId = %run_id,
            symbol = %args.start.symbol,
            modelId = %args.start.model_id,
            attempt = job.attempt,
            worker = job.lease_owner.as_deref().unwrap_or_default(),
            "Started"
        );
        let reporter = RunReporter {
            ctx: ctx.clone(),
            clock: self.clock.clone(),
            daily: self.daily.clone(),
            state: Mutex::new((Tracker::new(steps), stored.usage)),
        };
        match self.pipeline.run(&args.start, &reporter).await {
            Ok(result) => {
                let spent = reporter.state.lock().await.1;
                let started = job.started_at.unwrap_or(job.created_at);
                tracing::info!(
                    runId = %run_id,
                    durationMs = (self.clock.now() - started).num_milliseconds().max(0),
                    llmCalls = spent.calls,
                    tokens = spent.tokens.total(),
                    cost = spent.cost_usd,
                    "Completed"
                );
                Ok(serde_json::to_value(result).expect("plain data"))
            }
            Err(PipelineError::Failed { step, message }) => {
                reporter.fail(step.as_deref()).await;
                tracing::warn!(runId = %run_id, status = "failed", error = %message, "Failed");
                Err(JobError::Failed(message))
            }
            Err(PipelineError::Reporter(e)) => Err(e),
        }
    }

    fn noun(&self) -> &'static str {
        "analysis"
    }
}

/// The pipeline's reporter: a run's steps and spending, written as its progress document.
struct RunReporter {
    ctx: JobContext,
    clock: Arc<dyn Clock>,
    daily: Option<(DailyBudget, Store)>,
    state: Mutex<(Tracker, Usage)>,
}

impl RunReporter {
    fn document(tracker: &Tracker, usage: Usage) -> Value {
        serde_json::to_value(RunProgress::of(tracker.clone(), usage)).expect("plain data")
    }

    /// Closes the steps of a run that failed at `step`: that one failed, every other unfinished
    /// one skipped. The write is the run's last word; if it cannot be made the steps are
    /// closed when the run is read.
    async fn fail(&self, step: Option<&str>) {
        let (tracker, usage) = &mut *self.state.lock().await;
        let failed: Vec<&str> = step.into_iter().collect();
        *tracker = Tracker::new(close_steps(tracker.steps(), &failed, self.clock.now()));
        let _ = self.ctx.report(Self::document(tracker, *usage), true).await;
    }
}

#[async_trait]
impl Reporter for RunReporter {
    type Error = JobError;

    fn checkpoint(&self, step: &str) -> Option<Value> {
        self.ctx.checkpoint(step).cloned()
    }

    async fn start_step(&self, step: &str, detail: Option<&str>) -> Result<(), JobError> {
        let (tracker, usage) = &mut *self.state.lock().await;
        if tracker.start(step, detail.map(str::to_string), self.clock.now()) {
            let progress = crate::tracker::overall_percent(tracker.steps());
            tracing::info!(runId = %self.ctx.job().job_id, step, progress, "Progress");
            self.ctx.report(Self::document(tracker, *usage), true).await?;
        }
        Ok(())
    }

    async fn step_progress(&self, step: &str, percent: u8, detail: Option<&str>) -> Result<(), JobError> {
        let (tracker, usage) = &mut *self.state.lock().await;
        if tracker.advance(step, percent, detail.map(str::to_string)) {
            self.ctx.report(Self::document(tracker, *usage), false).await?;
        }
        Ok(())
    }

    async fn complete_step(&self, step: &str, output: Value, cost: Usage, model: &str) -> Result<(), JobError> {
        let (tracker, usage) = &mut *self.state.lock().await;
        if !tracker.complete(step, self.clock.now()) {
            return Err(JobError::Lost(format!("step '{step}' is not part of this run or already finished")));
        }
        let mut spent = *usage;
        spent.add(cost);
        self.ctx.save(step, output, Self::document(tracker, spent)).await?;
        *usage = spent;
        telemetry::model_usage(model, cost);
        if let Some(ms) = tracker.steps().iter().find(|s| s.name == step).and_then(|s| s.duration_ms) {
            telemetry::step_finished(step, std::time::Duration::from_millis(ms));
        }
        let progress = crate::tracker::overall_percent(tracker.steps());
        tracing::info!(runId = %self.ctx.job().job_id, step, progress, "Progress");
        Ok(())
    }

    async fn save_turn(
        &self,
        step: &str,
        key: &str,
        percent: u8,
        output: Value,
        cost: Usage,
        model: &str,
    ) -> Result<(), JobError> {
        let (tracker, usage) = &mut *self.state.lock().await;
        tracker.advance(step, percent, None);
        let mut spent = *usage;
        spent.add(cost);
        self.ctx.save(key, output, Self::document(tracker, spent)).await?;
        *usage = spent;
        telemetry::model_usage(model, cost);
        Ok(())
    }

    /// The daily budget less what the owner's runs spent in the window, read now, this run
    /// aside: the database holds what every run of the owner has spent so far (on every worker),
    /// so runs of one owner running at once share what is left.
    async fn daily_left(&self) -> Result<Option<Budget>, JobError> {
        let Some((budget, store)) = &self.daily else {
            return Ok(None);
        };
        // This run's own spending must be in the database before it is subtracted back out.
        self.ctx.flush().await?;
        let now = self.clock.now();
        let mut used = store
            .usage_since(&self.ctx.job().owner, now - budget::WINDOW)
            .await
            .map_err(|e| JobError::Lost(format!("reading the daily budget: {e}")))?;
        let own = self.state.lock().await.1;
        used.tokens = used.tokens.saturating_sub(own.tokens.total());
        used.cost_usd = (used.cost_usd - own.cost_usd).max(0.0);
        Ok(Some(budget.remaining(&used)))
    }
}
