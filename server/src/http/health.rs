//! `/healthz` (the process answers), `/readyz` (and its database does). `/metrics` is in
//! [`telemetry`](super::telemetry).

use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::problem::ApiError;

#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "The process answers.", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "The database answers.", body = String, content_type = "text/plain"),
        (status = 503, description = "The database cannot be reached (`Retry-After`).", body = domain::Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.service.store().ping().await.map_err(|e| ApiError {
        internal: Some(e.to_string()),
        retry_after: Some(5),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Not ready", "The database cannot be reached.")
    })?;
    Ok("ready")
}
