//! What the application measures, through the `metrics` facade (the queue measures its own:
//! see `jobs::telemetry`). Counted where the event happens, once.

use std::time::Duration;

use domain::Usage;

/// Histogram: seconds a step took, by `step`.
pub const STEP_DURATION: &str = "trading_agents_step_duration_seconds";
/// Counter: runs queued (new runs and retries).
pub const RUNS_STARTED: &str = "trading_agents_runs_started_total";
/// Counter: model calls, by `model` (the model that answered).
pub const MODEL_CALLS: &str = "trading_agents_model_calls_total";
/// Counter: model tokens, by `model` and `kind` (`prompt`, `completion`).
pub const MODEL_TOKENS: &str = "trading_agents_model_tokens_total";
/// Counter: model cost in millionths of a US dollar (at the catalog's prices), by `model`.
pub const MODEL_COST: &str = "trading_agents_model_cost_microusd_total";
/// Histogram: seconds from a model step's start to its model's first output, by `model`.
pub const MODEL_FIRST_OUTPUT: &str = "trading_agents_model_first_output_seconds";
/// Histogram: completion tokens a second over a model step's writing (from its first output to
/// its end), by `model`.
pub const MODEL_PACE: &str = "trading_agents_model_output_tokens_per_second";
/// Counter: retries of failed, timed-out or cancelled runs.
pub const RETRIES: &str = "trading_agents_retries_total";
/// Counter: cancel requests that changed an active run.
pub const CANCELS: &str = "trading_agents_cancels_total";

/// Counter: ticks of schedules taken, by `outcome`: `started` (a batch) or `refused` (none,
/// the reason recorded with the tick).
pub const SCHEDULE_TICKS: &str = "trading_agents_schedule_ticks_total";

pub(crate) fn schedule_fired(started: bool) {
    let outcome = if started { "started" } else { "refused" };
    metrics::counter!(SCHEDULE_TICKS, "outcome" => outcome).increment(1);
}

pub(crate) fn run_started(retry: bool) {
    metrics::counter!(RUNS_STARTED).increment(1);
    if retry {
        metrics::counter!(RETRIES).increment(1);
    }
}

pub(crate) fn step_finished(step: &str, duration: Duration) {
    metrics::histogram!(STEP_DURATION, "step" => step.to_string()).record(duration.as_secs_f64());
}

pub(crate) fn model_usage(model: &str, usage: Usage) {
    if usage.calls == 0 && usage.tokens.total() == 0 {
        return;
    }
    let model = model.to_string();
    metrics::counter!(MODEL_CALLS, "model" => model.clone()).increment(u64::from(usage.calls));
    metrics::counter!(MODEL_TOKENS, "model" => model.clone(), "kind" => "prompt").increment(usage.tokens.prompt);
    metrics::counter!(MODEL_TOKENS, "model" => model.clone(), "kind" => "completion")
        .increment(usage.tokens.completion);
    if usage.cost_usd.is_finite() && usage.cost_usd > 0.0 {
        metrics::counter!(MODEL_COST, "model" => model).increment((usage.cost_usd * 1e6).round() as u64);
    }
}

/// How soon a step's model began to write, and how fast it wrote `tokens` in `writing`.
pub(crate) fn model_pace(model: &str, first_output: Duration, tokens: u64, writing: Duration) {
    metrics::histogram!(MODEL_FIRST_OUTPUT, "model" => model.to_string()).record(first_output.as_secs_f64());
    if tokens > 0 && !writing.is_zero() {
        metrics::histogram!(MODEL_PACE, "model" => model.to_string()).record(tokens as f64 / writing.as_secs_f64());
    }
}

pub(crate) fn cancel_requested() {
    metrics::counter!(CANCELS).increment(1);
}
