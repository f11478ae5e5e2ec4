//! Following a run's progress from the browser: a live stream, or polling.
//!
//! **Stream** (`PROGRESS_TRANSPORT` `auto` or `sse`): an `EventSource` on
//! `/api/trading/events/:runId`; every event is the whole progress body. In `auto`, the page
//! falls back to polling on its own when the stream errors, is refused, or delivers nothing
//! (not even its 15 s heartbeat) for 30 s — a proxy that buffers responses looks like that —
//! and tries the stream again a minute later while the run is still going.
//!
//! **Polling** (the fallback, and all of `poll`): one `gloo-timers` timeout at a time, re-armed
//! after each answer: every 2 s, or the server's `Retry-After` hint. After a failure the last
//! good state stays on screen, the page says it is reconnecting, and the wait doubles up to
//! 30 s. `If-None-Match` carries the last ETag, so an unchanged run costs a 304 and no JSON.
//!
//! Everything stops on a terminal status and when the page is left (timers, intervals and the
//! stream are dropped with the island's reactive owner).

use domain::{ProgressTransport, RunState};
use leptos::prelude::*;

use crate::api::AppError;

pub const POLL_MS: u32 = 2_000;
pub const MAX_BACKOFF_MS: u32 = 30_000;
/// A stream silent this long (heartbeats included) is given up for polling.
pub const SILENCE_MS: u32 = 30_000;
/// After falling back, how long the page polls before trying the stream again.
pub const STREAM_AGAIN_MS: u32 = 60_000;

/// The wait before the next poll: the server's hint (seconds) or 2 s; after `failures`
/// consecutive failures, 2 s doubled that many times, capped at 30 s.
pub fn next_delay_ms(retry_after: Option<u32>, failures: u32) -> u32 {
    if failures > 0 {
        return POLL_MS.saturating_mul(1 << failures.min(8)).min(MAX_BACKOFF_MS);
    }
    retry_after.map(|s| s.saturating_mul(1000).clamp(500, MAX_BACKOFF_MS)).unwrap_or(POLL_MS)
}

/// How the page is following the run right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Opening the stream.
    #[default]
    Connecting,
    /// Updates arrive as they happen.
    Live,
    /// Asking every 2 s.
    Polling,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Connecting => "Connecting…",
            Mode::Live => "Live",
            Mode::Polling => "Checking every 2 s",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Connecting => "connecting",
            Mode::Live => "live",
            Mode::Polling => "polling",
        }
    }
}

/// Whether `incoming` may replace `current` on screen: states arrive by several paths (the
/// stream, polls, the answer to a cancel), and an older one must never undo a newer one — an
/// ended run never shows as running again.
pub fn supersedes(incoming: &RunState, current: &RunState) -> bool {
    if current.status.is_terminal() && !incoming.status.is_terminal() {
        return false;
    }
    incoming.updated_at >= current.updated_at
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

/// The signals a run page shows.
#[derive(Debug, Clone, Copy)]
pub struct Signals {
    pub progress: RwSignal<RunState>,
    pub connection: RwSignal<Connection>,
    pub last_seen: RwSignal<chrono::DateTime<chrono::Utc>>,
    pub mode: RwSignal<Mode>,
}

/// Follows `run_id` into `signals` while it is active. Does nothing on the server.
pub fn start(run_id: String, transport: ProgressTransport, signals: Signals) {
    #[cfg(feature = "hydrate")]
    follow::start(run_id, transport, signals);
    #[cfg(not(feature = "hydrate"))]
    let _ = (run_id, transport, signals);
}

#[cfg(feature = "hydrate")]
mod follow {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use gloo_timers::callback::{Interval, Timeout};
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    use web_sys::{EventSource, MessageEvent};

    use super::*;
    use crate::api::{Poll, fetch_progress};

    type Handler<T> = Closure<dyn FnMut(T)>;

    struct Stream {
        source: EventSource,
        _message: Handler<MessageEvent>,
        _heartbeat: Handler<web_sys::Event>,
        _error: Handler<web_sys::Event>,
    }

    impl Drop for Stream {
        fn drop(&mut self) {
            self.source.close();
        }
    }

    struct Follower {
        run_id: String,
        transport: ProgressTransport,
        signals: Signals,
        stopped: Cell<bool>,
        etag: RefCell<Option<String>>,
        polling: Cell<bool>,
        poll_timer: RefCell<Option<Timeout>>,
        stream: RefCell<Option<Stream>>,
        heard_at: Cell<f64>,
        watchdog: RefCell<Option<Interval>>,
        again: RefCell<Option<Timeout>>,
    }

    impl Follower {
        fn stop(&self) {
            self.stopped.set(true);
            self.polling.set(false);
            self.poll_timer.borrow_mut().take();
            self.release_stream();
            self.watchdog.borrow_mut().take();
            self.again.borrow_mut().take();
        }

        /// Closes the stream at once; its handlers (one of which may be running right now,
        /// having delivered the last event or an error) are dropped on a later turn.
        fn release_stream(&self) {
            let old = self.stream.borrow_mut().take();
            if let Some(stream) = old {
                stream.source.close();
                Timeout::new(0, move || drop(stream)).forget();
            }
        }

        fn apply(&self, state: RunState) {
            let done = state.status.is_terminal();
            if supersedes(&state, &self.signals.progress.get_untracked()) {
                self.signals.progress.set(state);
            }
            self.signals.last_seen.set(crate::format::now());
            self.signals.connection.set(Connection::default());
            if done {
                self.stop();
            }
        }
    }

    pub fn start(run_id: String, transport: ProgressTransport, signals: Signals) {
        if signals.progress.get_untracked().status.is_terminal() {
            return;
        }
        let f = Rc::new(Follower {
            run_id,
            transport,
            signals,
            stopped: Cell::new(false),
            etag: RefCell::new(None),
            polling: Cell::new(false),
            poll_timer: RefCell::new(None),
            stream: RefCell::new(None),
            heard_at: Cell::new(js_sys::Date::now()),
            watchdog: RefCell::new(None),
            again: RefCell::new(None),
        });
        let handle = StoredValue::new_local(Some(f.clone()));
        on_cleanup(move || {
            if let Some(Some(f)) = handle.try_get_value() {
                f.stop();
            }
        });
        match transport {
            ProgressTransport::Poll => poll(&f),
            ProgressTransport::Auto | ProgressTransport::Sse => stream(&f),
        }
    }

    /// Opens the live stream, with a watchdog for silence.
    fn stream(f: &Rc<Follower>) {
        if f.stopped.get() {
            return;
        }
        let Ok(source) = EventSource::new(&format!("/api/trading/events/{}", f.run_id)) else {
            return fall_back(f);
        };
        f.signals.mode.set(Mode::Connecting);
        f.heard_at.set(js_sys::Date::now());

        let weak = Rc::downgrade(f);
        let message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let Some(f) = weak.upgrade() else { return };
            f.heard_at.set(js_sys::Date::now());
            let Some(data) = ev.data().as_string() else { return };
            match serde_json::from_str::<RunState>(&data) {
                Ok(state) => {
                    f.signals.mode.set(Mode::Live);
                    // The next poll, if one comes, must fetch a whole body.
                    f.etag.borrow_mut().take();
                    f.apply(state);
                }
                Err(_) => fall_back(&f),
            }
        });
        let weak = Rc::downgrade(f);
        let heartbeat = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            if let Some(f) = weak.upgrade() {
                f.heard_at.set(js_sys::Date::now());
                f.signals.last_seen.set(crate::format::now());
            }
        });
        let weak = Rc::downgrade(f);
        let error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            let Some(f) = weak.upgrade() else { return };
            let closed = f.stream.borrow().as_ref().is_some_and(|s| s.source.ready_state() == EventSource::CLOSED);
            // `sse` leaves reconnecting to EventSource unless it gave up for good.
            if f.transport == ProgressTransport::Auto || closed {
                fall_back(&f);
            }
        });
        source.set_onmessage(Some(message.as_ref().unchecked_ref()));
        source.set_onerror(Some(error.as_ref().unchecked_ref()));
        let _ = source.add_event_listener_with_callback("heartbeat", heartbeat.as_ref().unchecked_ref());
        *f.stream.borrow_mut() = Some(Stream { source, _message: message, _heartbeat: heartbeat, _error: error });

        let weak = Rc::downgrade(f);
        let watchdog = Interval::new(5_000, move || {
            let Some(f) = weak.upgrade() else { return };
            if f.stream.borrow().is_some() && js_sys::Date::now() - f.heard_at.get() > f64::from(SILENCE_MS) {
                fall_back(&f);
            }
        });
        *f.watchdog.borrow_mut() = Some(watchdog);
    }

    /// Closes the stream and polls; in `auto`, tries the stream again later.
    fn fall_back(f: &Rc<Follower>) {
        if f.stopped.get() {
            return;
        }
        f.release_stream();
        // The watchdog may be what called us: drop it on a later turn.
        let watchdog = f.watchdog.borrow_mut().take();
        if let Some(w) = watchdog {
            Timeout::new(0, move || drop(w)).forget();
        }
        poll(f);
        if f.transport == ProgressTransport::Auto {
            let weak = Rc::downgrade(f);
            let again = Timeout::new(STREAM_AGAIN_MS, move || {
                let Some(f) = weak.upgrade() else { return };
                if f.stopped.get() {
                    return;
                }
                f.polling.set(false);
                f.poll_timer.borrow_mut().take();
                stream(&f);
            });
            *f.again.borrow_mut() = Some(again);
        }
    }

    fn poll(f: &Rc<Follower>) {
        f.signals.mode.set(Mode::Polling);
        if f.polling.replace(true) {
            return;
        }
        // Right away once: the state on screen may be a moment old.
        schedule(f.clone(), 0);
    }

    fn schedule(f: Rc<Follower>, delay: u32) {
        if f.stopped.get() || !f.polling.get() {
            return;
        }
        let s = f.clone();
        let timeout = Timeout::new(delay, move || {
            leptos::task::spawn_local(async move {
                if s.stopped.get() || !s.polling.get() {
                    return;
                }
                let etag = s.etag.borrow().clone();
                let outcome = fetch_progress(&s.run_id, etag.as_deref()).await;
                if s.stopped.get() || !s.polling.get() {
                    return;
                }
                let connection = s.signals.connection;
                let delay = match outcome {
                    Ok(Poll::Changed(p, tag, hint)) => {
                        *s.etag.borrow_mut() = tag;
                        s.apply(*p);
                        next_delay_ms(hint, 0)
                    }
                    Ok(Poll::Unchanged(hint)) => {
                        s.signals.last_seen.set(crate::format::now());
                        connection.set(Connection::default());
                        next_delay_ms(hint, 0)
                    }
                    // A run that is gone or not ours will not come back: stop.
                    Err(e) if e.status() == 404 => {
                        connection.set(Connection { error: Some(e), failures: 1, retry_in_ms: None });
                        s.stop();
                        return;
                    }
                    Err(e) => {
                        let failures = connection.get_untracked().failures + 1;
                        let delay = next_delay_ms(None, failures);
                        connection.set(Connection { error: Some(e), failures, retry_in_ms: Some(delay) });
                        delay
                    }
                };
                schedule(s, delay);
            });
        });
        *f.poll_timer.borrow_mut() = Some(timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: domain::JobStatus, at: i64) -> RunState {
        let json = serde_json::json!({
            "runId": "0b6c4a3e-8f1d-4c52-9a57-2f0d8e9b1c7a", "status": status, "progress": 10,
            "currentStep": null, "steps": [], "startedAt": null, "estimatedTimeRemaining": null,
            "error": null, "completedAt": null, "duration": null, "symbol": "AAPL", "modelId": "offline",
            "analysts": [], "asOf": null, "createdAt": "2026-11-29T10:00:00Z",
            "updatedAt": chrono::DateTime::from_timestamp(at, 0).unwrap(), "attempt": 1,
            "cancelRequested": false, "retryOf": null, "llmCalls": 0
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn an_older_state_never_replaces_a_newer_one() {
        use domain::JobStatus::{Cancelled, Running};
        assert!(supersedes(&state(Running, 20), &state(Running, 10)));
        assert!(!supersedes(&state(Running, 10), &state(Running, 20)));
        // The answer to a cancel arriving after the stream said the run ended.
        assert!(!supersedes(&state(Running, 30), &state(Cancelled, 20)));
        assert!(supersedes(&state(Cancelled, 20), &state(Running, 20)));
    }

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
