//! `GET /api/trading/events/:runId`: a run's progress as Server-Sent Events (axum's `Sse`).
//!
//! Each event is the same JSON as the progress endpoint, with `id:` = the run's version, so a
//! reconnecting `EventSource` sends `Last-Event-ID` and gets only what is newer. Between them,
//! `event: text` messages carry the text the models write (`{"step", "seq", "delta"}`), each
//! piece as the worker stored it, in order, before the state in which its step completes. An
//! id is `<version>.<piece>` once text has been sent — the last state and the last piece the
//! client has — so a resumed stream sends neither a hole nor a repeat. An event is
//! sent whenever the process's change feed says the run moved (on PostgreSQL that includes
//! writes by workers in other processes); each carries the whole state, so a client that
//! misses one loses nothing. Every 15 s of quiet a heartbeat (a comment, plus a `heartbeat`
//! event a page can time its silence by) keeps proxies and clients from giving up. The
//! stream ends after the terminal state; reconnecting to a finished run the client has seen in
//! full is a 204, which tells `EventSource` to stop.
//!
//! Streams are bounded per identity and per process; past either bound the client is told to
//! poll instead (429 or 503 with `Retry-After`).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use application::{Error, RunService};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use domain::{ProgressTransport, RunId};
use futures::Stream;
use jobs::feed::Change;
use tokio::sync::broadcast::{self, error::RecvError};

use super::AppState;
use super::extract::run_id;
use super::problem::ApiError;
use super::session::Identity;

pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// What `EventSource` waits before reconnecting after the stream drops.
pub const RETRY: Duration = Duration::from_secs(2);
/// How often a stream re-reads its run when the feed cannot be trusted (listener down).
const RECHECK_UNTRUSTED: Duration = Duration::from_secs(2);
/// How often a stream re-reads its run anyway, as a safety net under the feed.
const RECHECK: Duration = Duration::from_secs(30);
/// What a refused client is told to wait before trying a stream again.
const REFUSED_RETRY_SECS: u64 = 30;

/// Open streams, counted per identity and in all.
#[derive(Debug)]
pub struct StreamSlots {
    per_user: usize,
    total: usize,
    open: Mutex<(usize, HashMap<String, usize>)>,
}

/// One open stream; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<StreamSlots>,
    user: String,
}

impl StreamSlots {
    pub fn new(per_user: usize, total: usize) -> Arc<Self> {
        Arc::new(Self { per_user, total, open: Mutex::new((0, HashMap::new())) })
    }

    /// Takes a slot for `user`, or says which bound is reached.
    pub fn take(self: &Arc<Self>, user: &str) -> Result<Slot, ApiError> {
        let mut open = self.open.lock().expect("not poisoned");
        if open.0 >= self.total {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-streams",
                "Too many live streams",
                "This server has as many live streams open as it allows. Poll the progress URL instead.",
            );
            e.retry_after = Some(REFUSED_RETRY_SECS);
            return Err(e);
        }
        let mine = open.1.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams",
                "Too many live streams",
                format!(
                    "You already have {} live streams open. Close a page, or poll the progress URL instead.",
                    self.per_user
                ),
            );
            e.retry_after = Some(REFUSED_RETRY_SECS);
            return Err(e);
        }
        open.0 += 1;
        *open.1.entry(user.to_string()).or_insert(0) += 1;
        Ok(Slot { slots: self.clone(), user: user.to_string() })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.lock().expect("not poisoned").0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("not poisoned");
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.user);
            }
        }
    }
}

/// `GET /api/trading/events/:runId`
#[utoipa::path(
    get,
    operation_id = "streamEvents",
    path = "/api/trading/events/{runId}",
    tag = "runs",
    params(
        ("runId" = uuid::Uuid, Path, description = "The run's id, a UUID."),
        ("Last-Event-ID" = Option<String>, Header, description = "The last event's id (`<version>` or `<version>.<piece>`): only newer states and later text are sent."),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: each unnamed event's `data` is the progress body (`Progress`); each `event: text` carries the next piece of a step's text (`TextDelta`), before the state that completes the step; each `id` is the version, then `.` and the last piece of text sent once there is one; the stream ends after the terminal state.", body = String, content_type = "text/event-stream"),
        (status = 204, description = "The run has ended and its last state was already sent."),
        (status = 400, response = super::responses::BadRunId),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, response = super::responses::RunNotFound),
        (status = 429, description = "Too many open streams of yours (`Retry-After`): poll instead.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many open streams, or streams are off (`Retry-After`): poll instead.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    if state.transport == ProgressTransport::Poll {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "streaming-disabled",
            "Live updates are off",
            "This server is configured for polling (PROGRESS_TRANSPORT=poll). Poll the progress URL instead.",
        ));
    }
    // The same 404 as the progress endpoint, for a run that is missing or not the caller's.
    let body = state.service.progress_body(&user.0, id).await?;
    let (last, text) =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(parse_event_id).unwrap_or((None, None));
    if !body.is_active() && last.is_some_and(|l| l >= body.version) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let slot = state.streams.take(&user.0)?;
    let stream = progress_events(state.service.clone(), user.0, id, (last, text), slot);
    let keep_alive =
        KeepAlive::new().interval(HEARTBEAT).event(Event::default().comment("heartbeat").event("heartbeat").data("{}"));
    let mut resp = Sse::new(stream).keep_alive(keep_alive).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    // Asks nginx-style proxies not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// `<version>` or `<version>.<piece>`: the last state and the last piece of text a client has.
fn parse_event_id(id: &str) -> (Option<i64>, Option<i64>) {
    let mut parts = id.trim().splitn(2, '.');
    let version = parts.next().and_then(|v| v.parse().ok());
    let piece = parts.next().and_then(|p| p.parse().ok());
    (version, piece)
}

struct Follow {
    service: Arc<RunService>,
    user: String,
    run_id: RunId,
    rx: broadcast::Receiver<Change>,
    last: Option<i64>,
    /// The last piece of text sent.
    text: Option<i64>,
    /// Events read and not yet sent.
    queue: VecDeque<Event>,
    first: bool,
    done: bool,
    _slot: Slot,
}

impl Follow {
    fn id(&self) -> String {
        let version = self.last.unwrap_or(0);
        match self.text {
            Some(piece) => format!("{version}.{piece}"),
            None => version.to_string(),
        }
    }

    fn send(&mut self, mut event: Event) {
        if std::mem::take(&mut self.first) {
            event = event.retry(RETRY);
        }
        self.queue.push_back(event);
    }
}

/// The events of one run: its current state at once (unless `last` has it), then each newer
/// version, until the run ends.
fn progress_events(
    service: Arc<RunService>,
    user: String,
    run_id: RunId,
    (last, text): (Option<i64>, Option<i64>),
    slot: Slot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let rx = service.progress_cache().feed().subscribe();
    let queue = VecDeque::new();
    let follow = Follow { service, user, run_id, rx, last, text, queue, first: true, done: false, _slot: slot };
    futures::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(event) = f.queue.pop_front() {
                return Some((Ok(event), f));
            }
            if f.done {
                return None;
            }
            match f.service.progress_body(&f.user, f.run_id).await {
                Ok(body) => {
                    // The text is read after the state: a step's text is stored before the
                    // state that completes it, so it is sent before that state too.
                    let pieces = match f.service.text_after(f.run_id, f.text).await {
                        Ok(pieces) => pieces,
                        Err(e) => {
                            tracing::debug!(error = %e, run_id = %f.run_id, "stream could not read its text");
                            tokio::time::sleep(RECHECK_UNTRUSTED).await;
                            continue;
                        }
                    };
                    let more_text = pieces.len() as u32 == application::transcript::TEXT_READ_MAX;
                    for piece in pieces {
                        f.text = Some(piece.id);
                        let data = domain::TextDelta { step: piece.step, seq: piece.part, delta: piece.delta };
                        let data = serde_json::to_string(&data).expect("plain data");
                        let event = Event::default().event("text").id(f.id()).data(data);
                        f.send(event);
                    }
                    if more_text {
                        continue;
                    }
                    if f.last.is_none_or(|l| body.version > l) {
                        f.done = !body.is_active();
                        f.last = Some(body.version);
                        let data = String::from_utf8_lossy(&body.body).into_owned();
                        let event = Event::default().id(f.id()).data(data);
                        f.send(event);
                        continue;
                    }
                    if !f.queue.is_empty() {
                        continue;
                    }
                    if !body.is_active() {
                        return None;
                    }
                }
                // Archived and then gone, or never ours: nothing more will come.
                Err(Error::NotFound) => return None,
                // The database is away: keep the stream, look again shortly.
                Err(e) => {
                    tracing::debug!(error = %e, run_id = %f.run_id, "stream could not read its run");
                    tokio::time::sleep(RECHECK_UNTRUSTED).await;
                    continue;
                }
            }
            wait_for_change(&mut f).await;
        }
    })
}

/// Returns when the run may have changed: the feed names it, resynchronises or overflowed, or
/// the recheck interval passed.
async fn wait_for_change(f: &mut Follow) {
    run_may_have_changed(&f.service, &mut f.rx, f.run_id).await
}

/// Returns when `run_id` may have changed, as `rx` (a subscription to the service's feed)
/// hears it: the feed names it, resynchronises or overflowed, or the recheck interval passed.
pub(crate) async fn run_may_have_changed(service: &RunService, rx: &mut broadcast::Receiver<Change>, run_id: RunId) {
    let feed = service.progress_cache().feed().clone();
    let recheck = if feed.is_live() { RECHECK } else { RECHECK_UNTRUSTED };
    let deadline = tokio::time::sleep(recheck);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            change = rx.recv() => match change {
                Ok(Change::Job { job_id, .. }) if job_id.0 == run_id.as_uuid() => return,
                Ok(Change::Job { .. }) => {}
                Ok(Change::Resync) | Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => {
                    deadline.as_mut().await;
                    return;
                }
            },
            _ = &mut deadline => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_identity_and_in_all_and_freed_on_drop() {
        let slots = StreamSlots::new(2, 3);
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        let e = slots.take("a").unwrap_err();
        assert_eq!(e.problem.status, 429);
        let _b1 = slots.take("b").unwrap();
        let e = slots.take("c").unwrap_err();
        assert_eq!(e.problem.status, 503);
        assert_eq!(e.retry_after, Some(REFUSED_RETRY_SECS));
        drop(a1);
        assert_eq!(slots.open(), 2);
        assert!(slots.take("a").is_ok());
    }
}
