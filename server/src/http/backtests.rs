//! The REST API of backtests: `/api/trading/backtests…`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::backtest::{BacktestId, BacktestRequest, BacktestStatus};
use sha2::{Digest, Sha256};

use super::AppState;
use super::problem::ApiError;
use super::runs::{JsonBody, matches};
use super::session::Identity;

pub(crate) fn backtest_id(raw: &str) -> Result<BacktestId, ApiError> {
    raw.parse().map_err(|e: domain::IdError| ApiError::field("backtestId", e.0.replace("run id", "backtest id")))
}

/// `POST /api/trading/backtests` — `202 {backtestId, cells}`.
pub async fn start(
    State(state): State<AppState>,
    Identity(user): Identity,
    JsonBody(request): JsonBody<BacktestRequest>,
) -> Result<Response, ApiError> {
    let started = state.backtests.start(&user.0, &request).await?;
    let mut resp = (StatusCode::ACCEPTED, Json(&started)).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/api/trading/backtests/{}", started.backtest_id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

/// `GET /api/trading/backtests/:id` — the cells so far and their scorecard, with a strong
/// ETag over the body (`If-None-Match` → 304).
pub async fn view(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = backtest_id(&raw)?;
    let view = state.backtests.view(&user.0, id).await?;
    let body = serde_json::to_vec(&view).expect("plain data");
    let digest = Sha256::digest(&body);
    let etag = format!("\"b{}\"", digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>());
    let mut resp = if matches(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("ascii"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    h.insert(header::VARY, HeaderValue::from_static("Cookie"));
    if view.status == BacktestStatus::Running {
        h.insert(header::RETRY_AFTER, HeaderValue::from(state.service.config().poll_after.as_secs().max(1)));
    }
    Ok(resp)
}

/// `POST /api/trading/backtests/:id/cancel` — the backtest as it is afterwards.
pub async fn cancel(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = backtest_id(&raw)?;
    Ok(Json(state.backtests.cancel(&user.0, id).await?).into_response())
}

/// `GET /api/trading/backtests` — yours, newest first.
pub async fn list(State(state): State<AppState>, Identity(user): Identity) -> Result<Response, ApiError> {
    Ok(Json(serde_json::json!({ "backtests": state.backtests.list(&user.0).await? })).into_response())
}
