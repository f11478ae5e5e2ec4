//! Errors of the HTTP layer, sent as RFC 9457 problem details (`application/problem+json`).
//!
//! Every error a handler returns becomes an [`ApiError`]; this is the one place they are
//! logged: 5xx with their internal detail (which is never sent), 4xx not at all. [`answer`]
//! is the one mapping of the application's errors to statuses, problem bodies and waits: the
//! REST handlers, the native forms, the pages and the server functions all answer through it.
//! (A refused form posted by a browser is answered with its page, the problem shown in it:
//! see [`super::pages`].)

use application::Error;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{FieldError, Problem};
use serde_json::{Map, Value};

#[derive(Debug)]
pub struct ApiError {
    pub problem: Box<Problem>,
    pub retry_after: Option<u64>,
    /// Members of the problem beyond the standard ones (RFC 9457 extensions).
    pub extensions: Map<String, Value>,
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
            extensions: Map::new(),
            internal: None,
        }
    }

    /// 400 naming one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)]).into()
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Logs a server error with its internal detail (never sent); a client's error is not
    /// ours to log. Called once, by whatever answers the error: the problem or a page.
    pub fn log(&self) {
        if self.status().is_server_error() {
            tracing::error!(
                status = self.problem.status,
                detail = self.internal.as_deref().unwrap_or(&self.problem.detail),
                "request failed"
            );
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let internal = match &e {
            Error::Internal(d) | Error::Unavailable(d) => Some(d.clone()),
            _ => None,
        };
        let extensions = match &e {
            // What the backtest would cost, for the client to show before confirming.
            Error::CostNotConfirmed(estimate) => match serde_json::to_value(estimate.as_ref()) {
                Ok(Value::Object(members)) => members,
                _ => Map::new(),
            },
            _ => Map::new(),
        };
        let (problem, retry_after) = answer(&e);
        Self { problem: Box::new(problem), retry_after, extensions, internal }
    }
}

/// How the application's error `e` is answered: its problem body (with the status) and, where a
/// later try may succeed, the seconds to wait. Internal and database details are not in it:
/// they are logged where the error is handled.
pub fn answer(e: &Error) -> (Problem, Option<u64>) {
    let (status, kind, title, detail, retry_after) = match e {
        Error::Invalid(errors) => (
            400,
            "invalid-request",
            "Invalid request",
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "),
            None,
        ),
        Error::NotFound => (
            404,
            "not-found",
            "Run not found",
            "There is no such run, or it is not yours: a run is private to whoever started it. To show one to \
             someone else, its owner makes a read-only link on its page."
                .to_string(),
            None,
        ),
        Error::NotRetryable(status) => (
            409,
            "not-retryable",
            "Run cannot be retried",
            format!("Only failed, timed-out or cancelled runs can be retried; this one is {status}."),
            None,
        ),
        Error::CostNotConfirmed(estimate) => (
            409,
            "cost-not-confirmed",
            "Confirm the expected cost",
            format!(
                "{} cells with {} are expected to cost about ${:.4} (${:.4} a run). Send the request again with \"confirmCost\": true to start.",
                estimate.cells, estimate.model_id, estimate.expected_cost_usd, estimate.per_run_usd
            ),
            None,
        ),
        Error::IdempotencyConflict { run_id } => (
            422,
            "idempotency-conflict",
            "Idempotency key reused",
            format!("This Idempotency-Key was already used for a different request (run {run_id})."),
            None,
        ),
        Error::TooManyActive { limit, retry_after } => (
            429,
            "too-many-active-runs",
            "Too many active runs",
            format!(
                "You already have {limit} analyses running or queued. Wait for one to finish, or cancel one, and try again."
            ),
            Some(retry_after.as_secs().max(1)),
        ),
        Error::DailyBudget { spent, retry_after } => (
            429,
            "daily-budget",
            "Daily budget spent",
            format!(
                "Your analyses have used their daily budget: {spent} (counted over the last 24 hours). \
                 You can start another in {}.",
                wait_words(*retry_after)
            ),
            Some(retry_after.as_secs().max(1)),
        ),
        Error::QueueFull { queued } => (
            503,
            "queue-full",
            "Too many analyses waiting",
            format!("{queued} analyses are already waiting for a worker. Try again in a minute."),
            Some(30),
        ),
        Error::Unavailable(_) => (
            503,
            "unavailable",
            "Service unavailable",
            "The database cannot be reached right now. Your runs are safe; try again in a few seconds.".to_string(),
            Some(5),
        ),
        Error::Internal(_) => (
            500,
            "internal",
            "Internal error",
            "Something went wrong on our side. It has been logged.".to_string(),
            None,
        ),
    };
    let errors = match e {
        Error::Invalid(errors) => errors.clone(),
        _ => vec![],
    };
    (Problem { kind: format!("/problems/{kind}"), title: title.to_string(), status, detail, errors }, retry_after)
}

/// "3 hours", "12 minutes", "40 seconds": how long to wait, rounded up to its largest unit.
fn wait_words(d: std::time::Duration) -> String {
    let s = d.as_secs().max(1);
    let (n, unit) = if s >= 3600 {
        (s.div_ceil(3600), "hour")
    } else if s >= 60 {
        (s.div_ceil(60), "minute")
    } else {
        (s, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let mut body = serde_json::to_value(&self.problem).expect("plain data");
        if let Value::Object(members) = &mut body {
            members.extend(self.extensions);
        }
        let body = serde_json::to_vec(&body).expect("plain data");
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

/// A request body over [`super::BODY_LIMIT`].
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        "Too large",
        format!("The request body is larger than {} KiB.", super::BODY_LIMIT / 1024),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_said_in_their_largest_unit_rounded_up() {
        use std::time::Duration;
        assert_eq!(wait_words(Duration::from_secs(1)), "1 second");
        assert_eq!(wait_words(Duration::from_secs(59)), "59 seconds");
        assert_eq!(wait_words(Duration::from_secs(61)), "2 minutes");
        assert_eq!(wait_words(Duration::from_secs(3600)), "1 hour");
        assert_eq!(wait_words(Duration::from_secs(23 * 3600 + 1)), "24 hours");
    }

    /// A spent daily budget is a 429 that says when the next start is possible, in words and
    /// in `Retry-After`.
    #[test]
    fn a_spent_budget_says_when_to_come_back() {
        use std::time::Duration;
        let e = Error::DailyBudget {
            spent: "475 tokens used of your 475 tokens a day".into(),
            retry_after: Duration::from_secs(22 * 3600 - 2),
        };
        let (problem, retry_after) = answer(&e);
        assert_eq!((problem.status, problem.kind.as_str()), (429, "/problems/daily-budget"));
        assert_eq!(retry_after, Some(22 * 3600 - 2));
        assert!(problem.detail.contains("daily budget: 475 tokens used"), "{}", problem.detail);
        assert!(problem.detail.contains("22 hours"), "{}", problem.detail);
    }
}
