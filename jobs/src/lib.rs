//! A durable job queue on SQLite or PostgreSQL.
//!
//! # Overview
//! A job is a *kind* and its JSON *args*. Producers insert jobs; a [`WorkerPool`] claims them
//! — many in one statement, committed before any work — and runs each with the [`Handler`]
//! registered for its kind, outside any transaction. A handler reports through its
//! [`JobContext`]: a progress document (versioned: every change bumps the job's version, which
//! readers use as an ETag) and checkpoints (outputs kept across attempts, so a resumed job
//! does not redo finished work). Writes and ends of running jobs go to the database in batches.
//! A job may be a parent of children: it waits while they run (at most `child_limit` of its
//! owner's children at once) and runs itself when the last has ended. The queue knows nothing
//! of what its jobs do.
//!
//! # Reading order
//! - [`job`]: a job, its states, and the values that move in and out of the store.
//! - [`store`]: the [`JobStore`] trait (the queue's verbs) and its `sqlite` and `postgres`
//!   backends — all of the queue's SQL; [`Database`] opens one.
//! - [`clock`]: time as the queue sees it (the database's, or a test's).
//! - [`context`]: the [`Handler`] trait and the [`JobContext`] a handler reports through.
//! - [`batch`]: writes and ends of many running jobs in one statement.
//! - [`worker`]: the worker pool — producer, watcher (heartbeats, cancels), completer.
//! - [`rescuer`], [`janitor`]: expired leases, overdue jobs and lost wake-ups; old jobs.
//! - [`events`], [`feed`]: wake-ups between processes; which jobs changed.
//! - [`telemetry`]: what the queue measures.
//!
//! # State model
//! See `docs/state-machine.md`. In short: `pending → running → completed | failed | timeout |
//! cancelled`; a parent is `waiting → pending` when its last child ends; an expired lease
//! returns a running job to `pending` (attempt + 1) until `max_attempts`.
//!
//! # Failure handling
//! Every write a worker makes is fenced by (job id, lease owner, attempt) and the `running`
//! state: a worker that lost its lease finds its writes refused and stops. Leases and deadlines
//! are measured on the database's clock, so hosts with drifting clocks agree.

pub mod batch;
pub mod clock;
pub mod context;
pub mod events;
pub mod feed;
pub mod janitor;
pub mod job;
pub mod rescuer;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod worker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use context::{Handler, JobContext, JobError};
pub use events::{Event, Events};
pub use job::{Filter, Insert, InsertOutcome, Job, JobId, NewJob, State};
pub use store::{Database, JobStore, Pools, StoreError};
pub use worker::{CANCEL_WITHIN, Handlers, WorkerConfig, WorkerPool};
