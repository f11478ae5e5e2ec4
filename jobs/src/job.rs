//! A job and the values that move in and out of the store.
//!
//! A job is a `kind` and its JSON `args`, run by the handler registered for its kind. Its
//! `owner` is whoever the per-owner limits and fair claiming count it against. Beside what the
//! queue needs (state, priority, attempts, lease, deadline, version), a job carries three
//! documents the queue stores without reading: its `progress` (written whole by its handler,
//! versioned), its `checkpoints` (one output per key, kept across attempts) and its `output`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A job's public id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(JobId)
    }
}

/// Where a job is in its life (see `docs/state-machine.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A parent waiting for its children to end; then it becomes `pending` and its own handler runs.
    Waiting,
    Pending,
    Running,
    Completed,
    Failed,
    Timeout,
    Cancelled,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Waiting,
        State::Pending,
        State::Running,
        State::Completed,
        State::Failed,
        State::Timeout,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Pending => "pending",
            State::Running => "running",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Timeout => "timeout",
            State::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, State::Completed | State::Failed | State::Timeout | State::Cancelled)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown job state '{s}'"))
    }
}

/// One stored job, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The row's key: insertion order.
    pub id: i64,
    pub job_id: JobId,
    pub kind: String,
    pub owner: String,
    /// The parent this job is a child of.
    pub parent: Option<JobId>,
    /// On a parent: at most this many of its owner's children (of any parent) run at once.
    pub child_limit: Option<u32>,
    pub args: Value,
    pub state: State,
    pub priority: i32,
    pub attempt: u32,
    pub max_attempts: u32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    /// Bumped by every visible change (never by a heartbeat): an ETag of the job.
    pub version: i64,
    pub idempotency_key: Option<String>,
    /// A digest of the request that made the job, to tell a repeat from another request
    /// reusing an idempotency key.
    pub args_hash: Option<String>,
    pub timeout_ms: u64,
    /// Set at each claim: the attempt's deadline.
    pub timeout_at: Option<DateTime<Utc>>,
    pub progress: Value,
    /// Key → the output its handler stored; empty when read without them.
    pub checkpoints: BTreeMap<String, Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Read from the archive, where the janitor moved it.
    pub archived: bool,
}

impl Job {
    /// The fence of the lease this job carries, if it is running.
    pub fn fence(&self) -> Option<Fence> {
        match (&self.state, &self.lease_owner) {
            (State::Running, Some(owner)) => {
                Some(Fence { job_id: self.job_id, owner: owner.clone(), attempt: self.attempt })
            }
            _ => None,
        }
    }

    /// Milliseconds from the first claim to the end.
    pub fn duration_ms(&self) -> Option<u64> {
        match (self.started_at, self.completed_at) {
            (Some(s), Some(c)) => Some((c - s).num_milliseconds().max(0) as u64),
            _ => None,
        }
    }
}

/// A job to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub job_id: JobId,
    pub kind: String,
    pub owner: String,
    pub args: Value,
    pub priority: i32,
    pub max_attempts: u32,
    pub timeout_ms: u64,
    pub idempotency_key: Option<String>,
    pub args_hash: Option<String>,
    /// The progress document it starts with.
    pub progress: Value,
    /// Checkpoints it starts with, as if an earlier attempt had saved them: its handler takes
    /// them over instead of doing their work (a run started from another's finished steps).
    pub checkpoints: BTreeMap<String, Value>,
    /// For a parent: how many of its owner's children may run at once.
    pub child_limit: Option<u32>,
}

impl NewJob {
    /// A job of `kind` for `owner`: priority 0, three attempts, ten minutes an attempt.
    pub fn new(kind: &str, owner: &str, args: Value) -> Self {
        Self {
            job_id: JobId::new(),
            kind: kind.to_string(),
            owner: owner.to_string(),
            args,
            priority: 0,
            max_attempts: 3,
            timeout_ms: 600_000,
            idempotency_key: None,
            args_hash: None,
            progress: Value::Object(Default::default()),
            checkpoints: BTreeMap::new(),
            child_limit: None,
        }
    }
}

/// One insert: a job, or a parent with its children, stored together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    /// Pending when it has no children; waiting for them when it has.
    pub job: NewJob,
    pub children: Vec<NewJob>,
    /// Refuse the insert when the owner already has this many active jobs that have no parent
    /// (pending or running), counted atomically with respect to the owner's other inserts.
    pub owner_limit: Option<u32>,
}

impl Insert {
    pub fn one(job: NewJob) -> Self {
        Self { job, children: Vec::new(), owner_limit: None }
    }
}

/// What an [`Insert`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    Created(Job),
    /// The owner sent the same idempotency key with the same args hash before: here is that job.
    Existing(Job),
    /// The idempotency key was used before for other args.
    IdempotencyConflict(Job),
    /// The owner already has `active` active jobs.
    LimitReached {
        active: u32,
    },
}

/// Guards a worker's writes: they apply only while the job is `running` under this lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    pub job_id: JobId,
    pub owner: String,
    pub attempt: u32,
}

/// A running job as its worker sees it after a write: should it stop?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    pub cancel_requested: bool,
}

/// A fenced write of a running job: its whole progress document and new checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub fence: Fence,
    pub progress: Value,
    /// Added to (or replacing by key) the stored checkpoints; empty for a progress write.
    pub checkpoints: BTreeMap<String, Value>,
}

/// How a running job ends, as its worker writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed(Value),
    Failed(String),
    Timeout(String),
    Cancelled,
    /// Given back at shutdown: `pending` again, and this attempt does not count.
    Released,
}

impl Outcome {
    pub fn state(&self) -> State {
        match self {
            Outcome::Completed(_) => State::Completed,
            Outcome::Failed(_) => State::Failed,
            Outcome::Timeout(_) => State::Timeout,
            Outcome::Cancelled => State::Cancelled,
            Outcome::Released => State::Pending,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Failed(e) | Outcome::Timeout(e) => Some(e),
            _ => None,
        }
    }
}

/// A fenced final write: the outcome, with the job's last progress document and the
/// checkpoints it had not written yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub fence: Fence,
    pub outcome: Outcome,
    pub progress: Value,
    pub checkpoints: BTreeMap<String, Value>,
}

/// How a running job whose worker is gone (lease expired) or late (deadline passed) is settled.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    /// Back to `pending` for another attempt.
    Requeue,
    /// Ended in this state (failed, timeout or cancelled), saying why.
    End { state: State, error: Option<String> },
}

/// Why [`JobStore::stuck`](crate::JobStore::stuck) returned a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stuck {
    /// Running, and its lease expired: its worker is gone.
    Expired,
    /// Running, and its deadline passed more than the slack ago.
    Overdue,
    /// A waiting parent none of whose children is active any more.
    Orphaned,
}

/// Which jobs [`JobStore::list`](crate::JobStore::list) returns: every field narrows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub kind: Option<String>,
    pub owner: Option<String>,
    /// `Some(None)`: jobs without a parent; `Some(Some(p))`: the children of `p`.
    pub parent: Option<Option<JobId>>,
    pub states: Vec<State>,
    /// Top-level string fields of `args` that must equal these values.
    pub args_eq: Vec<(String, String)>,
    /// Jobs last updated at or after this instant.
    pub updated_since: Option<DateTime<Utc>>,
    /// Jobs that ended at or after this instant.
    pub completed_since: Option<DateTime<Utc>>,
    /// Archived jobs too.
    pub archived: bool,
    /// Read the checkpoints too (most of a finished job's bytes).
    pub checkpoints: bool,
    pub order: Order,
    pub limit: u32,
    pub offset: u64,
    /// Count every match as well (a second statement).
    pub count: bool,
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Newest first.
    #[default]
    Created,
    /// Inserted first (a parent's children in the order they were given).
    Inserted,
    /// The latest to end first.
    Completed,
}

/// A page of a listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub jobs: Vec<Job>,
    /// Every match, when the filter asked for the count.
    pub total: Option<u64>,
}

/// How many jobs of a kind are in a state, with a parent or without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub kind: String,
    pub state: State,
    pub child: bool,
    pub jobs: u64,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn only_ends_are_terminal_and_states_read_back_as_written() {
        let terminal: Vec<State> = State::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [State::Completed, State::Failed, State::Timeout, State::Cancelled]);
        for state in State::ALL {
            assert_eq!(state.to_string(), state.as_str());
            assert_eq!(state.as_str().parse::<State>(), Ok(state));
        }
        assert_eq!("paused".parse::<State>(), Err("unknown job state 'paused'".to_string()));
    }

    #[test]
    fn a_duration_runs_from_the_first_claim_to_the_end() {
        let at = |ms: i64| Utc.timestamp_millis_opt(1_765_000_000_000 + ms).unwrap();
        let job = |started: Option<i64>, completed: Option<i64>| Job {
            id: 1,
            job_id: JobId::new(),
            kind: "k".into(),
            owner: "o".into(),
            parent: None,
            child_limit: None,
            args: Value::Null,
            state: State::Completed,
            priority: 0,
            attempt: 1,
            max_attempts: 3,
            lease_owner: None,
            lease_expires_at: None,
            heartbeat_at: None,
            cancel_requested: false,
            version: 1,
            idempotency_key: None,
            args_hash: None,
            timeout_ms: 1_000,
            timeout_at: None,
            progress: Value::Null,
            checkpoints: BTreeMap::new(),
            output: None,
            error: None,
            created_at: at(0),
            started_at: started.map(at),
            completed_at: completed.map(at),
            updated_at: at(0),
            archived: false,
        };
        assert_eq!(job(Some(250), Some(2_750)).duration_ms(), Some(2_500));
        assert_eq!(job(Some(250), None).duration_ms(), None, "still running");
        assert_eq!(job(None, Some(10)).duration_ms(), None, "cancelled before any claim");
        assert_eq!(job(Some(900), Some(400)).duration_ms(), Some(0), "clocks that disagree never go negative");
    }
}
