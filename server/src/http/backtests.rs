//! The REST API of backtests: `/api/trading/backtests…`, and a backtest's cells as CSV.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::backtest::{BacktestId, BacktestRequest, BacktestStatus, BacktestSummary, BacktestView};
use serde::Serialize;

use super::AppState;
use super::extract::JsonBody;
use super::problem::ApiError;
use super::reply::{digest_json, made_at};
use super::session::Identity;

pub(crate) fn backtest_id(raw: &str) -> Result<BacktestId, ApiError> {
    raw.parse().map_err(|e: domain::IdError| ApiError::field("backtestId", e.0.replace("run id", "backtest id")))
}

/// `POST /api/trading/backtests` — `202 {backtestId, cells, expectedCostUsd}`, or `409` with
/// the expected cost when a hosted model is named without `"confirmCost": true`.
#[utoipa::path(
    post,
    operation_id = "startBacktest",
    path = "/api/trading/backtests",
    tag = "backtests",
    request_body(content = BacktestRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "The backtest's cells are queued.", body = domain::backtest::BacktestStarted, headers(
            ("Location" = String, description = "The backtest."),
        )),
        (status = 400, description = "A bad grid, each field named in `errors`, or a body that is not JSON.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 409, description = "A hosted model was named without `confirmCost: true`: the problem carries the estimate (`expectedCostUsd`, `cells`, `perRunUsd`, …) and nothing was created.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many starts a minute, or the daily budget of this identity spent (`Retry-After`).", body = domain::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unreachable.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    Identity(user): Identity,
    JsonBody(request): JsonBody<BacktestRequest>,
) -> Result<Response, ApiError> {
    let started = state.backtests.start(&user.0, &request).await?;
    Ok(made_at(StatusCode::ACCEPTED, &format!("/api/trading/backtests/{}", started.backtest_id), &started))
}

/// `GET /api/trading/backtests/:id` — the cells so far and their scorecard, with a strong
/// ETag over the body (`If-None-Match` → 304).
#[utoipa::path(
    get,
    operation_id = "getBacktest",
    path = "/api/trading/backtests/{backtestId}",
    tag = "backtests",
    params(
        ("backtestId" = uuid::Uuid, Path, description = "The backtest's id, a UUID."),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of an earlier answer."),
    ),
    responses(
        (status = 200, description = "The cells so far and their scorecard.", body = domain::backtest::BacktestView, headers(
            ("ETag" = String, description = "The body's version."),
        )),
        (status = 304, description = "Unchanged since the `ETag` named."),
        (status = 400, description = "Not a backtest id.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, description = "No such backtest of yours.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn view(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = backtest_id(&raw)?;
    let view = state.backtests.view(&user.0, id).await?;
    let running = view.status == BacktestStatus::Running;
    let retry_after = running.then(|| state.service.config().poll_after.as_secs().max(1));
    Ok(digest_json(&headers, 'b', &view, retry_after))
}

/// `POST /api/trading/backtests/:id/cancel` — the backtest as it is afterwards.
#[utoipa::path(
    post,
    operation_id = "cancelBacktest",
    path = "/api/trading/backtests/{backtestId}/cancel",
    tag = "backtests",
    params(("backtestId" = uuid::Uuid, Path, description = "The backtest's id, a UUID.")),
    responses(
        (status = 200, description = "The backtest, cancelled.", body = domain::backtest::BacktestView),
        (status = 400, description = "Not a backtest id.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, description = "No such backtest of yours.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = backtest_id(&raw)?;
    Ok(Json(state.backtests.cancel(&user.0, id).await?).into_response())
}

/// The body of `GET /api/trading/backtests`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BacktestList {
    /// Newest first.
    pub backtests: Vec<BacktestSummary>,
}

/// `GET /api/trading/backtests` — yours, newest first.
#[utoipa::path(
    get,
    operation_id = "listBacktests",
    path = "/api/trading/backtests",
    tag = "backtests",
    responses(
        (status = 200, description = "Your backtests.", body = BacktestList),
        (status = 401, response = super::responses::Unauthenticated),
    )
)]
pub async fn list(State(state): State<AppState>, Identity(user): Identity) -> Result<Response, ApiError> {
    Ok(Json(BacktestList { backtests: state.backtests.list(&user.0).await? }).into_response())
}

/// `GET /backtests/:id/cells.csv` — the backtest page's download: one line per cell, with its
/// returns per horizon.
pub async fn cells_csv(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = backtest_id(&raw)?;
    let view = state.backtests.view(&user.0, id).await?;
    Ok(super::reply::csv_download(write_cells(&view), &format!("backtest-{id}.csv")))
}

/// The cells as CSV: symbol, as-of date, run, status, rating, then the forward and benchmark
/// returns of each horizon (six decimals; empty where there is none yet).
fn write_cells(view: &BacktestView) -> Vec<u8> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["symbol".to_string(), "as_of".into(), "run_id".into(), "status".into(), "rating".into()];
    for h in &view.spec.horizons {
        header.extend([format!("forward_return_{h}"), format!("benchmark_return_{h}")]);
    }
    csv.write_record(&header).expect("writes to memory");
    for c in &view.cells {
        let mut row = vec![
            c.symbol.clone(),
            c.as_of.to_string(),
            c.run_id.to_string(),
            c.status.as_str().to_string(),
            c.rating.map(|r| r.as_str().to_string()).unwrap_or_default(),
        ];
        for h in &view.spec.horizons {
            let figure = |returns: &std::collections::BTreeMap<String, f64>| {
                returns.get(&h.to_string()).map(|v| format!("{v:.6}")).unwrap_or_default()
            };
            row.extend([figure(&c.forward_returns), figure(&c.benchmark_returns)]);
        }
        csv.write_record(&row).expect("writes to memory");
    }
    csv.into_inner().expect("writes to memory")
}
