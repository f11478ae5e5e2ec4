//! What the queue measures, through the `metrics` facade.
//!
//! The queue only records; whoever runs it decides where the figures go (a server installs a
//! Prometheus recorder and serves `/metrics`). Without a recorder every call here is a no-op, so
//! tests and tools that do not care pay nothing.
//!
//! Counters count events where they happen, once: a job ended is counted by whoever wrote its
//! terminal state (its worker or the rescuer); an application counts what it starts and what is
//! cancelled before it runs. Summed over every process of a deployment they are its totals.

use std::time::Duration;

use crate::job::State;

/// Histogram: seconds from a job's first claim to its end, by `kind` and final `status`.
pub const RUN_DURATION: &str = "trading_agents_run_duration_seconds";
/// Histogram: seconds from a job's creation to its first claim, by `kind`.
pub const QUEUE_WAIT: &str = "trading_agents_queue_wait_seconds";
/// Histogram: seconds one store operation took, by `statement` and `backend`.
pub const DB_STATEMENT: &str = "trading_agents_db_statement_duration_seconds";
/// Histogram: how many jobs one store operation carried (a claim's jobs, a batch of writes,
/// heartbeats or ends), by `statement` and `backend`.
pub const DB_BATCH: &str = "trading_agents_db_batch_jobs";
/// Counter: jobs that reached a terminal state, by `kind` and `status`.
pub const RUNS_FINISHED: &str = "trading_agents_runs_finished_total";
/// Counter: jobs whose lease expired and that the rescuer settled, by `outcome`
/// (`requeued`, `failed`, `cancelled`).
pub const RESCUES: &str = "trading_agents_rescues_total";
/// Counter: jobs ended by their deadline, by who noticed (`worker`, `reaper`).
pub const TIMEOUTS: &str = "trading_agents_timeouts_total";

pub fn job_finished(kind: &str, state: State, duration: Option<Duration>) {
    metrics::counter!(RUNS_FINISHED, "kind" => kind.to_string(), "status" => state.as_str()).increment(1);
    if let Some(d) = duration {
        metrics::histogram!(RUN_DURATION, "kind" => kind.to_string(), "status" => state.as_str())
            .record(d.as_secs_f64());
    }
}

pub(crate) fn queue_wait(kind: &str, wait: Duration) {
    metrics::histogram!(QUEUE_WAIT, "kind" => kind.to_string()).record(wait.as_secs_f64());
}

pub(crate) fn rescued(outcome: &'static str) {
    metrics::counter!(RESCUES, "outcome" => outcome).increment(1);
}

pub(crate) fn timed_out(by: &'static str) {
    metrics::counter!(TIMEOUTS, "by" => by).increment(1);
}

pub(crate) fn statement(backend: &'static str, statement: &'static str, took: Duration) {
    metrics::histogram!(DB_STATEMENT, "statement" => statement, "backend" => backend).record(took.as_secs_f64());
}

pub(crate) fn batch(backend: &'static str, statement: &'static str, jobs: usize) {
    metrics::histogram!(DB_BATCH, "statement" => statement, "backend" => backend).record(jobs as f64);
}

/// The span between two instants of the queue's clock, as a duration (never negative).
pub fn between(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> Duration {
    (to - from).to_std().unwrap_or(Duration::ZERO)
}
