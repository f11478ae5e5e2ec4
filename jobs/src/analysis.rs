//! What the engine runs, and how it reports back.
//!
//! The engine knows nothing of markets or models. It hands an [`Analysis`] a [`JobContext`]:
//! the run's spec, the checkpoints of steps an earlier attempt finished, and methods to report
//! steps starting, moving and completing. Completing a step stores its output at once, so a
//! later attempt can skip it. Every report is a fenced write; when the lease is lost or the
//! run is cancelled, the context's cancellation token fires and reports return an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::{AnalysisResult, StepProgress, TokenUsage};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::model::{Checkpoint, Fence, JobSpec};
use crate::store::{Control, JobStore, StoreError};
use crate::telemetry;
use crate::tracker::Tracker;

/// The pipeline a worker runs for each job.
#[async_trait]
pub trait Analysis: Send + Sync + 'static {
    async fn run(&self, ctx: JobContext) -> Result<AnalysisResult, AnalysisError>;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// The analysis cannot produce a result; `message` is meant for the user.
    #[error("{message}")]
    Failed { step: Option<String>, message: String },
    /// The run was asked to stop.
    #[error("cancelled")]
    Cancelled,
    /// The engine cannot go on with this job (its lease was lost, or progress cannot be stored).
    /// The worker stops without writing; the job's state is whatever the store says.
    #[error("engine: {0}")]
    Engine(String),
}

impl AnalysisError {
    pub fn failed(step: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Failed { step: Some(step.into()), message: message.into() }
    }
}

/// What a finished step (or turn) cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepUsage {
    pub llm_calls: u32,
    pub tokens: TokenUsage,
    /// US dollars at the catalog's prices.
    pub cost_usd: f64,
}

/// Progress reports closer together than this are coalesced into one write.
const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(250);
/// How long a checkpoint write keeps retrying through a database outage before giving up.
const CHECKPOINT_RETRY_FOR: Duration = Duration::from_secs(20);

/// A running job as its analysis sees it. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<Inner>,
}

struct Inner {
    spec: JobSpec,
    fence: Fence,
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    checkpoints: BTreeMap<String, Value>,
    /// The step list and the time of its last write; held across the write so writes of one
    /// job reach the database in the order they were made.
    state: Mutex<WriteState>,
    cancel: CancellationToken,
    cancel_requested: AtomicBool,
    lease_lost: AtomicBool,
    /// What the run has cost so far, every attempt's stored steps included.
    spent: std::sync::Mutex<StepUsage>,
}

struct WriteState {
    tracker: Tracker,
    dirty: bool,
    last_write: Option<Instant>,
}

impl JobContext {
    pub(crate) fn new(
        spec: JobSpec,
        fence: Fence,
        steps: Vec<StepProgress>,
        checkpoints: BTreeMap<String, Value>,
        spent: StepUsage,
        store: Arc<dyn JobStore>,
    ) -> Self {
        let clock = store.clock();
        Self {
            inner: Arc::new(Inner {
                spec,
                fence,
                store,
                clock,
                checkpoints,
                state: Mutex::new(WriteState { tracker: Tracker::new(steps), dirty: false, last_write: None }),
                cancel: CancellationToken::new(),
                cancel_requested: AtomicBool::new(false),
                lease_lost: AtomicBool::new(false),
                spent: std::sync::Mutex::new(spent),
            }),
        }
    }

    pub fn spec(&self) -> &JobSpec {
        &self.inner.spec
    }

    pub fn fence(&self) -> &Fence {
        &self.inner.fence
    }

    /// The stored output of a step an earlier attempt completed.
    pub fn checkpoint(&self, step: &str) -> Option<&Value> {
        self.inner.checkpoints.get(step)
    }

    /// Fires when the run must stop: cancelled by a user, or its lease lost.
    pub fn cancellation(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }

    pub fn is_cancel_requested(&self) -> bool {
        self.inner.cancel_requested.load(Ordering::SeqCst)
    }

    pub fn is_lease_lost(&self) -> bool {
        self.inner.lease_lost.load(Ordering::SeqCst)
    }

    /// The model calls, tokens and cost of every stored step and turn of the run.
    pub fn spent(&self) -> StepUsage {
        *self.inner.spent.lock().expect("not poisoned")
    }

    /// The `Progress` log line, at a step's start and end (never for the ticks between).
    fn log_progress(&self, state: &WriteState, step: &str) {
        tracing::info!(
            runId = %self.inner.spec.run_id,
            step,
            progress = state.tracker.snapshot().progress_percent,
            "Progress"
        );
    }

    pub async fn steps(&self) -> Vec<StepProgress> {
        self.inner.state.lock().await.tracker.steps().to_vec()
    }

    fn stopped(&self) -> Result<(), AnalysisError> {
        if self.is_lease_lost() {
            Err(AnalysisError::Engine(format!("lease on {} lost", self.inner.spec.run_id)))
        } else if self.is_cancel_requested() {
            Err(AnalysisError::Cancelled)
        } else {
            Ok(())
        }
    }

    pub async fn start_step(&self, step: &str, detail: Option<&str>) -> Result<(), AnalysisError> {
        self.stopped()?;
        let mut state = self.inner.state.lock().await;
        if state.tracker.start(step, detail.map(str::to_string), self.inner.clock.now()) {
            self.log_progress(&state, step);
            self.write(&mut state).await;
        }
        self.stopped()
    }

    /// Reports a step's own progress (0–100). Frequent reports are coalesced; the watcher
    /// writes the last one within a moment.
    pub async fn step_progress(&self, step: &str, percent: u8, detail: Option<&str>) -> Result<(), AnalysisError> {
        self.stopped()?;
        let mut state = self.inner.state.lock().await;
        if state.tracker.advance(step, percent, detail.map(str::to_string)) {
            state.dirty = true;
            if state.last_write.is_none_or(|t| t.elapsed() >= MIN_WRITE_INTERVAL) {
                self.write(&mut state).await;
            }
        }
        self.stopped()
    }

    /// Completes a step and stores its output, retrying through a short database outage.
    /// Completes `step` with its checkpoint `output` and what its calls to `model_id` cost.
    pub async fn complete_step(
        &self,
        step: &str,
        output: Value,
        usage: StepUsage,
        model_id: &str,
    ) -> Result<(), AnalysisError> {
        self.stopped()?;
        let mut state = self.inner.state.lock().await;
        if !state.tracker.complete(step, self.inner.clock.now()) {
            return Err(AnalysisError::Engine(format!("step '{step}' is not part of this run or already finished")));
        }
        let checkpoint = Checkpoint {
            step: step.to_string(),
            output,
            llm_calls: usage.llm_calls,
            tokens: usage.tokens,
            cost_usd: usage.cost_usd,
        };
        self.store_checkpoint(&mut state, checkpoint, model_id).await?;
        self.log_progress(&state, step);
        if let Some(ms) = state.tracker.steps().iter().find(|s| s.name == step).and_then(|s| s.duration_ms) {
            telemetry::step_finished(step, Duration::from_millis(ms));
        }
        Ok(())
    }

    /// Stores one turn of a step that takes several (a debate round), under `key`, without
    /// completing the step, and moves the step's progress to `percent`. A later attempt finds
    /// the turn with [`JobContext::checkpoint`]`(key)` and does not take it again.
    pub async fn save_turn(
        &self,
        step: &str,
        key: &str,
        percent: u8,
        output: Value,
        usage: StepUsage,
        model_id: &str,
    ) -> Result<(), AnalysisError> {
        self.stopped()?;
        let mut state = self.inner.state.lock().await;
        state.tracker.advance(step, percent, None);
        let checkpoint = Checkpoint {
            step: key.to_string(),
            output,
            llm_calls: usage.llm_calls,
            tokens: usage.tokens,
            cost_usd: usage.cost_usd,
        };
        self.store_checkpoint(&mut state, checkpoint, model_id).await
    }

    /// Writes a checkpoint with the current progress, retrying through a short outage; its
    /// calls count in the metrics under `model_id`.
    async fn store_checkpoint(
        &self,
        state: &mut WriteState,
        checkpoint: Checkpoint,
        model_id: &str,
    ) -> Result<(), AnalysisError> {
        let step = checkpoint.step.clone();
        let snapshot = state.tracker.snapshot();
        let started = Instant::now();
        loop {
            match self.inner.store.save_checkpoint(&self.inner.fence, &snapshot, &checkpoint).await {
                Ok(control) => {
                    state.dirty = false;
                    state.last_write = Some(Instant::now());
                    {
                        let mut spent = self.inner.spent.lock().expect("not poisoned");
                        spent.llm_calls += checkpoint.llm_calls;
                        spent.tokens.prompt += checkpoint.tokens.prompt;
                        spent.tokens.completion += checkpoint.tokens.completion;
                        spent.cost_usd += checkpoint.cost_usd;
                    }
                    telemetry::model_usage(model_id, checkpoint.llm_calls, checkpoint.tokens, checkpoint.cost_usd);
                    self.apply(control);
                    break;
                }
                Err(StoreError::LeaseLost(_)) => {
                    self.lose_lease();
                    break;
                }
                Err(e) if started.elapsed() < CHECKPOINT_RETRY_FOR && !self.inner.cancel.is_cancelled() => {
                    tracing::warn!(run_id = %self.inner.spec.run_id, error = %e, "checkpoint write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(AnalysisError::Engine(format!("cannot store the checkpoint of '{step}': {e}"))),
            }
        }
        self.stopped()
    }

    /// Writes pending progress, if any, as any report does. Returns whether it wrote.
    pub(crate) async fn flush(&self) -> bool {
        let mut state = self.inner.state.lock().await;
        if !state.dirty {
            return false;
        }
        self.write(&mut state).await;
        true
    }

    /// Writes the current snapshot; a failed write leaves it dirty for the watcher to retry.
    async fn write(&self, state: &mut WriteState) {
        state.dirty = true;
        let snapshot = state.tracker.snapshot();
        match self.inner.store.save_progress(&self.inner.fence, &snapshot).await {
            Ok(control) => {
                state.dirty = false;
                state.last_write = Some(Instant::now());
                self.apply(control);
            }
            Err(StoreError::LeaseLost(_)) => self.lose_lease(),
            Err(e) => tracing::warn!(run_id = %self.inner.spec.run_id, error = %e, "progress write failed; will retry"),
        }
    }

    pub(crate) fn apply(&self, control: Control) {
        if control.cancel_requested {
            self.request_cancel();
        }
    }

    pub(crate) fn request_cancel(&self) {
        self.inner.cancel_requested.store(true, Ordering::SeqCst);
        self.inner.cancel.cancel();
    }

    pub(crate) fn lose_lease(&self) {
        self.inner.lease_lost.store(true, Ordering::SeqCst);
        self.inner.cancel.cancel();
    }
}
