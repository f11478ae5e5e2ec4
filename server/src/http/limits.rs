//! Rate limits on starting runs, per client address and per identity.
//!
//! Starting a run spends the operator's model keys; reading does not. So only the requests
//! that create runs are limited — the REST start and retry, the server functions behind the
//! form and the Retry button, and the same forms posted natively — and every other request
//! passes untouched. Each is counted against the client's address (as resolved by
//! [`super::proxy`], so behind a trusted proxy it is the real client's) and against its
//! identity, with governor's GCRA: `N` per minute allows a burst of `N`, then one every
//! `60/N` seconds. Past either limit the answer is a `429` problem with `Retry-After`.
//!
//! The per-user limit of active runs bounds what one identity has queued; these bound how fast
//! identities and addresses can come back for more.
//!
//! Starting a backtest counts as one start (its size is bounded by `MAX_BACKTEST_CELLS` and
//! the pace of its cells by `MAX_RUNNING_CELLS_PER_USER`), and so does starting a batch (at
//! most 50 runs, which run no faster than the owner's limit of active runs allows; the daily
//! budget and the queue's length count each of them). A form posted natively is not
//! answered here: it goes on to its handler marked [`Limited`], which answers with its page —
//! the new-analysis and backtest forms again with what was typed and why it was refused.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use application::UserId;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::problem::ApiError;
use super::proxy::Client;

/// Default of `RUNS_PER_MINUTE_PER_ADDRESS`: generous enough for an office behind one NAT.
pub const PER_ADDRESS_DEFAULT: u32 = 30;
/// Default of `RUNS_PER_MINUTE_PER_USER`.
pub const PER_USER_DEFAULT: u32 = 10;
/// Keys kept before idle ones are forgotten, so a flood of addresses cannot grow memory forever.
const KEYS_BEFORE_SWEEP: usize = 100_000;

#[derive(Clone, Default)]
pub struct RunLimits {
    by_address: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    by_user: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

impl RunLimits {
    /// Runs per minute per address and per identity; 0 turns that limit off.
    pub fn new(per_address: u32, per_user: u32) -> Self {
        Self { by_address: limiter(per_address), by_user: limiter(per_user) }
    }

    /// Counts one run for `addr` and `user`; `Err` with the seconds to wait when either is over.
    pub fn check(&self, addr: Option<IpAddr>, user: Option<&str>) -> Result<(), u64> {
        if let (Some(limiter), Some(addr)) = (&self.by_address, addr) {
            check(limiter, &addr)?;
        }
        if let (Some(limiter), Some(user)) = (&self.by_user, user) {
            check(limiter, &user.to_string())?;
        }
        Ok(())
    }
}

fn limiter<K: Hash + Eq + Clone>(per_minute: u32) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    NonZeroU32::new(per_minute).map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))))
}

fn check<K: Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), u64> {
    if limiter.len() > KEYS_BEFORE_SWEEP {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    })
}

/// Marks a form posted natively (`/`, `/runs/:id/retry`, `/backtests`) that is over a limit;
/// the seconds to wait.
#[derive(Debug, Clone, Copy)]
pub struct Limited(pub u64);

/// The answer to a start over a limit: `429` with `Retry-After`.
pub fn refusal(secs: u64) -> ApiError {
    let mut problem = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many new runs",
        format!("Runs are being started too quickly from here. Try again in {secs} s."),
    );
    problem.retry_after = Some(secs.max(1));
    problem
}

/// Whether a request would create a run.
pub fn creates_run(method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    path == "/api/trading/run"
        || path.starts_with("/api/trading/retry/")
        // Server functions: the name, then the hash Leptos appends.
        || path.starts_with("/api/start_run")
        || path.starts_with("/api/retry_run")
        // Backtests, over REST and from their form.
        || path == "/api/trading/backtests"
        || path == "/backtests"
        // Batches, over REST and from the new-analysis form (which posts to `/`).
        || path == "/api/trading/batches"
        // The forms posted natively.
        || path == "/"
        || (path.starts_with("/runs/") && path.ends_with("/retry"))
        // Reruns from a stage, over REST and from the run page.
        || (path.starts_with("/api/trading/runs/") && path.ends_with("/rerun"))
        || (path.starts_with("/runs/") && path.ends_with("/rerun"))
}

pub async fn layer(State(limits): State<RunLimits>, mut req: Request, next: Next) -> Response {
    if creates_run(req.method(), req.uri().path()) {
        let addr = req.extensions().get::<Client>().and_then(|c| c.addr);
        let user = req.extensions().get::<UserId>().map(|u| u.0.as_str());
        if let Err(secs) = limits.check(addr, user) {
            // A native form's handler answers with its page.
            if !req.uri().path().starts_with("/api/") {
                req.extensions_mut().insert(Limited(secs));
                return next.run(req).await;
            }
            return refusal(secs).into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_run_creating_requests_are_counted() {
        for path in [
            "/api/trading/run",
            "/api/trading/retry/x",
            "/api/start_run123",
            "/api/retry_run9",
            "/",
            "/runs/x/retry",
            "/api/trading/runs/x/rerun",
            "/runs/x/rerun",
            "/api/trading/backtests",
            "/backtests",
            "/api/trading/batches",
        ] {
            assert!(creates_run(&Method::POST, path), "{path}");
        }
        for path in [
            "/api/trading/cancel/x",
            "/api/cancel_run1",
            "/runs/x/cancel",
            "/api/list_runs1",
            "/backtests/x/cancel",
            "/api/trading/backtests/x/cancel",
        ] {
            assert!(!creates_run(&Method::POST, path), "{path}");
        }
        assert!(!creates_run(&Method::GET, "/api/trading/run"));
    }

    #[test]
    fn a_burst_passes_then_each_key_waits_alone() {
        let limits = RunLimits::new(3, 2);
        let a: IpAddr = "1.2.3.4".parse().unwrap();
        let b: IpAddr = "5.6.7.8".parse().unwrap();
        // Per identity: two at once, then a wait of about 30 s (60 / 2).
        assert_eq!(limits.check(Some(a), Some("u1")), Ok(()));
        assert_eq!(limits.check(Some(a), Some("u1")), Ok(()));
        let wait = limits.check(Some(a), Some("u1")).unwrap_err();
        assert!((29..=30).contains(&wait), "{wait}");
        // Per address: the third from `a` used its last cell; a fourth waits ~20 s (60 / 3).
        let wait = limits.check(Some(a), Some("u2")).unwrap_err();
        assert!((19..=20).contains(&wait), "{wait}");
        // Other keys are untouched.
        assert_eq!(limits.check(Some(b), Some("u2")), Ok(()));
        // Off means off.
        let off = RunLimits::new(0, 0);
        for _ in 0..100 {
            assert_eq!(off.check(Some(a), Some("u1")), Ok(()));
        }
    }
}
