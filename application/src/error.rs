//! The application's one error type. Each variant says what went wrong in the product's own
//! terms; how it is answered (an HTTP status, a problem body, a wait) is decided at the edge
//! (`server`'s `http::problem`), never here.

use std::time::Duration;

use domain::backtest::CostEstimate;
use domain::{FieldError, JobStatus, RunId};
use jobs::StoreError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is wrong, field by field.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    /// No such run (or backtest, token, link), or not the caller's: the two are never told apart.
    #[error("not found")]
    NotFound,
    /// The caller already has `limit` active runs; one may end within `retry_after`.
    #[error("you already have {limit} analyses running or queued")]
    TooManyActive { limit: u32, retry_after: Duration },
    /// The caller's runs spent their daily budget (`spent` says how much of what); some of it
    /// leaves the window in `retry_after`.
    #[error("daily budget spent: {spent}")]
    DailyBudget { spent: String, retry_after: Duration },
    /// The idempotency key was used for a different request, which made `run_id`.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyConflict { run_id: RunId },
    /// A retry of a run that did not fail, time out or get cancelled.
    #[error("a {0} run cannot be retried")]
    NotRetryable(JobStatus),
    /// Too many runs are waiting for a worker, from everyone.
    #[error("the queue is full")]
    QueueFull { queued: u64 },
    /// A backtest on a hosted model was asked for without confirming what it would cost:
    /// nothing was created; this is the estimate.
    #[error("the cost of this backtest must be confirmed")]
    CostNotConfirmed(Box<CostEstimate>),
    /// The database is unreachable; the same request may succeed later.
    #[error("the service is temporarily unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data: logged where it is handled, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// One invalid field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(e) => Error::Unavailable(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}
