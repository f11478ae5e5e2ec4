//! `/healthz` (the process answers), `/readyz` (and its database does). `/metrics` is in
//! [`telemetry`](super::telemetry).

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::problem::ApiError;

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
