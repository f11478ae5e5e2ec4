//! What a worker runs, and how it reports back.
//!
//! The queue knows nothing of what a job does. A [`Handler`] is registered for each kind; the
//! worker hands it a [`JobContext`]: the claimed job (its args, its attempt, the checkpoints of
//! work an earlier attempt finished, its last progress document) and methods to replace the
//! progress document and to store checkpoints. Every report is a fenced write; when the lease is
//! lost or the job is cancelled, the context's cancellation token fires and reports return an
//! error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::batch::Writes;
use crate::job::{Control, Fence, Job, Write};

/// The code of one kind of job.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs the job to its end: its output, or why it has none.
    async fn run(&self, ctx: JobContext) -> Result<Value, JobError>;

    /// What a job of this kind is called in the errors the queue writes for it ("The analysis
    /// did not finish within 10 minutes").
    fn noun(&self) -> &'static str {
        "job"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The job cannot be done; the message is meant for whoever reads the job.
    #[error("{0}")]
    Failed(String),
    /// The job was asked to stop.
    #[error("cancelled")]
    Cancelled,
    /// The worker cannot go on with this job (its lease was lost, or its work cannot be
    /// stored). It stops without writing; the job's state is whatever the store says.
    #[error("lost: {0}")]
    Lost(String),
}

/// Progress writes closer together than this are coalesced into one.
pub const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(250);
/// How long a checkpoint write keeps retrying through a database outage before giving up.
const CHECKPOINT_RETRY_FOR: Duration = Duration::from_secs(20);

/// A running job as its handler sees it. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<Inner>,
}

struct Inner {
    job: Job,
    fence: Fence,
    writes: Writes,
    /// The progress document and the time of its last write; held across the write so writes
    /// of one job reach the database in the order they were made.
    state: Mutex<WriteState>,
    cancel: CancellationToken,
    cancel_requested: AtomicBool,
    lease_lost: AtomicBool,
}

struct WriteState {
    progress: Value,
    dirty: bool,
    last_write: Option<Instant>,
}

impl JobContext {
    pub(crate) fn new(job: Job, writes: Writes) -> Self {
        let fence = job.fence().expect("a claimed job runs under a lease");
        let progress = job.progress.clone();
        Self {
            inner: Arc::new(Inner {
                job,
                fence,
                writes,
                state: Mutex::new(WriteState { progress, dirty: false, last_write: None }),
                cancel: CancellationToken::new(),
                cancel_requested: AtomicBool::new(false),
                lease_lost: AtomicBool::new(false),
            }),
        }
    }

    /// The job as it was claimed.
    pub fn job(&self) -> &Job {
        &self.inner.job
    }

    pub fn fence(&self) -> &Fence {
        &self.inner.fence
    }

    /// The output an earlier attempt stored under `key`.
    pub fn checkpoint(&self, key: &str) -> Option<&Value> {
        self.inner.job.checkpoints.get(key)
    }

    /// Fires when the job must stop: cancelled, or its lease lost.
    pub fn cancellation(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }

    pub fn is_cancel_requested(&self) -> bool {
        self.inner.cancel_requested.load(Ordering::SeqCst)
    }

    pub fn is_lease_lost(&self) -> bool {
        self.inner.lease_lost.load(Ordering::SeqCst)
    }

    /// The progress document as last given.
    pub async fn progress(&self) -> Value {
        self.inner.state.lock().await.progress.clone()
    }

    fn stopped(&self) -> Result<(), JobError> {
        if self.is_lease_lost() {
            Err(JobError::Lost(format!("the lease on {} was lost", self.inner.job.job_id)))
        } else if self.is_cancel_requested() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Replaces the progress document. `now` writes it at once; otherwise a write comes at most
    /// every [`MIN_WRITE_INTERVAL`], the watcher writing the last one within a moment.
    pub async fn report(&self, progress: Value, now: bool) -> Result<(), JobError> {
        self.stopped()?;
        let mut state = self.inner.state.lock().await;
        state.progress = progress;
        state.dirty = true;
        if now || state.last_write.is_none_or(|t| t.elapsed() >= MIN_WRITE_INTERVAL) {
            self.write(&mut state).await;
        }
        self.stopped()
    }

    /// Stores `output` under `key` together with the progress document, at once, retrying
    /// through a short database outage. A later attempt finds it with
    /// [`checkpoint`](Self::checkpoint).
    pub async fn save(&self, key: &str, output: Value, progress: Value) -> Result<(), JobError> {
        self.stopped()?;
        let mut state = self.inner.state.lock().await;
        state.progress = progress;
        let write = Write {
            fence: self.inner.fence.clone(),
            progress: state.progress.clone(),
            checkpoints: [(key.to_string(), output)].into_iter().collect(),
        };
        let started = Instant::now();
        loop {
            match self.inner.writes.write(write.clone()).await {
                Ok(Some(control)) => {
                    state.dirty = false;
                    state.last_write = Some(Instant::now());
                    self.apply(control);
                    break;
                }
                Ok(None) => {
                    self.lose_lease();
                    break;
                }
                Err(e) if started.elapsed() < CHECKPOINT_RETRY_FOR && !self.inner.cancel.is_cancelled() => {
                    tracing::warn!(job_id = %self.inner.job.job_id, error = %e, "checkpoint write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(JobError::Lost(format!("cannot store the checkpoint '{key}': {e}"))),
            }
        }
        self.stopped()
    }

    /// Writes a pending progress document, if any. Returns whether it wrote.
    pub(crate) async fn flush(&self) -> bool {
        let mut state = self.inner.state.lock().await;
        if !state.dirty {
            return false;
        }
        self.write(&mut state).await;
        true
    }

    /// Writes the current document; a failed write leaves it dirty for the watcher to retry.
    async fn write(&self, state: &mut WriteState) {
        let write = Write {
            fence: self.inner.fence.clone(),
            progress: state.progress.clone(),
            checkpoints: Default::default(),
        };
        match self.inner.writes.write(write).await {
            Ok(Some(control)) => {
                state.dirty = false;
                state.last_write = Some(Instant::now());
                self.apply(control);
            }
            Ok(None) => self.lose_lease(),
            Err(e) => tracing::warn!(job_id = %self.inner.job.job_id, error = %e, "progress write failed; will retry"),
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
