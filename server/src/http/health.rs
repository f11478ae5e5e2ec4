//! `/healthz` (the process answers), `/readyz` (and its database does), `/metrics`
//! (Prometheus text format).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::JobStatus;

use super::AppState;
use super::problem::ApiError;

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters of this process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub runs_started: Counter,
    pub polls_full: Counter,
    pub polls_not_modified: Counter,
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.service.store().ping().await.map_err(|e| ApiError {
        internal: Some(e.to_string()),
        retry_after: Some(5),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Not ready", "The database cannot be reached.")
    })?;
    Ok("ready")
}

pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let counts = state.service.store().count_by_status().await.map_err(jobs::ServiceError::from)?;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP trading_agents_jobs Runs in the live table, by status.");
    let _ = writeln!(out, "# TYPE trading_agents_jobs gauge");
    for status in JobStatus::ALL {
        let n = counts.iter().find(|(s, _)| *s == status).map(|(_, n)| *n).unwrap_or(0);
        let _ = writeln!(out, "trading_agents_jobs{{status=\"{}\"}} {n}", status.as_str());
    }
    let m = &state.metrics;
    let _ = writeln!(out, "# HELP trading_agents_runs_started_total Runs queued by this process.");
    let _ = writeln!(out, "# TYPE trading_agents_runs_started_total counter");
    let _ = writeln!(out, "trading_agents_runs_started_total {}", m.runs_started.get());
    let _ = writeln!(out, "# HELP trading_agents_progress_polls_total Progress reads by this process, by answer.");
    let _ = writeln!(out, "# TYPE trading_agents_progress_polls_total counter");
    let _ = writeln!(out, "trading_agents_progress_polls_total{{code=\"200\"}} {}", m.polls_full.get());
    let _ = writeln!(out, "trading_agents_progress_polls_total{{code=\"304\"}} {}", m.polls_not_modified.get());
    let _ = writeln!(out, "# HELP trading_agents_workers Workers in this process.");
    let _ = writeln!(out, "# TYPE trading_agents_workers gauge");
    let _ = writeln!(out, "trading_agents_workers {}", state.workers);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
