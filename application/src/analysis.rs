//! The analysis as the queue runs it: the handler of jobs of kind [`crate::run::KIND`], calling the
//! pipeline with a reporter that keeps the run's progress document — its steps, and what its
//! stored steps cost — and writes it through the job's context.
//!
//! A step's output is stored with the document that counts its cost, in one write, so a
//! resumed attempt finds the two together: it skips the step and its cost is counted once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agents::{Pipeline, PipelineError, Reporter};
use async_trait::async_trait;
use domain::{Budget, JobStatus, LogEntry, LogEvent, StepStatus, Usage};
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
    /// Where the text the models write is kept; `None` keeps none.
    text: Option<Store>,
    /// Where each run's log is kept; `None` keeps none (it still goes to `tracing`).
    log: Option<Store>,
}

/// A running step's text is stored at least this often while its model writes...
pub const TEXT_FLUSH_EVERY: Duration = Duration::from_millis(250);
/// ...and as soon as this many bytes of it are waiting.
pub const TEXT_FLUSH_BYTES: usize = 2_048;

impl AnalysisJob {
    pub fn new(pipeline: Arc<Pipeline>, clock: Arc<dyn Clock>) -> Self {
        Self { pipeline, clock, daily: None, text: None, log: None }
    }

    /// Keeps each run's log in `store` (see [`Store::log_of`]).
    pub fn with_log(mut self, store: Store) -> Self {
        self.log = Some(store);
        self
    }

    /// Keeps the text the models write, step by step, in `store` (see [`Store::text_after`]).
    pub fn with_text(mut self, store: Store) -> Self {
        self.text = Some(store);
        self
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
        let text = match &self.text {
            // A resumed attempt goes on numbering the pieces of steps an earlier one began.
            Some(store) => {
                let parts = store
                    .text_parts(crate::run::run_id(run_id))
                    .await
                    .map_err(|e| JobError::Lost(format!("reading the run's text: {e}")))?;
                let steps = parts
                    .into_iter()
                    .map(|(step, n)| (step, StepText { next_part: n, ..StepText::default() }))
                    .collect();
                Some(TextSink { store: store.clone(), steps: Mutex::new(steps), flushing: Mutex::new(()) })
            }
            None => None,
        };
        let reporter = RunReporter {
            ctx: ctx.clone(),
            clock: self.clock.clone(),
            daily: self.daily.clone(),
            state: Mutex::new((Tracker::new(steps), stored.usage)),
            text,
            log: self.log.clone(),
            pace: std::sync::Mutex::default(),
        };
        reporter.write_log(None, LogEvent::Started { attempt: job.attempt }).await;
        let done = |reused: bool| -> Vec<String> {
            let done = stored.steps.iter().filter(|s| s.status == StepStatus::Completed && s.reused == reused);
            done.map(|s| s.name.clone()).collect()
        };
        if let (Some(rerun), 1) = (&args.rerun_of, job.attempt) {
            reporter.log(None, LogEvent::Reused { from: rerun.run_id, steps: done(true) }).await?;
        }
        let resumed = done(false);
        if !resumed.is_empty() {
            reporter.log(None, LogEvent::Resumed { steps: resumed }).await?;
        }
        let outcome = tokio::select! {
            outcome = self.pipeline.run(&args.start, &reporter) => outcome,
            never = reporter.flush_text_every(TEXT_FLUSH_EVERY) => match never {},
        };
        match outcome {
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
                reporter.write_log(None, ended(JobStatus::Completed, None, spent)).await;
                Ok(serde_json::to_value(result).expect("plain data"))
            }
            Err(PipelineError::Failed { step, message }) => {
                let _ = reporter.flush_text(None).await;
                reporter.fail(step.as_deref()).await;
                tracing::warn!(runId = %run_id, status = "failed", error = %message, "Failed");
                let spent = reporter.state.lock().await.1;
                reporter.write_log(step.as_deref(), ended(JobStatus::Failed, Some(message.clone()), spent)).await;
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
    text: Option<TextSink>,
    log: Option<Store>,
    /// Per running step: when its model first wrote, and the completion tokens of its turns.
    pace: std::sync::Mutex<HashMap<String, (chrono::DateTime<chrono::Utc>, u64)>>,
}

/// Where a run's text goes: each step's pieces not yet stored, and how many it has stored.
struct TextSink {
    store: Store,
    steps: Mutex<HashMap<String, StepText>>,
    /// Held by the one flush under way.
    flushing: Mutex<()>,
}

#[derive(Default)]
struct StepText {
    /// The number of the next piece to store.
    next_part: u32,
    /// Written by the model, not yet stored.
    pending: String,
    /// The end of what is stored, for the step object.
    tail: String,
}

impl RunReporter {
    /// Stores what every step has waiting, every `interval`, until dropped.
    async fn flush_text_every(&self, interval: Duration) -> std::convert::Infallible {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A write that fails is tried again at the next tick; the text stays waiting.
            let _ = self.flush_text(None).await;
        }
    }

    /// Stores the waiting text of `only` that step, or of every step, one piece per step,
    /// then puts the stored tails in the step objects.
    async fn flush_text(&self, only: Option<&str>) -> Result<(), JobError> {
        let Some(sink) = &self.text else {
            return Ok(());
        };
        let run_id = crate::run::run_id(self.ctx.job().job_id);
        // One flush at a time, so that pieces are stored in the order they were numbered; the
        // steps' buffers are locked only to take the waiting text out, never across a write, so
        // a model's next piece does not wait on the database.
        let _one_at_a_time = sink.flushing.lock().await;
        let taken: Vec<(String, u32, String)> = {
            let mut steps = sink.steps.lock().await;
            steps
                .iter_mut()
                .filter(|(name, text)| !text.pending.is_empty() && only.is_none_or(|o| o == name.as_str()))
                .map(|(name, text)| {
                    text.next_part += 1;
                    (name.clone(), text.next_part - 1, std::mem::take(&mut text.pending))
                })
                .collect()
        };
        let mut tails = Vec::new();
        let mut taken = taken.into_iter();
        while let Some((name, part, piece)) = taken.next() {
            let stored = sink.store.insert_text(run_id, &name, part, &piece, self.clock.now()).await;
            let mut steps = sink.steps.lock().await;
            if let Err(e) = stored {
                // What was not stored waits again, in front of what came since, under the same
                // numbers: the next flush tries it again.
                for (name, part, piece) in std::iter::once((name.clone(), part, piece)).chain(taken) {
                    let text = steps.entry(name).or_default();
                    text.pending.insert_str(0, &piece);
                    text.next_part = part;
                }
                return Err(JobError::Lost(format!("storing the text of '{name}': {e}")));
            }
            let text = steps.entry(name.clone()).or_default();
            text.tail.push_str(&piece);
            let keep = domain::progress::tail(&text.tail, domain::progress::TEXT_TAIL_MAX).len();
            text.tail.drain(..text.tail.len() - keep);
            tails.push((name, text.tail.clone()));
        }
        if tails.is_empty() {
            return Ok(());
        }
        let (tracker, usage) = &mut *self.state.lock().await;
        let changed = tails.iter().fold(false, |changed, (name, tail)| tracker.show_text(name, tail) || changed);
        if changed {
            self.ctx.report(Self::document(tracker, *usage), false).await?;
        }
        Ok(())
    }

    /// Adds an event to the run's log without tracing it (for events traced in their own words).
    async fn write_log(&self, step: Option<&str>, event: LogEvent) {
        if let Some(store) = &self.log {
            let entry = LogEntry { at: self.clock.now(), step: step.map(str::to_string), event };
            store.append_log(crate::run::run_id(self.ctx.job().job_id), &entry).await;
        }
    }

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

    async fn step_text(&self, step: &str, delta: &str) -> Result<(), JobError> {
        {
            // Once per step: not a key's allocation for every piece of text.
            let mut pace = self.pace.lock().expect("not poisoned");
            if !pace.contains_key(step) {
                pace.insert(step.to_string(), (self.clock.now(), 0));
            }
        }
        let Some(sink) = &self.text else {
            return Ok(());
        };
        let full = {
            let mut steps = sink.steps.lock().await;
            let text = steps.entry(step.to_string()).or_default();
            text.pending.push_str(delta);
            text.pending.len() >= TEXT_FLUSH_BYTES
        };
        self.state.lock().await.0.heard(step, self.clock.now());
        if full { self.flush_text(Some(step)).await } else { Ok(()) }
    }

    /// A stall is written at once: it is what a watcher waits to see.
    async fn step_stalled(&self, step: &str, stall: Option<&domain::Stall>) -> Result<(), JobError> {
        let (tracker, usage) = &mut *self.state.lock().await;
        if tracker.stall(step, stall) {
            match stall {
                Some(s) => tracing::warn!(
                    runId = %self.ctx.job().job_id,
                    step,
                    model = %s.model,
                    givesUpAt = %s.gives_up_at,
                    "Stalled: no output from the model"
                ),
                None => tracing::info!(runId = %self.ctx.job().job_id, step, "Stall over"),
            }
            if let Some(s) = stall {
                let event = LogEvent::Stalled { model: s.model.clone(), since: s.since, gives_up_at: s.gives_up_at };
                self.write_log(Some(step), event).await;
            }
            self.ctx.report(Self::document(tracker, *usage), true).await?;
        }
        Ok(())
    }

    async fn complete_step(&self, step: &str, output: Value, cost: Usage, model: &str) -> Result<(), JobError> {
        // The step's text is stored before the step is seen complete.
        self.flush_text(Some(step)).await?;
        let (tracker, usage) = &mut *self.state.lock().await;
        if !tracker.complete(step, self.clock.now()) {
            return Err(JobError::Lost(format!("step '{step}' is not part of this run or already finished")));
        }
        let mut spent = *usage;
        spent.add(cost);
        self.ctx.save(step, output, Self::document(tracker, spent)).await?;
        *usage = spent;
        telemetry::model_usage(model, cost);
        let finished = tracker.steps().iter().find(|s| s.name == step);
        if let Some(ms) = finished.and_then(|s| s.duration_ms) {
            telemetry::step_finished(step, std::time::Duration::from_millis(ms));
        }
        let wrote = self.pace.lock().expect("not poisoned").remove(step);
        if let (Some((first, tokens)), Some(started), Some(ended)) =
            (wrote, finished.and_then(|s| s.started_at), finished.and_then(|s| s.completed_at))
        {
            let secs = |d: chrono::TimeDelta| d.to_std().unwrap_or_default();
            telemetry::model_pace(model, secs(first - started), tokens + cost.tokens.completion, secs(ended - first));
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
        if let Some((_, tokens)) = self.pace.lock().expect("not poisoned").get_mut(step) {
            *tokens += cost.tokens.completion;
        }
        let (tracker, usage) = &mut *self.state.lock().await;
        tracker.advance(step, percent, None);
        let mut spent = *usage;
        spent.add(cost);
        self.ctx.save(key, output, Self::document(tracker, spent)).await?;
        *usage = spent;
        telemetry::model_usage(model, cost);
        Ok(())
    }

    async fn log(&self, step: Option<&str>, event: LogEvent) -> Result<(), JobError> {
        tracing::info!(runId = %self.ctx.job().job_id, step, kind = event.kind(), "{}", event.describe());
        self.write_log(step, event).await;
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

/// The log's last word on a run that ended on its worker.
fn ended(status: JobStatus, message: Option<String>, spent: Usage) -> LogEvent {
    LogEvent::Ended { status, message, calls: spent.calls, tokens: spent.tokens.total(), cost_usd: spent.cost_usd }
}
