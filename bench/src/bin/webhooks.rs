//! Webhook deliveries through the outbox: `--runs` offline runs (1,000), each with a webhook
//! told of its end, against a receiver in this process that answers 204 and keeps every
//! request's `webhook-id`, type and arrival. Two phases, each on a fresh server and database:
//!
//! - **steady**: the runs are started and the deliveries counted as they arrive. Measured:
//!   deliveries a second (from the first arrival to the last), and the delay of each from its
//!   event (the run's `completedAt` in the body) to its arrival — p50, p99, max.
//! - **kill**: the same, but the server is killed (SIGKILL) once half the deliveries have
//!   arrived and started again on the same database. Measured: ids received, distinct ids (none
//!   lost: one per run), and ids received more than once (the deliveries in flight at the kill,
//!   sent again after their lease by the new process — a receiver drops them by id).
//!
//! cargo build --release -p server -p bench &&
//! cargo run --release -p bench --bin webhooks -- --backend sqlite|postgres [--runs 1000]
//!     [--workers 8] [--server PATH]

#[allow(dead_code)]
#[path = "../served.rs"]
mod served;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use served::{Backend, Served};
use tokio::time::Instant;

const SECRET: &str = "whsec_c2lnbmluZyBrZXkgb2YgdGhpcnR5LXR3byBieXRlcyE=";

/// One request: its webhook-id, the run it is about, the run's end and the arrival.
type Got = (String, String, DateTime<Utc>, DateTime<Utc>);

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Got>>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Utc::now();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let run = v["data"]["runId"].as_str().unwrap_or_default().to_string();
    let event = v["data"]["completedAt"].as_str().and_then(|t| t.parse().ok()).unwrap_or(at);
    r.got.lock().unwrap().push((id, run, event, at));
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

fn env(workers: usize) -> Vec<(&'static str, String)> {
    vec![
        ("WEBHOOK_SECRET", SECRET.into()),
        ("WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("WEBHOOK_TIMEOUT_SECS", "2".into()),
        ("SIMULATED_LATENCY_MS", "0".into()),
        ("WORKERS", workers.to_string()),
        ("LEASE_SECS", "5".into()),
        ("MAX_ACTIVE_JOBS_PER_USER", "100000".into()),
        ("MAX_QUEUED_RUNS", "100000".into()),
        ("RUNS_PER_MINUTE_PER_ADDRESS", "0".into()),
        ("RUNS_PER_MINUTE_PER_USER", "0".into()),
    ]
}

/// Starts `runs` runs, each with the webhook; returns once all are stored.
async fn start_runs(client: &reqwest::Client, base: &str, cookie: &str, url: &str, runs: usize) {
    let body = serde_json::json!({"symbol": "AAPL", "analysts": ["invest"], "webhook": url});
    let starts = (0..runs).map(|_| {
        let body = body.clone();
        async move {
            let resp = client
                .post(format!("{base}/api/trading/run"))
                .header(reqwest::header::COOKIE, cookie)
                .json(&body)
                .send()
                .await
                .expect("start");
            assert_eq!(resp.status(), reqwest::StatusCode::ACCEPTED, "{}", resp.text().await.unwrap_or_default());
        }
    });
    futures::future::join_all(starts).await;
}

async fn wait_for(rx: &Receiver, distinct: usize, limit: Duration) {
    let begun = Instant::now();
    loop {
        let seen = rx.got.lock().unwrap().iter().map(|g| g.0.clone()).collect::<std::collections::HashSet<_>>().len();
        if seen >= distinct {
            return;
        }
        assert!(begun.elapsed() < limit, "{seen} of {distinct} deliveries after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() {
    let backend = Backend::parse(&bench::arg("--backend", "sqlite".to_string()));
    let runs: usize = bench::arg("--runs", 1000);
    let workers: usize = bench::arg("--workers", 8);
    let binary = served::server_binary();
    println!("{} · {} · {runs} runs, {workers} workers", bench::machine(), backend.label());
    let client = reqwest::Client::new();

    // Steady.
    let (rx, url) = receiver().await;
    let server = Served::start(&binary, backend, &env(workers)).await;
    let cookie = served::new_identity(&client, &server.base).await;
    start_runs(&client, &server.base, &cookie, &url, runs).await;
    wait_for(&rx, runs, Duration::from_secs(600)).await;
    server.stop().await;
    let got = rx.got.lock().unwrap().clone();
    let first = got.iter().map(|g| g.3).min().unwrap();
    let last = got.iter().map(|g| g.3).max().unwrap();
    let span = (last - first).num_milliseconds().max(1) as f64 / 1000.0;
    let delays: Vec<f64> = got.iter().map(|g| (g.3 - g.2).num_milliseconds() as f64).collect();
    let (p50, p99, max) = bench::quantiles(delays);
    println!(
        "steady: {} deliveries in {span:.1} s = {:.0}/s; delay from the run's end to its delivery p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms",
        got.len(),
        got.len() as f64 / span
    );

    // Kill.
    let (rx, url) = receiver().await;
    let db = match backend {
        Backend::Sqlite => jobs::testing::TestDb::sqlite(),
        Backend::Postgres => jobs::testing::TestDb::postgres().await,
    };
    let server = Served::start_on(&binary, &db.url, &env(workers)).await;
    let cookie = served::new_identity(&client, &server.base).await;
    start_runs(&client, &server.base, &cookie, &url, runs).await;
    wait_for(&rx, runs / 2, Duration::from_secs(600)).await;
    server.stop().await;
    let at_kill = rx.got.lock().unwrap().len();
    let again = Served::start_on(&binary, &db.url, &env(workers)).await;
    wait_for(&rx, runs, Duration::from_secs(600)).await;
    // Anything still to come (a delivery sent twice) has had its lease and more.
    tokio::time::sleep(Duration::from_secs(8)).await;
    again.stop().await;
    let got = rx.got.lock().unwrap().clone();
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    let mut per_run: HashMap<&str, usize> = HashMap::new();
    for g in &got {
        *per_id.entry(&g.0).or_default() += 1;
        per_run.entry(&g.1).or_default();
    }
    let runs_told = per_run.len();
    let repeated = per_id.values().filter(|n| **n > 1).count();
    let lost = runs.saturating_sub(per_id.len());
    println!(
        "kill: killed after {at_kill} received; {} requests, {} distinct ids for {runs_told} runs — {lost} lost, {repeated} ids received more than once",
        got.len(),
        per_id.len()
    );
    assert_eq!(lost, 0, "every run's end was delivered");
    assert_eq!(per_id.len(), runs, "one id per run's end");
}
