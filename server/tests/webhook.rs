//! Signed webhooks against a real receiver on this machine: every delivery's signature checked
//! as a Standard Webhooks receiver checks it, each event of a run seen once by id across a
//! receiver that answers 500 twice and a worker killed while a delivery was in flight, on
//! both backends; a batch's start and end; a schedule's webhook given up on and disabled until
//! it is set again; and the webhooks a server refuses.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use common::{Server, spawn_worker, visitor};
use hmac::{Hmac, Mac};
use jobs::testing::TestDb;
use serde_json::{Value, json};
use sha2::Sha256;

/// A key of 32 bytes, as `whsec_` and base64.
const SECRET: &str = "whsec_c2lnbmluZyBrZXkgb2YgdGhpcnR5LXR3byBieXRlcyE=";

/// One request the receiver got: its id, the event's type, the step or run it names, whether
/// its signature was right.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    kind: String,
    about: Option<String>,
    /// The batch a batch's event is about.
    batch: Option<String>,
    signed: bool,
}

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests first.
    fail_first: Mutex<u32>,
    /// Hold a request of this type this long before answering (the sender is killed meanwhile).
    hold: Mutex<Option<(String, Duration)>>,
}

fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (id, ts, sig) = (get("webhook-id"), get("webhook-timestamp"), get("webhook-signature"));
    let Ok(ts_secs) = ts.parse::<i64>() else { return false };
    if (chrono::Utc::now().timestamp() - ts_secs).abs() > 300 {
        return false;
    }
    let key = base64::engine::general_purpose::STANDARD.decode(SECRET.trim_start_matches("whsec_")).unwrap();
    let mut mac = <Hmac<Sha256>>::new_from_slice(&key).unwrap();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    sig.split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let kind = parsed["type"].as_str().unwrap_or_default().to_string();
    let about = parsed["step"].as_str().or(parsed["runId"].as_str()).map(String::from);
    let batch = parsed["data"]["batchId"].as_str().map(String::from);
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    r.got.lock().unwrap().push(Received { id, kind: kind.clone(), about, batch, signed: verify(&headers, &body) });
    let hold = r.hold.lock().unwrap().take_if(|(k, _)| *k == kind);
    if let Some((_, wait)) = hold {
        tokio::time::sleep(wait).await;
    }
    let mut fail = r.fail_first.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::NO_CONTENT
}

async fn receiver() -> (Arc<Receiver>, String) {
    let state = Arc::new(Receiver::default());
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

const ENV: [(&str, &str); 4] = [
    ("WEBHOOK_SECRET", SECRET),
    ("WEBHOOK_ALLOW_PRIVATE", "true"),
    ("WEBHOOK_FIRST_RETRY_MS", "100"),
    ("WEBHOOK_TIMEOUT_SECS", "1"),
];

/// Waits until every delivery of the run is delivered; the list.
async fn all_delivered(c: &reqwest::Client, server: &Server, run: &str, at_least: usize) -> Vec<Value> {
    let begun = Instant::now();
    loop {
        let body: Value = c
            .get(server.url(&format!("/api/trading/runs/{run}/deliveries")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let list = body["deliveries"].as_array().unwrap().clone();
        if list.len() >= at_least && list.iter().all(|d| d["deliveredAt"].is_string()) {
            return list;
        }
        assert!(begun.elapsed() < Duration::from_secs(60), "deliveries never all arrived: {list:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn each_event_once_across_500s_and_a_killed_worker_sqlite() {
    each_event_once_across_500s_and_a_killed_worker(TestDb::sqlite()).await;
}

#[tokio::test]
async fn each_event_once_across_500s_and_a_killed_worker_postgres() {
    each_event_once_across_500s_and_a_killed_worker(TestDb::postgres().await).await;
}

/// A run told of its start, each step and its end. The receiver answers 500 to the first two
/// requests, and holds the `completed` event while its worker — the only process sending — is
/// killed; another worker takes over. Every request is signed right; by id, the receiver sees
/// the start, each of the run's steps and its end exactly once, and the ids it saw again were
/// retries of the same event.
async fn each_event_once_across_500s_and_a_killed_worker(db: TestDb) {
    let (rx, url) = receiver().await;
    *rx.fail_first.lock().unwrap() = 2;
    *rx.hold.lock().unwrap() = Some(("run.completed".into(), Duration::from_secs(5)));
    // A delivery may take 3 s, so one in flight is not taken over for 9 s (three times that):
    // the other worker sends the held end again only once that lease has passed.
    let env = [ENV[0], ENV[1], ENV[2], ("WEBHOOK_TIMEOUT_SECS", "3")];
    let web = Server::start_with(db, &["serve", "--workers", "0"], &env).await;
    let db_url = web.db.as_ref().unwrap().url.clone();
    let mut worker = spawn_worker(&db_url, &env);
    let c = visitor(&web).await;
    let body = json!({"symbol": "AAPL", "analysts": ["invest", "technical"], "webhook": url,
                      "webhookEvents": ["start", "step", "completed"]});
    let run = common::start_run(&c, &web, body).await;
    let (done, _) = common::wait_until_done(&c, &web, &run, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed");

    // The `completed` delivery reaches the receiver, which holds it; its sender dies.
    let begun = Instant::now();
    while !rx.got.lock().unwrap().iter().any(|r| r.kind == "run.completed") {
        assert!(begun.elapsed() < Duration::from_secs(30), "the end was never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.kill().await.unwrap();
    let _second = spawn_worker(&db_url, &env);

    let steps = common::steps(&done).len();
    let deliveries = all_delivered(&c, &web, &run, steps + 2).await;
    let got = rx.got.lock().unwrap().clone();
    assert!(got.iter().all(|r| r.signed), "every request signed right: {got:#?}");
    let mut by_id: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    for r in &got {
        by_id.entry(r.id.clone()).or_default().push(r);
    }
    for (id, seen) in &by_id {
        assert!(seen.iter().all(|r| (&r.kind, &r.about) == (&seen[0].kind, &seen[0].about)), "{id}: one event");
    }
    let events: Vec<(String, Option<String>)> =
        by_id.values().map(|seen| (seen[0].kind.clone(), seen[0].about.clone())).collect();
    let distinct: BTreeSet<_> = events.iter().cloned().collect();
    assert_eq!(distinct.len(), events.len(), "no event under two ids: {events:?}");
    let expected: BTreeSet<(String, Option<String>)> = std::iter::once(("run.start".to_string(), None))
        .chain(common::steps(&done).into_iter().map(|(name, _)| ("run.step".to_string(), Some(name))))
        .chain(std::iter::once(("run.completed".to_string(), None)))
        .collect();
    assert_eq!(distinct, expected);
    // Sent more than once: the two answered 500, and the one in flight when its sender died.
    let again: usize = by_id.values().map(|seen| seen.len() - 1).sum();
    assert!(again >= 3, "{again} repeats: {got:#?}");
    let completed = &by_id.values().find(|s| s[0].kind == "run.completed").unwrap();
    assert!(completed.len() >= 2, "the held end was sent again by the other worker: {completed:#?}");
    // The deliveries say so too.
    assert_eq!(deliveries.len(), expected.len());
    let attempts: u64 = deliveries.iter().map(|d| d["attempts"].as_u64().unwrap()).sum();
    // Every request counted as an attempt (a claim the killed worker made but never sent counts
    // too).
    assert!(attempts as usize >= got.len(), "every attempt counted: {deliveries:#?}");
    for d in &deliveries {
        assert!(by_id.contains_key(d["webhookId"].as_str().unwrap()), "{d}");
        assert_eq!(d["lastStatus"], 204, "{d}");
    }
}

/// Waits for `kind`'s end at the receiver; then each of its requests is signed, its start and
/// end came once each, and one step per child named.
async fn told_of_start_children_and_end(rx: &Receiver, kind: &str, children: BTreeSet<String>) {
    let begun = Instant::now();
    let end = format!("{kind}.completed");
    loop {
        let kinds: Vec<String> = rx.got.lock().unwrap().iter().map(|r| r.kind.clone()).collect();
        if kinds.contains(&end) {
            break;
        }
        assert!(begun.elapsed() < Duration::from_secs(60), "the end never came: {kinds:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = rx.got.lock().unwrap().clone();
    assert!(got.iter().all(|r| r.signed));
    // Each event under one id (a delivery slower than its timeout on a loaded machine is sent
    // again, under the same id).
    let events: BTreeMap<&str, &str> = got.iter().map(|r| (r.id.as_str(), r.kind.as_str())).collect();
    let kinds: Vec<&str> = events.values().copied().collect();
    assert_eq!(kinds.iter().filter(|k| **k == format!("{kind}.start")).count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == end).count(), 1, "{kinds:?}");
    let step = format!("{kind}.step");
    let stepped: BTreeSet<String> = got.iter().filter(|r| r.kind == step).filter_map(|r| r.about.clone()).collect();
    assert_eq!(stepped, children, "one step per child");
    assert_eq!(kinds.iter().filter(|k| **k == step).count(), children.len(), "one event per child: {kinds:?}");
}

/// A batch told of its start, each run's end and its own: one delivery each, signed.
#[tokio::test]
async fn a_batch_is_told_of_its_start_runs_and_end() {
    let (rx, url) = receiver().await;
    let server = Server::start(TestDb::sqlite(), &ENV).await;
    let c = visitor(&server).await;
    let resp = c
        .post(server.url("/api/trading/batches"))
        .json(&json!({"symbols": ["AAPL", "MSFT"], "analysts": ["invest"], "webhook": url,
                      "webhookEvents": ["start", "step", "completed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let started: Value = resp.json().await.unwrap();
    let runs: BTreeSet<String> =
        started["runs"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    told_of_start_children_and_end(&rx, "batch", runs).await;
}

/// A backtest, the same: its start, each cell's end, its own end.
#[tokio::test]
async fn a_backtest_is_told_of_its_start_cells_and_end() {
    let (rx, url) = receiver().await;
    let server = Server::start(TestDb::sqlite(), &ENV).await;
    let c = visitor(&server).await;
    let resp = c
        .post(server.url("/api/trading/backtests"))
        .json(&json!({"symbols": ["AAPL"], "from": "2019-01-01", "to": "2019-03-01", "everyDays": 20,
                      "analysts": ["invest"], "webhook": url, "webhookEvents": ["start", "step", "completed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["backtestId"].as_str().unwrap().to_string();
    let begun = Instant::now();
    let view = loop {
        let view: Value =
            c.get(server.url(&format!("/api/trading/backtests/{id}"))).send().await.unwrap().json().await.unwrap();
        if view["status"] != "running" {
            break view;
        }
        assert!(begun.elapsed() < Duration::from_secs(60), "the backtest never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cells: BTreeSet<String> =
        view["cells"].as_array().unwrap().iter().map(|c| c["runId"].as_str().unwrap().to_string()).collect();
    assert_eq!(cells.len(), 3);
    told_of_start_children_and_end(&rx, "backtest", cells).await;
}

/// Where a webhook may not lead, and what it must be.
#[tokio::test]
async fn webhooks_to_private_addresses_and_without_a_secret_are_refused() {
    let strict = Server::start(TestDb::sqlite(), &[("WEBHOOK_SECRET", SECRET), ("WORKERS", "0")]).await;
    let c = visitor(&strict).await;
    let start = |body: Value| c.post(strict.url("/api/trading/run")).json(&body).send();
    for (hook, says) in [
        ("https://127.0.0.1/hook", "127.0.0.1: a webhook may not reach a private, loopback or link-local address"),
        ("https://localhost:8443/hook", "a webhook may not reach"),
        ("https://[::1]/hook", "a webhook may not reach"),
        ("https://169.254.169.254/latest", "a webhook may not reach"),
        ("http://example.com/hook", "is not an https URL"),
        ("not a url", "is not a URL"),
    ] {
        let resp = start(json!({"symbol": "AAPL", "webhook": hook})).await.unwrap();
        assert_eq!(resp.status(), 400, "{hook}");
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], "webhook", "{hook}: {p}");
        assert!(p["errors"][0]["message"].as_str().unwrap().contains(says), "{hook}: {p}");
    }
    let resp = start(json!({"symbol": "AAPL", "webhook": "https://127.0.0.1/hook", "webhookEvents": ["finish"]}))
        .await
        .unwrap();
    let p: Value = resp.json().await.unwrap();
    let fields: BTreeSet<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, BTreeSet::from(["webhook", "webhookEvents"]), "{p}");
    let listed: Value = c.get(strict.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["total"], 0, "nothing was started");

    let unsigned = Server::start(TestDb::sqlite(), &[("WORKERS", "0"), ("WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let c = visitor(&unsigned).await;
    let resp = c
        .post(unsigned.url("/api/trading/run"))
        .json(&json!({"symbol": "AAPL", "webhook": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let p: Value = resp.json().await.unwrap();
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("no WEBHOOK_SECRET"), "{p}");
}

/// A schedule as `GET /api/schedules/{id}` gives it.
async fn schedule_of(c: &reqwest::Client, url: &str) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

/// The first batch the schedule at `url` fired after `since`, as `GET /api/trading/batches/{id}`
/// gives it.
async fn batch_fired_after(c: &reqwest::Client, server: &Server, url: &str, since: DateTime<Utc>) -> Value {
    let begun = Instant::now();
    loop {
        let fires = schedule_of(c, url).await["lastFires"].as_array().unwrap().clone();
        let after = fires.iter().find(|f| f["firedAt"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap() > since);
        // A tick is recorded just before its batch is stored.
        if let Some(f) = after {
            let batch = c.get(server.url(&format!("/api/trading/batches/{}", f["batchId"].as_str().unwrap())));
            let resp = batch.send().await.unwrap();
            if resp.status() == 200 {
                return resp.json().await.unwrap();
            }
        }
        assert!(begun.elapsed() < Duration::from_secs(30), "no tick after {since}: {fires:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A schedule whose receiver always fails: the first batch's end is sent ten times (the first
/// try and nine retries, one id), then given up; the schedule's webhook is then disabled, and
/// its batches after that go without one, until the webhook is set again.
#[tokio::test]
async fn a_schedules_webhook_given_up_on_is_disabled_until_set_again() {
    let (rx, url) = receiver().await;
    *rx.fail_first.lock().unwrap() = u32::MAX;
    let mut env = ENV.to_vec();
    env[2] = ("WEBHOOK_FIRST_RETRY_MS", "1");
    env.extend([("MIN_SCHEDULE_INTERVAL_SECS", "1"), ("SIMULATED_LATENCY_MS", "0"), ("WORKERS", "2")]);
    let server = Server::start(TestDb::sqlite(), &env).await;
    let c = visitor(&server).await;
    let body = json!({"name": "Failing hook", "symbols": ["AAPL"], "cron": "*/10 * * * * *", "analysts": ["risk"],
                      "webhook": url, "webhookEvents": ["completed"]});
    let created: Value = c.post(server.url("/api/schedules")).json(&body).send().await.unwrap().json().await.unwrap();
    let schedule = server.url(&format!("/api/schedules/{}", created["scheduleId"].as_str().unwrap()));

    let begun = Instant::now();
    // A tick read before the disable committed may still carry the webhook: what follows is
    // measured from when the disable was seen.
    let seen_disabled = loop {
        if schedule_of(&c, &schedule).await["webhookDisabledAt"].is_string() {
            break Utc::now();
        }
        assert!(begun.elapsed() < Duration::from_secs(120), "never disabled: {:?}", rx.got.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let got = rx.got.lock().unwrap().clone();
    assert!(got.iter().all(|r| r.signed && r.kind == "batch.completed"), "{got:?}");
    let first = &got[0];
    let tries: Vec<&Received> = got.iter().filter(|r| r.id == first.id).collect();
    assert_eq!(tries.len(), 10, "the first try and nine retries, under one id: {got:?}");
    assert!(tries.iter().all(|r| r.batch.is_some() && r.batch == first.batch), "{tries:?}");

    // A batch fired after the webhook was disabled is told to no one. Set again, the next
    // batch's end is sent (and fails, as ever), and still nothing about that one: it ended
    // first, and a batch's events are sent in the order they happen. The earlier batches'
    // deliveries that give up after the webhook was set again do not disable it again.
    let without = batch_fired_after(&c, &server, &schedule, seen_disabled).await;
    let without = without["batchId"].as_str().unwrap().to_string();
    let again: Value = c.patch(&schedule).json(&json!({"webhook": url})).send().await.unwrap().json().await.unwrap();
    assert!(again.get("webhookDisabledAt").is_none(), "{again}");
    let with = batch_fired_after(&c, &server, &schedule, Utc::now()).await;
    let with = with["batchId"].as_str().unwrap().to_string();
    let begun = Instant::now();
    while !rx.got.lock().unwrap().iter().any(|r| r.batch.as_deref() == Some(with.as_str())) {
        assert!(begun.elapsed() < Duration::from_secs(30), "the end of batch {with} was never sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = rx.got.lock().unwrap().clone();
    assert!(!got.iter().any(|r| r.batch.as_deref() == Some(without.as_str())), "{without} was told: {got:?}");
}
