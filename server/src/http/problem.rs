//! Errors of the HTTP layer, sent as RFC 9457 problem details (`application/problem+json`).
//!
//! Every error a handler returns becomes an [`ApiError`]; this is the one place they are
//! logged: 5xx with their internal detail (which is never sent), 4xx not at all.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{FieldError, Problem};
use jobs::ServiceError;

#[derive(Debug)]
pub struct ApiError {
    pub problem: Box<Problem>,
    pub retry_after: Option<u64>,
    /// Logged, not sent.
    pub internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            problem: Box::new(Problem {
                kind: format!("/problems/{kind}"),
                title: title.into(),
                status: status.as_u16(),
                detail: detail.into(),
                errors: vec![],
            }),
            retry_after: None,
            internal: None,
        }
    }

    /// 400 naming one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ServiceError::Invalid(vec![FieldError::new(field, message)]).into()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let internal = match &e {
            ServiceError::Internal(d) | ServiceError::Unavailable(d) => Some(d.clone()),
            _ => None,
        };
        Self { problem: Box::new(e.problem()), retry_after: e.retry_after(), internal }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(
                status = status.as_u16(),
                detail = self.internal.as_deref().unwrap_or(&self.problem.detail),
                "request failed"
            );
        }
        let body = serde_json::to_vec(&self.problem).expect("plain data");
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Unknown `/api/…` paths: a problem, not the HTML 404 page.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", "There is no such API endpoint.")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "This endpoint does not accept that method.",
    )
}
