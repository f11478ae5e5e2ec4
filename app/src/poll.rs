//! Polling a run's progress from the browser.
//!
//! One `gloo-timers` timeout at a time, re-armed after each answer: every 2 s, or the server's
//! `Retry-After` hint. After a failure the last good state stays on screen, the page says it
//! is reconnecting, and the wait doubles up to 30 s instead of hammering a struggling server.
//! The loop stops on a terminal status and when the page is left (the timer is dropped with
//! the page's reactive owner, so no interval outlives it). `If-None-Match` carries the last
//! ETag, so an unchanged run costs a 304 and no JSON.

use domain::RunState;
use leptos::prelude::*;

use crate::api::AppError;

pub const POLL_MS: u32 = 2_000;
pub const MAX_BACKOFF_MS: u32 = 30_000;

/// The wait before the next poll: the server's hint (seconds) or 2 s; after `failures`
/// consecutive failures, 2 s doubled that many times, capped at 30 s.
pub fn next_delay_ms(retry_after: Option<u32>, failures: u32) -> u32 {
    if failures > 0 {
        return POLL_MS.saturating_mul(1 << failures.min(8)).min(MAX_BACKOFF_MS);
    }
    retry_after.map(|s| s.saturating_mul(1000).clamp(500, MAX_BACKOFF_MS)).unwrap_or(POLL_MS)
}

/// What the run page shows about its connection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Connection {
    /// The last error, while it lasts.
    pub error: Option<AppError>,
    /// Consecutive failures.
    pub failures: u32,
    /// Milliseconds until the next try, after a failure.
    pub retry_in_ms: Option<u32>,
}

/// Starts polling `run_id` into `progress` while it is active. Does nothing on the server.
pub fn start(
    run_id: String,
    progress: RwSignal<RunState>,
    connection: RwSignal<Connection>,
    last_seen: RwSignal<chrono::DateTime<chrono::Utc>>,
) {
    #[cfg(feature = "hydrate")]
    {
        use std::cell::RefCell;
        use std::rc::Rc;

        use gloo_timers::callback::Timeout;

        use crate::api::{Poll, fetch_progress};

        struct Loop {
            run_id: String,
            etag: RefCell<Option<String>>,
            timer: RefCell<Option<Timeout>>,
            stopped: std::cell::Cell<bool>,
        }

        fn schedule(
            state: Rc<Loop>,
            delay: u32,
            progress: RwSignal<RunState>,
            connection: RwSignal<Connection>,
            last_seen: RwSignal<chrono::DateTime<chrono::Utc>>,
        ) {
            if state.stopped.get() {
                return;
            }
            let s = state.clone();
            let timeout = Timeout::new(delay, move || {
                let s2 = s.clone();
                leptos::task::spawn_local(async move {
                    if s2.stopped.get() {
                        return;
                    }
                    let etag = s2.etag.borrow().clone();
                    let outcome = fetch_progress(&s2.run_id, etag.as_deref()).await;
                    if s2.stopped.get() {
                        return;
                    }
                    let (delay, done) = match outcome {
                        Ok(Poll::Changed(p, tag, hint)) => {
                            let done = p.status.is_terminal();
                            *s2.etag.borrow_mut() = tag;
                            progress.set(*p);
                            last_seen.set(crate::format::now());
                            connection.set(Connection::default());
                            (next_delay_ms(hint, 0), done)
                        }
                        Ok(Poll::Unchanged(hint)) => {
                            last_seen.set(crate::format::now());
                            connection.set(Connection::default());
                            (next_delay_ms(hint, 0), false)
                        }
                        // A run that is gone or not ours will not come back: stop.
                        Err(e) if e.status() == 404 => {
                            connection.set(Connection { error: Some(e), failures: 1, retry_in_ms: None });
                            (0, true)
                        }
                        Err(e) => {
                            let failures = connection.get_untracked().failures + 1;
                            let delay = next_delay_ms(None, failures);
                            connection.set(Connection { error: Some(e), failures, retry_in_ms: Some(delay) });
                            (delay, false)
                        }
                    };
                    if !done {
                        schedule(s2, delay, progress, connection, last_seen);
                    }
                });
            });
            *state.timer.borrow_mut() = Some(timeout);
        }

        if progress.get_untracked().status.is_terminal() {
            return;
        }
        let state = Rc::new(Loop {
            run_id,
            etag: RefCell::new(None),
            timer: RefCell::new(None),
            stopped: std::cell::Cell::new(false),
        });
        let handle = StoredValue::new_local(Some(state.clone()));
        on_cleanup(move || {
            if let Some(Some(state)) = handle.try_get_value() {
                state.stopped.set(true);
                state.timer.borrow_mut().take();
            }
        });
        // Poll right away once: the server-rendered state may be a moment old.
        schedule(state, 0, progress, connection, last_seen);
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (run_id, progress, connection, last_seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_hint_and_back_off_after_failures() {
        assert_eq!(next_delay_ms(None, 0), 2_000);
        assert_eq!(next_delay_ms(Some(5), 0), 5_000);
        assert_eq!(next_delay_ms(Some(0), 0), 500);
        assert_eq!(next_delay_ms(Some(3600), 0), 30_000);
        assert_eq!(next_delay_ms(None, 1), 4_000);
        assert_eq!(next_delay_ms(None, 2), 8_000);
        assert_eq!(next_delay_ms(Some(2), 4), 30_000);
        assert_eq!(next_delay_ms(None, 40), 30_000);
    }
}
