//! Live updates and cheap polls against the real server binary: Server-Sent Events in order
//! with `Last-Event-ID` resume, their bounds and errors, ETags that never hide a changed body,
//! and web-only + worker-only processes streaming a run on SQLite and PostgreSQL.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Server, spawn_worker, visitor, wait_until_done};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use jobs::testing::TestDb;
use serde_json::{Value, json};

async fn start_run(c: &reqwest::Client, s: &Server, analysts: &[&str]) -> String {
    let resp = c
        .post(s.url("/api/trading/run"))
        .json(&json!({"symbol": "AAPL", "analysts": analysts}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 202);
    resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string()
}

/// One received event: its id, retry hint and body.
#[derive(Debug)]
struct Received {
    id: i64,
    retry: Option<Duration>,
    body: Value,
}

/// Opens the stream and reads up to `limit` progress events (heartbeats are skipped), or
/// until the server ends it. Returns the events and whether the stream ended.
async fn read_events(
    c: &reqwest::Client,
    s: &Server,
    run_id: &str,
    last_event_id: Option<i64>,
    limit: usize,
) -> (Vec<Received>, bool) {
    let mut req = c.get(s.url(&format!("/api/trading/events/{run_id}"))).header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    let resp = req.send().await.expect("stream");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-cache, private");
    let mut stream = resp.bytes_stream().eventsource();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < limit {
        let next = tokio::time::timeout_at(deadline.into(), stream.next()).await.expect("events in time");
        match next {
            None => return (out, true),
            Some(Err(e)) => panic!("malformed event stream: {e}"),
            Some(Ok(ev)) if ev.event == "heartbeat" || ev.event == "text" => continue,
            Some(Ok(ev)) => out.push(Received {
                id: version_of(&ev.id),
                retry: ev.retry,
                body: serde_json::from_str(&ev.data).expect("json data"),
            }),
        }
    }
    (out, false)
}

/// The version in an event's id (`<version>` or `<version>.<piece of text>`).
fn version_of(id: &str) -> i64 {
    id.split('.').next().unwrap().parse().expect("numeric version")
}

fn assert_in_order(events: &[Received]) {
    for w in events.windows(2) {
        assert!(w[1].id > w[0].id, "versions increase: {} then {}", w[0].id, w[1].id);
        let (a, b) = (w[0].body["progress"].as_u64().unwrap(), w[1].body["progress"].as_u64().unwrap());
        assert!(b >= a, "progress never goes back: {a} then {b}");
    }
}

/// A run streamed to its end, interrupted once and resumed with `Last-Event-ID`: every event
/// is newer than the last one seen, the last is the completed state with its result, the
/// stream then ends, and reconnecting after the end is a 204 (EventSource stops).
#[tokio::test]
async fn sse_streams_a_run_in_order_and_resumes_with_last_event_id() {
    let server = Server::start(TestDb::sqlite(), &[("SIMULATED_LATENCY_MS", "400")]).await;
    let c = visitor(&server).await;
    let id = start_run(&c, &server, &["invest", "risk"]).await;

    let (first, ended) = read_events(&c, &server, &id, None, 2).await;
    assert!(!ended);
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].retry, Some(Duration::from_secs(2)), "the first event carries the retry hint");
    assert_eq!(first[0].body["runId"], id.as_str());
    assert_in_order(&first);

    let last = first.last().unwrap().id;
    let (rest, ended) = read_events(&c, &server, &id, Some(last), usize::MAX).await;
    assert!(ended, "the stream ends after the terminal state");
    assert!(!rest.is_empty());
    assert!(rest[0].id > last, "a resumed stream starts after Last-Event-ID ({} after {last})", rest[0].id);
    assert_in_order(&rest);
    let done = &rest.last().unwrap().body;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progress"], 100);
    assert!(done["result"]["rating"].is_string(), "the final event carries the result: {done}");

    // The stream's final state is the progress endpoint's, tag for tag.
    let resp = c.get(server.url(&format!("/api/trading/progress/{id}"))).send().await.unwrap();
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), format!("\"v{}\"", rest.last().unwrap().id));
    assert_eq!(resp.json::<Value>().await.unwrap(), *done);

    let resp = c
        .get(server.url(&format!("/api/trading/events/{id}")))
        .header("last-event-id", rest.last().unwrap().id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "nothing newer will come");
    // Without Last-Event-ID a finished run answers its final state and closes.
    let (again, ended) = read_events(&c, &server, &id, None, usize::MAX).await;
    assert!(ended);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].body, *done);
}

async fn problem(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}

/// Malformed and foreign ids, and the per-identity and per-process bounds.
#[tokio::test]
async fn streams_are_owned_and_bounded() {
    let server = Server::start(
        TestDb::sqlite(),
        &[("SIMULATED_LATENCY_MS", "60000"), ("MAX_STREAMS_PER_USER", "1"), ("MAX_STREAMS", "2")],
    )
    .await;
    let (alice, bob, carol) = (visitor(&server).await, visitor(&server).await, visitor(&server).await);
    let id = start_run(&alice, &server, &["risk"]).await;
    let bob_id = start_run(&bob, &server, &["risk"]).await;
    let carol_id = start_run(&carol, &server, &["risk"]).await;
    let events = |id: &str| server.url(&format!("/api/trading/events/{id}"));

    let bad = problem(alice.get(events("not-a-run")).send().await.unwrap(), 400).await;
    assert!(bad["detail"].as_str().unwrap().contains("runId"), "{bad}");
    let theirs = problem(bob.get(events(&id)).send().await.unwrap(), 404).await;
    let missing = problem(bob.get(events("0b6c4a3e-8f1d-4c52-9a57-2f0d8e9b1c7a")).send().await.unwrap(), 404).await;
    assert_eq!(theirs, missing, "a foreign run is indistinguishable from a missing one");

    let open = alice.get(events(&id)).send().await.unwrap();
    assert_eq!(open.status(), 200);
    let second = alice.get(events(&id)).send().await.unwrap();
    assert!(second.headers().contains_key("retry-after"));
    let body = problem(second, 429).await;
    assert!(body["detail"].as_str().unwrap().contains("poll"), "{body}");

    let bobs = bob.get(events(&bob_id)).send().await.unwrap();
    assert_eq!(bobs.status(), 200);
    let full = carol.get(events(&carol_id)).send().await.unwrap();
    assert!(full.headers().contains_key("retry-after"));
    problem(full, 503).await;

    // Closing a stream frees its slot.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = alice.get(events(&id)).send().await.unwrap();
        if resp.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With PROGRESS_TRANSPORT=poll the stream endpoint refuses (the page polls instead).
#[tokio::test]
async fn poll_transport_serves_no_stream() {
    let server = Server::start(TestDb::sqlite(), &[("PROGRESS_TRANSPORT", "poll")]).await;
    let c = visitor(&server).await;
    let id = start_run(&c, &server, &["risk"]).await;
    let body = problem(c.get(server.url(&format!("/api/trading/events/{id}"))).send().await.unwrap(), 503).await;
    assert_eq!(body["type"], "/problems/streaming-disabled");
    let (done, _) = wait_until_done(&c, &server, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed");
}

/// Polls with ETags as fast as it can while a run goes, and checks what a cache must never
/// do: one tag for two different bodies, or a 304 for a tag the server no longer has.
async fn etags_never_hide_a_change(server: &Server, c: &reqwest::Client, id: &str) {
    let url = server.url(&format!("/api/trading/progress/{id}"));
    let mut bodies: HashMap<String, String> = HashMap::new();
    let mut last_tag: Option<String> = None;
    let mut not_modified = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut req = c.get(&url);
        if let Some(tag) = &last_tag {
            req = req.header("if-none-match", tag);
        }
        let resp = req.send().await.unwrap();
        let tag = resp.headers()["etag"].to_str().unwrap().to_string();
        if resp.status() == 304 {
            not_modified += 1;
            assert_eq!(Some(&tag), last_tag.as_ref(), "a 304 names the tag asked about");
            // What the server holds for that tag right now must be what we were given for it.
            let fresh = c.get(&url).send().await.unwrap();
            let fresh_tag = fresh.headers()["etag"].to_str().unwrap().to_string();
            let text = fresh.text().await.unwrap();
            if let Some(known) = bodies.get(&fresh_tag) {
                assert_eq!(known, &text, "tag {fresh_tag} stood for two bodies");
            }
            bodies.insert(fresh_tag, text);
            assert!(Instant::now() < deadline, "the run did not finish");
            continue;
        }
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        if let Some(known) = bodies.get(&tag) {
            assert_eq!(known, &text, "tag {tag} stood for two bodies");
        }
        let body: Value = serde_json::from_str(&text).unwrap();
        bodies.insert(tag.clone(), text);
        last_tag = Some(tag);
        if !matches!(body["status"].as_str(), Some("pending" | "running")) {
            break;
        }
        assert!(Instant::now() < deadline, "the run did not finish");
    }
    assert!(not_modified > 0, "some polls were answered 304");
    assert!(bodies.len() > 2, "the run moved through several versions");
    // Every tag seen before the end is stale now: asking with any of them gets the final body.
    let final_tag = last_tag.unwrap();
    for tag in bodies.keys().filter(|t| **t != final_tag) {
        let resp = c.get(&url).header("if-none-match", tag).send().await.unwrap();
        assert_eq!(resp.status(), 200, "stale tag {tag} was answered 304");
    }
}

#[tokio::test]
async fn a_304_never_hides_a_changed_body_sqlite() {
    let server = Server::start(TestDb::sqlite(), &[("SIMULATED_LATENCY_MS", "300")]).await;
    let c = visitor(&server).await;
    let id = start_run(&c, &server, &["invest", "risk", "technical"]).await;
    etags_never_hide_a_change(&server, &c, &id).await;
}

/// A web-only process and a worker-only process on one database: the web process learns of
/// the worker's writes (NOTIFY on PostgreSQL, the commit watcher on SQLite), so its stream
/// follows the run to the end and its polls are never answered from a stale cache.
async fn split_processes_stream_a_run(db: TestDb) {
    let web = Server::start_with(db, &["serve", "--workers", "0"], &[]).await;
    let url = web.db.as_ref().unwrap().url.clone();
    let _worker = spawn_worker(&url, &[("SIMULATED_LATENCY_MS", "300")]);
    let c = visitor(&web).await;
    let id = start_run(&c, &web, &["invest", "risk"]).await;
    let (events, ended) = read_events(&c, &web, &id, None, usize::MAX).await;
    assert!(ended);
    assert!(events.len() >= 4, "the stream saw the run move: {} events", events.len());
    assert_in_order(&events);
    assert_eq!(events[0].body["status"], "pending");
    assert_eq!(events.last().unwrap().body["status"], "completed");

    let id = start_run(&c, &web, &["invest", "risk", "technical"]).await;
    etags_never_hide_a_change(&web, &c, &id).await;
}

#[tokio::test]
async fn web_only_and_worker_only_processes_on_sqlite() {
    split_processes_stream_a_run(TestDb::sqlite()).await;
}

#[tokio::test]
async fn web_only_and_worker_only_processes_on_postgres() {
    split_processes_stream_a_run(TestDb::postgres().await).await;
}

/// The notification connections are cut in the middle of a run (PostgreSQL terminates them,
/// as a failover or a connection reaper would): the open stream still follows the run to its
/// end, in order, and the processes listen again — a run started afterwards is streamed too
/// and no poll is answered from a stale cache.
#[tokio::test]
async fn a_cut_notification_connection_does_not_stall_a_stream_on_postgres() {
    let web = Server::start_with(TestDb::postgres().await, &["serve", "--workers", "0"], &[]).await;
    let url = web.db.as_ref().unwrap().url.clone();
    let _worker = spawn_worker(&url, &[("SIMULATED_LATENCY_MS", "700")]);
    let admin = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    let listeners = || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND query ILIKE 'LISTEN%'",
        )
        .fetch_all(&admin)
        .await
        .unwrap()
    };
    // The web and the worker process each listen (the worker may still be starting).
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let now = listeners().await;
        if now.len() == 2 {
            break now;
        }
        assert!(Instant::now() < deadline, "two processes listening: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let c = visitor(&web).await;
    let id = start_run(&c, &web, &["invest", "risk"]).await;
    let resp = c
        .get(web.url(&format!("/api/trading/events/{id}")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream().eventsource();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut events: Vec<Received> = Vec::new();
    let mut cut = false;
    loop {
        let next = tokio::time::timeout_at(deadline.into(), stream.next()).await.expect("the stream went on in time");
        let Some(ev) = next else { break };
        let ev = ev.expect("well-formed events");
        if ev.event == "heartbeat" || ev.event == "text" {
            continue;
        }
        events.push(Received {
            id: version_of(&ev.id),
            retry: ev.retry,
            body: serde_json::from_str(&ev.data).unwrap(),
        });
        if !cut && events.last().unwrap().body["status"] == "running" {
            // Mid-run: cut both processes' notification connections.
            let terminated: Vec<bool> =
                sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid")
                    .bind(&before)
                    .fetch_all(&admin)
                    .await
                    .unwrap();
            assert_eq!(terminated, [true, true]);
            cut = true;
        }
    }
    assert!(cut, "the run was seen running before it ended: {} events", events.len());
    assert_in_order(&events);
    let last = &events.last().unwrap().body;
    assert_eq!(last["status"], "completed", "{last}");

    // Both listen again, on new connections.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = listeners().await;
        if now.len() == 2 && now.iter().all(|p| !before.contains(p)) {
            break;
        }
        assert!(Instant::now() < deadline, "listening again: before {before:?}, now {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = start_run(&c, &web, &["invest", "risk", "technical"]).await;
    etags_never_hide_a_change(&web, &c, &id).await;
}
