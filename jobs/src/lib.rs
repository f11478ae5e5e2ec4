//! The durable job engine of Trading Agents.
//!
//! # Overview
//! A run is a row in `trading_agent_jobs`. `POST /api/trading/run` inserts it as `pending` and
//! returns; workers claim rows one statement at a time, commit, and only then run the analysis,
//! writing progress back to the row as steps move. Nothing here knows what an analysis does: the
//! server hands the pool an [`Analysis`], tests hand it scripted ones.
//!
//! # Reading order
//! - [`model`]: the job row, the fence that guards worker writes, new-job and outcome types.
//! - [`store`]: the [`JobStore`] trait and its `sqlite` and `postgres` backends — all SQL.
//! - [`clock`]: time as the engine sees it, so leases and timeouts can be tested.
//! - [`tracker`]: a running job's step list, overall percent and current step.
//! - [`analysis`]: the [`Analysis`] trait and the [`JobContext`] a pipeline reports through.
//! - [`worker`]: the worker pool — claim, heartbeat, cancel, timeout, finish, release.
//! - [`rescuer`], [`reaper`], [`janitor`]: maintenance of expired leases, overdue jobs, old jobs.
//! - [`events`]: wake-ups between web and worker tasks (in-process, and LISTEN/NOTIFY).
//! - [`telemetry`]: what the engine measures (counters and histograms, through `metrics`).
//!
//! # State model
//! See `docs/state-machine.md`. In short: `pending → running → completed | failed | timeout |
//! cancelled`; an expired lease returns a running job to `pending` (attempt + 1) until
//! `max_attempts`; a retry of a finished run is a new run with `retry_of` set.
//!
//! # Failure handling
//! Every write a worker makes is fenced by (run id, lease owner, attempt) and the `running`
//! status: a worker that lost its lease finds its writes refused and stops. Each finished step
//! stores a checkpoint — and each turn of a step that takes several, such as a debate round
//! ([`JobContext::save_turn`]) — and a resumed attempt skips what has one.

pub mod analysis;
pub mod clock;
pub mod events;
pub mod feed;
pub mod janitor;
pub mod model;
pub mod reaper;
pub mod rescuer;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tracker;
pub mod worker;

pub use analysis::{Analysis, AnalysisError, JobContext, StepUsage};
pub use clock::{Clock, ManualClock, SystemClock};
pub use events::{Event, Events};
pub use model::{Fence, Job, JobSpec, NewJob};
pub use store::{JobStore, StoreError, connect};
pub use worker::{WorkerConfig, WorkerPool};
