//! What the engine measures, through the `metrics` facade.
//!
//! The engine only records; whoever runs it decides where the figures go (the server
//! installs a Prometheus recorder and serves `/metrics`). Without a recorder every call here is
//! a no-op, so tests and tools that do not care pay nothing.
//!
//! Counters count events where they happen, once: a run started is counted by the service
//! that inserted it (REST, server functions and the CLI alike), a run finished by whoever wrote
//! its terminal state (its worker, the rescuer, the reaper, or a cancel of a pending run).
//! Summed over every process of a deployment they are the deployment's totals.

use std::time::Duration;

use domain::JobStatus;

/// Histogram: seconds from a run's first claim to its end, by final `status`.
pub const RUN_DURATION: &str = "trading_agents_run_duration_seconds";
/// Histogram: seconds a step took, by `step`.
pub const STEP_DURATION: &str = "trading_agents_step_duration_seconds";
/// Histogram: seconds from a run's creation to its first claim.
pub const QUEUE_WAIT: &str = "trading_agents_queue_wait_seconds";
/// Histogram: seconds one store operation took, by `statement` and `backend`.
pub const DB_STATEMENT: &str = "trading_agents_db_statement_duration_seconds";
/// Counter: runs queued (new runs and retries).
pub const RUNS_STARTED: &str = "trading_agents_runs_started_total";
/// Counter: runs that reached a terminal state, by `status`.
pub const RUNS_FINISHED: &str = "trading_agents_runs_finished_total";
/// Counter: model calls, by `model` (the run's model).
pub const MODEL_CALLS: &str = "trading_agents_model_calls_total";
/// Counter: model tokens, by `model` and `kind` (`prompt`, `completion`).
pub const MODEL_TOKENS: &str = "trading_agents_model_tokens_total";
/// Counter: model cost in millionths of a US dollar (at the catalog's prices), by `model`.
pub const MODEL_COST: &str = "trading_agents_model_cost_microusd_total";
/// Counter: retries of failed, timed-out or cancelled runs.
pub const RETRIES: &str = "trading_agents_retries_total";
/// Counter: runs whose lease expired and that the rescuer settled, by `outcome`
/// (`requeued`, `failed`, `cancelled`).
pub const RESCUES: &str = "trading_agents_rescues_total";
/// Counter: runs ended by their deadline, by who noticed (`worker`, `reaper`).
pub const TIMEOUTS: &str = "trading_agents_timeouts_total";
/// Counter: cancel requests that changed an active run.
pub const CANCELS: &str = "trading_agents_cancels_total";

pub fn run_started(retry: bool) {
    metrics::counter!(RUNS_STARTED).increment(1);
    if retry {
        metrics::counter!(RETRIES).increment(1);
    }
}

pub fn run_finished(status: JobStatus, duration: Option<Duration>) {
    metrics::counter!(RUNS_FINISHED, "status" => status.as_str()).increment(1);
    if let Some(d) = duration {
        metrics::histogram!(RUN_DURATION, "status" => status.as_str()).record(d.as_secs_f64());
    }
}

pub fn queue_wait(wait: Duration) {
    metrics::histogram!(QUEUE_WAIT).record(wait.as_secs_f64());
}

pub fn step_finished(step: &str, duration: Duration) {
    metrics::histogram!(STEP_DURATION, "step" => step.to_string()).record(duration.as_secs_f64());
}

pub fn model_usage(model: &str, calls: u32, tokens: domain::TokenUsage, cost_usd: f64) {
    if calls == 0 && tokens.total() == 0 {
        return;
    }
    let model = model.to_string();
    metrics::counter!(MODEL_CALLS, "model" => model.clone()).increment(u64::from(calls));
    metrics::counter!(MODEL_TOKENS, "model" => model.clone(), "kind" => "prompt").increment(tokens.prompt);
    metrics::counter!(MODEL_TOKENS, "model" => model.clone(), "kind" => "completion").increment(tokens.completion);
    if cost_usd.is_finite() && cost_usd > 0.0 {
        metrics::counter!(MODEL_COST, "model" => model).increment((cost_usd * 1e6).round() as u64);
    }
}

pub fn rescued(outcome: &'static str) {
    metrics::counter!(RESCUES, "outcome" => outcome).increment(1);
}

pub fn timed_out(by: &'static str) {
    metrics::counter!(TIMEOUTS, "by" => by).increment(1);
}

pub fn cancel_requested() {
    metrics::counter!(CANCELS).increment(1);
}

pub fn statement(backend: &'static str, statement: &'static str, took: Duration) {
    metrics::histogram!(DB_STATEMENT, "statement" => statement, "backend" => backend).record(took.as_secs_f64());
}

/// The span between two instants of the engine's clock, as a duration (never negative).
pub fn between(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> Duration {
    (to - from).to_std().unwrap_or(Duration::ZERO)
}
