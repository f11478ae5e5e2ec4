//! `/metrics` in the Prometheus text format, through the `metrics` facade and its Prometheus
//! exporter, and what only the web side can measure: request durations by route, polls by
//! answer, active pollers and open streams.
//!
//! Counters and histograms are recorded where things happen (the engine's are named in
//! [`jobs::telemetry`]); gauges of the queue are read from the database when scraped, so every
//! web process reports the deployment's queue (aggregate them with `max`, not `sum`).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::{JobStatus, RunId};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;
use super::problem::ApiError;
use super::tokens::OperatorToken;

/// Histogram: seconds from a request's arrival to its response head, by `route` (the matched
/// path pattern), `method` and `status`.
pub const HTTP_REQUEST: &str = "trading_agents_http_request_duration_seconds";
/// Counter: progress reads answered, by `answer` (`200`, `304`).
pub const POLLS: &str = "trading_agents_polls_total";
/// Gauge: runs waiting for a worker (the whole deployment's).
pub const QUEUE_DEPTH: &str = "trading_agents_queue_depth";
/// Gauge: runs being worked on (the whole deployment's).
pub const RUNNING: &str = "trading_agents_running_jobs";
/// Gauge: runs in the live table, by `status`.
pub const JOBS: &str = "trading_agents_jobs";
/// Gauge: distinct runs this process answered a progress read of in the last [`POLLER_WINDOW`].
pub const ACTIVE_POLLERS: &str = "trading_agents_active_pollers";
/// Gauge: live streams (Server-Sent Events) this process holds open.
pub const OPEN_STREAMS: &str = "trading_agents_open_streams";
/// Gauge: workers in this process.
pub const WORKERS: &str = "trading_agents_workers";

/// A run counts as polled while its last progress read is younger than this.
pub const POLLER_WINDOW: Duration = Duration::from_secs(10);

/// Bucket bounds, in seconds, from a fast statement to a slow run.
const BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// Jobs per batched store operation: powers of two up to the largest batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Tokens a second, from a slow local model to a fast hosted one.
const PACE_BUCKETS: &[f64] = &[5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0];

/// The process's recorder, installed on first use: one per process, shared by every role it
/// plays.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(jobs::telemetry::DB_BATCH.into()), BATCH_BUCKETS))
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(application::telemetry::MODEL_PACE.into()), PACE_BUCKETS)
                })
                .expect("buckets are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Only fails when another recorder is installed: then this one renders nothing.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use application::telemetry as a;
    use jobs::telemetry as t;
    let d = |name: &'static str, help: &'static str| metrics::describe_counter!(name, help);
    d(a::RUNS_STARTED, "Runs queued, new and retried, by every way in.");
    d(t::RUNS_FINISHED, "Jobs that reached a terminal state, by kind (`analysis` for runs) and status.");
    d(a::MODEL_CALLS, "Model calls of finished steps and turns, by the model that answered them.");
    d(a::MODEL_TOKENS, "Model tokens of finished steps and turns, by model and kind.");
    d(a::MODEL_COST, "Model cost in millionths of a US dollar, by model.");
    d(a::RETRIES, "Retries of failed, timed-out or cancelled runs.");
    d(t::RESCUES, "Runs whose lease expired, settled by the rescuer, by outcome.");
    d(t::TIMEOUTS, "Runs ended by their deadline, by who noticed.");
    d(a::CANCELS, "Cancel requests that changed an active run.");
    d(POLLS, "Progress reads answered, by answer.");
    let h = |name: &'static str, help: &'static str| metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
    h(t::RUN_DURATION, "Seconds from a job's first claim to its end, by kind and status.");
    h(a::STEP_DURATION, "Seconds a step took, by step.");
    h(a::MODEL_FIRST_OUTPUT, "Seconds from a model step's start to its model's first output, by model.");
    metrics::describe_histogram!(
        a::MODEL_PACE,
        "Completion tokens a second over a model step's writing, from its first output to its end, by model."
    );
    h(t::QUEUE_WAIT, "Seconds from a job's creation to its first claim, by kind.");
    h(t::DB_STATEMENT, "Seconds one store operation took, by statement and backend.");
    metrics::describe_histogram!(
        t::DB_BATCH,
        "Jobs one store operation carried (claims, batched writes, heartbeats, ends), by statement and backend."
    );
    h(HTTP_REQUEST, "Seconds to the response head, by route, method and status.");
    let g = |name: &'static str, help: &'static str| metrics::describe_gauge!(name, help);
    g(QUEUE_DEPTH, "Runs waiting for a worker.");
    g(RUNNING, "Runs being worked on.");
    g(JOBS, "Runs in the live table, by status.");
    g(ACTIVE_POLLERS, "Distinct runs whose progress this process served in the last 10 s.");
    g(OPEN_STREAMS, "Live streams this process holds open.");
    g(WORKERS, "Workers in this process.");
}

/// Keeps histogram memory bounded in a process nobody scrapes for a while.
pub fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

/// Runs whose progress was read recently, for [`ACTIVE_POLLERS`].
#[derive(Debug, Default)]
pub struct Pollers {
    seen: Mutex<HashMap<RunId, Instant>>,
}

impl Pollers {
    pub fn touch(&self, run_id: RunId) {
        self.seen.lock().expect("not poisoned").insert(run_id, Instant::now());
    }

    /// Runs read within `window`; older entries are forgotten.
    pub fn active(&self, window: Duration) -> usize {
        let mut seen = self.seen.lock().expect("not poisoned");
        seen.retain(|_, at| at.elapsed() < window);
        seen.len()
    }
}

/// Records a poll's answer (`200` or `304`) and its run as active.
pub fn poll(state: &AppState, run_id: RunId, not_modified: bool) {
    state.pollers.touch(run_id);
    metrics::counter!(POLLS, "answer" => if not_modified { "304" } else { "200" }).increment(1);
}

/// Times every request by the route it matched (not its raw path) and its method (one of the
/// standard ones, or `other`): every label stays bounded whatever clients send.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let route = route.unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::histogram!(HTTP_REQUEST, "route" => route, "method" => method, "status" => status)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// The `method` label of a request: a method anyone may invent (any token, of any length)
/// would otherwise add a series of its own to `/metrics` per request.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The answer to a scrape with these headers that may not read the metrics (`401` with
/// `WWW-Authenticate: Bearer`), or `None`: any may when `METRICS_TOKEN` is not set, else only
/// one that sends it.
pub fn scrape_refusal(token: &OperatorToken, headers: &HeaderMap) -> Option<Response> {
    if !token.is_set() || token.sent_in(headers) {
        return None;
    }
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Metrics token required",
        "This server's metrics are read with Authorization: Bearer <METRICS_TOKEN>.",
    )
    .into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"metrics\""));
    Some(resp)
}

/// `GET /metrics`
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = scrape_refusal(&state.metrics_token, &headers) {
        return refused;
    }
    metrics_body(&state).await.into_response()
}

async fn metrics_body(state: &AppState) -> Result<Response, ApiError> {
    let counts = state.service.counts().await?;
    let count = |status: JobStatus| {
        counts
            .iter()
            .filter(|c| c.kind == application::run::KIND && application::run::status_of(c.state) == status)
            .map(|c| c.jobs)
            .sum::<u64>()
    };
    for status in JobStatus::ALL {
        metrics::gauge!(JOBS, "status" => status.as_str()).set(count(status) as f64);
    }
    metrics::gauge!(QUEUE_DEPTH).set(count(JobStatus::Pending) as f64);
    metrics::gauge!(RUNNING).set(count(JobStatus::Running) as f64);
    metrics::gauge!(ACTIVE_POLLERS).set(state.pollers.active(POLLER_WINDOW) as f64);
    metrics::gauge!(OPEN_STREAMS).set(state.streams.open() as f64);
    metrics::gauge!(WORKERS).set(state.workers as f64);
    state.recorder.run_upkeep();
    let body = state.recorder.render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

/// Per statement, summed over backends: how many were timed and their total seconds, read back
/// from the rendered [`DB_STATEMENT`](jobs::telemetry::DB_STATEMENT) histogram.
pub fn statement_times(rendered: &str) -> Vec<(String, u64, f64)> {
    let mut by: std::collections::BTreeMap<String, (u64, f64)> = Default::default();
    for line in rendered.lines() {
        let (kind, rest) = if let Some(r) =
            line.strip_prefix(jobs::telemetry::DB_STATEMENT).and_then(|r| r.strip_prefix("_count{"))
        {
            ("count", r)
        } else if let Some(r) = line.strip_prefix(jobs::telemetry::DB_STATEMENT).and_then(|r| r.strip_prefix("_sum{")) {
            ("sum", r)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
        let Some(statement) =
            labels.split(',').find_map(|l| l.strip_prefix("statement=\"")).map(|s| s.trim_end_matches('"'))
        else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let entry = by.entry(statement.to_string()).or_default();
        if kind == "count" {
            entry.0 += value as u64;
        } else {
            entry.1 += value;
        }
    }
    by.into_iter().map(|(s, (n, secs))| (s, n, secs)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_times_sum_over_backends() {
        let text = "# TYPE trading_agents_db_statement_duration_seconds histogram\n\
            trading_agents_db_statement_duration_seconds_bucket{statement=\"claim\",backend=\"sqlite\",le=\"0.001\"} 1\n\
            trading_agents_db_statement_duration_seconds_sum{statement=\"claim\",backend=\"sqlite\"} 0.5\n\
            trading_agents_db_statement_duration_seconds_count{statement=\"claim\",backend=\"sqlite\"} 4\n\
            trading_agents_db_statement_duration_seconds_sum{backend=\"postgres\",statement=\"claim\"} 0.25\n\
            trading_agents_db_statement_duration_seconds_count{backend=\"postgres\",statement=\"claim\"} 1\n\
            trading_agents_db_statement_duration_seconds_count{statement=\"get\",backend=\"sqlite\"} 2\n";
        assert_eq!(statement_times(text), vec![("claim".into(), 5, 0.75), ("get".into(), 2, 0.0)]);
    }

    #[test]
    fn methods_are_labelled_by_name_or_as_other() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes("X".repeat(1000).as_bytes()).unwrap()), "other");
    }
}
