//! What a worker runs, and how it reports back.
//!
//! The queue knows nothing of what a job does. A [`Handler`] is registered for each kind; the
//! worker hands it a [`JobContext`]: the claimed job (its args, its attempt, the checkpoints of
//! work an earlier attempt finished, its last progress document) and methods to replace the
//! progress document and to store checkpoints.
//!
//! Reports do not wait for the database. A context keeps what is not yet written — the latest
//! document and the checkpoints since the last write — and has at most one write of it at the
//! database at a time: what a handler reports meanwhile is merged into the next. So a job's
//! writes land in the order it made them, a checkpoint is always written with a document at
//! least as new as the one that counted it, and a handler runs at its own pace however slow the
//! database is. What is still unwritten when the job ends goes with its end, in one statement.
//! Every write is fenced; when the lease is lost or the job is cancelled, the context's
//! cancellation token fires and reports return an error.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::Notify;
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
/// How long a write keeps retrying through a database outage before the job is given up.
const RETRY_FOR: Duration = Duration::from_secs(20);

/// A running job as its handler sees it. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<Inner>,
}

struct Inner {
    job: Job,
    fence: Fence,
    writes: Writes,
    state: Mutex<Unwritten>,
    /// Wakes whoever waits for the write at the database to come back.
    written: Notify,
    cancel: CancellationToken,
    cancel_requested: AtomicBool,
    lease_lost: AtomicBool,
}

/// What the handler reported that the database does not have yet.
struct Unwritten {
    progress: Value,
    checkpoints: BTreeMap<String, Value>,
    dirty: bool,
    /// A write of this job is at the database.
    writing: bool,
    /// The job has ended: what is unwritten goes with its end, not in writes of its own.
    closing: bool,
    last_write: Option<Instant>,
}

impl JobContext {
    pub(crate) fn new(job: Job, writes: Writes) -> Self {
        let fence = job.fence().expect("a claimed job runs under a lease");
        let progress = job.progress.clone();
        let state = Unwritten {
            progress,
            checkpoints: BTreeMap::new(),
            dirty: false,
            writing: false,
            closing: false,
            last_write: None,
        };
        Self {
            inner: Arc::new(Inner {
                job,
                fence,
                writes,
                state: Mutex::new(state),
                written: Notify::new(),
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
    pub fn progress(&self) -> Value {
        self.state().progress.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Unwritten> {
        self.inner.state.lock().expect("not poisoned")
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

    /// Replaces the progress document. `now` writes it as soon as the job's last write is
    /// back; otherwise a write comes at most every [`MIN_WRITE_INTERVAL`], the watcher writing
    /// the last one within a moment.
    pub async fn report(&self, progress: Value, now: bool) -> Result<(), JobError> {
        self.stopped()?;
        let due = {
            let mut state = self.state();
            state.progress = progress;
            state.dirty = true;
            now || state.last_write.is_none_or(|t| t.elapsed() >= MIN_WRITE_INTERVAL)
        };
        if due {
            self.write();
        }
        self.stopped()
    }

    /// Stores `output` under `key` together with the progress document, written as soon as the
    /// job's last write is back. A later attempt finds it with [`checkpoint`](Self::checkpoint).
    pub async fn save(&self, key: &str, output: Value, progress: Value) -> Result<(), JobError> {
        self.stopped()?;
        {
            let mut state = self.state();
            state.progress = progress;
            state.checkpoints.insert(key.to_string(), output);
            state.dirty = true;
        }
        self.write();
        self.stopped()
    }

    /// Starts writing what is unwritten, unless a write is already at the database (its end
    /// starts the next). Returns whether there was anything to write.
    pub(crate) fn write(&self) -> bool {
        let write = {
            let mut state = self.state();
            if !state.dirty || state.closing {
                return false;
            }
            if state.writing {
                return true;
            }
            state.writing = true;
            state.dirty = false;
            Write {
                fence: self.inner.fence.clone(),
                progress: state.progress.clone(),
                checkpoints: std::mem::take(&mut state.checkpoints),
            }
        };
        tokio::spawn(self.clone().writing(write));
        true
    }

    /// Writes `write`, retrying through a short outage, then what was reported meanwhile,
    /// until nothing is left.
    async fn writing(self, mut write: Write) {
        let mut failing_since: Option<Instant> = None;
        loop {
            match self.inner.writes.write(write.clone()).await {
                Ok(Some(control)) => self.apply(control),
                Ok(None) => self.lose_lease(),
                Err(e)
                    if failing_since.is_none_or(|t| t.elapsed() < RETRY_FOR) && !self.inner.cancel.is_cancelled() =>
                {
                    tracing::warn!(job_id = %self.inner.job.job_id, error = %e, "write failed; retrying");
                    failing_since.get_or_insert_with(Instant::now);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(job_id = %self.inner.job.job_id, error = %e, "writes keep failing; giving the job up");
                    self.lose_lease();
                }
            }
            failing_since = None;
            let mut state = self.state();
            state.last_write = Some(Instant::now());
            if !state.dirty || state.closing || self.is_lease_lost() {
                state.writing = false;
                drop(state);
                self.inner.written.notify_waiters();
                return;
            }
            state.dirty = false;
            // What was reported meanwhile: the newest document and the new checkpoints.
            let checkpoints = std::mem::take(&mut state.checkpoints);
            write = Write { fence: self.inner.fence.clone(), progress: state.progress.clone(), checkpoints };
        }
    }

    /// Writes what is unwritten and waits until the database has it: for a handler about to
    /// read back, in another statement, something it has just reported.
    pub async fn flush(&self) -> Result<(), JobError> {
        self.write();
        loop {
            let notified = self.inner.written.notified();
            {
                let state = self.state();
                if !state.writing && (!state.dirty || state.closing) {
                    break;
                }
            }
            notified.await;
        }
        self.stopped()
    }

    /// Waits for the write at the database, if any, and takes what is still unwritten: the
    /// latest document and the checkpoints it does not have yet, for the job's final write.
    pub(crate) async fn unwritten(&self) -> (Value, BTreeMap<String, Value>) {
        loop {
            let notified = self.inner.written.notified();
            {
                let mut state = self.state();
                state.closing = true;
                if !state.writing {
                    state.dirty = false;
                    return (state.progress.clone(), std::mem::take(&mut state.checkpoints));
                }
            }
            notified.await;
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
