//! What the public-deployment protections cost: `POST /api/trading/run` and progress-poll
//! throughput with them on, next to the same server with them off, measured in the same run.
//!
//! Each round starts the release server twice on a fresh SQLite database (no workers, so the
//! database holds only what the requests add): once with the switchable protections off
//! (`RUNS_PER_MINUTE_PER_ADDRESS=0`, `RUNS_PER_MINUTE_PER_USER=0`, no `TRUSTED_PROXIES`) and
//! once with them on — both rate limits counting every start (set high enough that they count
//! without refusing, since refusing is not what is measured), and `TRUSTED_PROXIES` so every
//! request's `X-Forwarded-For` is resolved. What cannot be switched off — the CSRF check, the
//! security headers, the session signature, the queue cap's count — runs in both. `--clients`
//! concurrent clients (one identity, same-origin `Origin`, a forwarded address) then start runs
//! for `--secs` seconds, and poll one run's progress for as long. Rounds alternate which goes
//! first, so drift in the machine's load falls on both.
//!
//! cargo build --release -p server -p bench &&
//! cargo run --release -p bench --bin protections -- [--rounds 2] [--secs 5] [--clients 32] [--server PATH]

#[allow(dead_code)]
#[path = "../served.rs"]
mod served;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use served::{Backend, Served};

const HIGH: &str = "4000000000";

/// Requests per second of `clients` clients sending what `request` builds for `secs` seconds;
/// panics on any answer other than `expect`.
async fn load(
    clients: usize,
    secs: u64,
    expect: u16,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> f64 {
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build().expect("client");
    let request = Arc::new(request);
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, request, done) = (client.clone(), request.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < end {
                    let resp = request(&client).send().await.expect("request");
                    let status = resp.status().as_u16();
                    let _ = resp.bytes().await;
                    assert_eq!(status, expect, "an answer other than {expect}");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    for t in tasks {
        t.await.expect("client task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Starts-per-second and polls-per-second of one server.
async fn measure(on: bool, secs: u64, clients: usize) -> (f64, f64) {
    let mut env = vec![
        ("WORKERS", "0".to_string()),
        ("SIMULATED_LATENCY_MS", "0".to_string()),
        ("MAX_ACTIVE_JOBS_PER_USER", HIGH.to_string()),
        ("MAX_QUEUED_RUNS", HIGH.to_string()),
    ];
    if on {
        env.extend([
            ("RUNS_PER_MINUTE_PER_ADDRESS", HIGH.to_string()),
            ("RUNS_PER_MINUTE_PER_USER", HIGH.to_string()),
            ("TRUSTED_PROXIES", "127.0.0.1,::1".to_string()),
        ]);
    } else {
        env.extend([("RUNS_PER_MINUTE_PER_ADDRESS", "0".to_string()), ("RUNS_PER_MINUTE_PER_USER", "0".to_string())]);
    }
    let server = Served::start(&served::server_binary(), Backend::Sqlite, &env).await;
    let base = server.base.clone();
    let cookie = served::new_identity(&reqwest::Client::new(), &base).await;
    let run = served::start_run(&reqwest::Client::new(), &base, &cookie).await.expect("a run to poll");

    let headers = move |b: reqwest::RequestBuilder, base: &str, cookie: &str| {
        b.header("cookie", cookie).header("origin", base).header("x-forwarded-for", "203.0.113.7")
    };
    let (b, c) = (base.clone(), cookie.clone());
    let starts = load(clients, secs, 202, move |client| {
        headers(client.post(format!("{b}/api/trading/run")), &b, &c)
            .json(&serde_json::json!({"symbol": "AAPL", "analysts": ["invest", "risk"]}))
    })
    .await;
    let (b, c) = (base.clone(), cookie.clone());
    let polls =
        load(clients, secs, 200, move |client| headers(client.get(format!("{b}/api/trading/progress/{run}")), &b, &c))
            .await;
    server.stop().await;
    (starts, polls)
}

#[tokio::main]
async fn main() {
    let rounds = bench::arg("--rounds", 2usize);
    let secs = bench::arg("--secs", 5u64);
    let clients = bench::arg("--clients", 32usize);
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        // Odd rounds off first, even rounds on first: whatever warms up or drifts within a
        // round falls on both.
        for protected in if round % 2 == 1 { [false, true] } else { [true, false] } {
            eprintln!("round {round}/{rounds}: protections {} …", if protected { "on" } else { "off" });
            let r = measure(protected, secs, clients).await;
            if protected { on.push(r) } else { off.push(r) }
        }
    }
    let mean = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    println!(
        "protections off vs on: {rounds} alternating rounds, {clients} clients, {secs} s per phase, SQLite, {}",
        bench::machine()
    );
    println!();
    println!("| | off (req/s) | on (req/s) | on ÷ off |");
    println!("|---|---:|---:|---:|");
    for (name, f) in [
        ("`POST /api/trading/run` (202)", (|r: &(f64, f64)| r.0) as fn(&(f64, f64)) -> f64),
        ("progress poll (200)", |r| r.1),
    ] {
        let (a, b) = (mean(&off, f), mean(&on, f));
        println!("| {name} | {a:.0} | {b:.0} | {:.2}× |", b / a);
    }
    println!();
    println!("rounds (starts, polls): off {off:.0?}, on {on:.0?}");
}
