//! What several handlers read from a request alike: a JSON body whose every failure is a
//! problem, a run id from the path — and the whole body of a server function, read before it
//! runs.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::RunId;

use super::problem::{ApiError, too_large};

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

/// The paths of the Leptos server functions.
#[derive(Clone)]
pub struct ServerFnPaths(Arc<HashSet<&'static str>>);

impl ServerFnPaths {
    pub fn registered() -> Self {
        Self(Arc::new(leptos::server_fn::axum::server_fn_paths().map(|(path, _)| path).collect()))
    }
}

/// A server function reads its body itself, and one over the limit is to it an argument it
/// cannot read: a `500` "connection problem", logged as an error. So a server function's body
/// is read here first, whole, and one that is too large is the same `413` problem as anywhere
/// else (a body that breaks off, a `400`).
pub async fn server_fn_body(State(paths): State<ServerFnPaths>, req: Request, next: Next) -> Response {
    if !paths.0.contains(req.uri().path()) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match Bytes::from_request(Request::from_parts(parts.clone(), body), &()).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            // The rest of the body is left unread, so the connection cannot carry another
            // request: say so, or a client may send its next one down a closing connection.
            let mut resp = too_large().into_response();
            resp.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            resp
        }
        Err(e) => {
            ApiError::new(e.status(), "unreadable-body", "Unreadable request body", e.body_text()).into_response()
        }
    }
}
