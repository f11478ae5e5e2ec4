//! What several handlers read from a request alike: a JSON body whose every failure is a
//! problem, and a run id from the path.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use domain::RunId;

use super::problem::ApiError;

/// A JSON request body, whose every failure (wrong content type, too large, not JSON, wrong
/// shape) is a problem naming what is wrong.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().eq_ignore_ascii_case("application/json") || v.trim().ends_with("+json"))
            .unwrap_or(false);
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "Send the request body as JSON with Content-Type: application/json.",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e: BytesRejection| {
            let status = e.status();
            ApiError::new(status, "unreadable-body", "Unreadable request body", e.body_text())
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                format!("The request body is not valid: {e}."),
            )
        })
    }
}

/// A run id from the path, or a `400` naming `runId`.
pub(crate) fn run_id(raw: &str) -> Result<RunId, ApiError> {
    raw.parse().map_err(|e: domain::IdError| ApiError::field("runId", e.0))
}
