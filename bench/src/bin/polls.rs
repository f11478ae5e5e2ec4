//! What a progress poll costs next to the cheapest answer the server has: for each backend, the
//! release server (a child process, fresh database, the offline model without waiting) runs
//! one analysis to completion; then `wrk` (2 threads, 64 connections, 8 s each, `--latency`)
//! hits, one after the other in the same run, `/healthz`, the finished run's progress without
//! `If-None-Match` (a 200 from the cached body) and with its ETag (a 304). Targets (issue 8):
//! 304 ≥ 0.5× `/healthz` with p99 < 20 ms; 200 ≥ 0.25× `/healthz`.
//!
//! cargo build --release -p server -p bench &&
//! cargo run --release -p bench --bin polls -- [--backends sqlite,postgres] [--secs 8] [--connections 64] [--server PATH]

#[allow(dead_code)]
#[path = "../served.rs"]
mod served;

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, ETAG, IF_NONE_MATCH};
use served::{Backend, Served};

/// What `wrk --latency` printed that we use.
#[derive(Debug, Default)]
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    bytes_read: f64,
    /// Socket errors (connect + read + write + timeout) and non-2xx/3xx answers.
    errors: u64,
}

impl Wrk {
    fn bytes_per_response(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.bytes_read / self.requests as f64 }
    }
}

/// A duration as wrk writes it: `812.00us`, `1.23ms`, `2.00s`, `1.50m`.
fn millis(s: &str) -> f64 {
    let (n, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("wrk duration '{s}'"));
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        other => panic!("wrk duration unit '{other}'"),
    }
}

/// A size as wrk writes it: `1.23MB` (binary multiples).
fn bytes(s: &str) -> f64 {
    let (n, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("wrk size '{s}'"));
    n * match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("wrk size unit '{other}'"),
    }
}

fn parse_wrk(out: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => w.rps = n.parse().expect("Requests/sec"),
            ["50%", d] => w.p50_ms = millis(d),
            ["99%", d] => w.p99_ms = millis(d),
            [n, "requests", "in", _, size, "read"] => {
                w.requests = n.parse().expect("requests");
                w.bytes_read = bytes(size);
            }
            ["Socket", "errors:", rest @ ..] => {
                w.errors += rest.iter().filter_map(|t| t.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => w.errors += n.parse::<u64>().expect("non-2xx"),
            _ => {}
        }
    }
    assert!(w.rps > 0.0 && w.p99_ms > 0.0, "could not read wrk's output:\n{out}");
    w
}

async fn wrk(url: &str, headers: &[String], secs: u64, connections: u32) -> Wrk {
    let mut cmd = tokio::process::Command::new("wrk");
    cmd.args(["-t2", &format!("-c{connections}"), &format!("-d{secs}s"), "--latency"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().await.expect("wrk is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    parse_wrk(&text)
}

struct Row {
    backend: Backend,
    health: Wrk,
    full: Wrk,
    not_modified: Wrk,
}

async fn measure(backend: Backend, secs: u64, connections: u32) -> Row {
    let server = Served::start(&served::server_binary(), backend, &[("SIMULATED_LATENCY_MS", "0".into())]).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let cookie = served::new_identity(&client, &base).await;
    let run = served::start_run(&client, &base, &cookie).await.expect("start a run");
    let progress = format!("{base}/api/trading/progress/{run}");

    // Until the run has finished; then its ETag no longer changes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let etag = loop {
        let resp = client.get(&progress).header(COOKIE, &cookie).send().await.expect("progress");
        assert_eq!(resp.status(), StatusCode::OK);
        let etag = resp.headers().get(ETAG).expect("an ETag").to_str().expect("ascii").to_string();
        let body: serde_json::Value = resp.json().await.expect("progress JSON");
        if served::is_terminal(&body) {
            assert_eq!(body["status"], "completed", "{body}");
            break etag;
        }
        assert!(tokio::time::Instant::now() < deadline, "the run did not finish within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let check = client
        .get(&progress)
        .header(COOKIE, &cookie)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("conditional progress");
    assert_eq!(check.status(), StatusCode::NOT_MODIFIED, "the ETag of a finished run should match");

    let cookie_header = format!("Cookie: {cookie}");
    let health = wrk(&format!("{base}/healthz"), &[], secs, connections).await;
    let full = wrk(&progress, std::slice::from_ref(&cookie_header), secs, connections).await;
    let not_modified = wrk(&progress, &[cookie_header, format!("If-None-Match: {etag}")], secs, connections).await;
    server.stop().await;
    Row { backend, health, full, not_modified }
}

#[tokio::main]
async fn main() {
    let backends: Vec<Backend> = bench::list("--backends", &["sqlite".to_string(), "postgres".to_string()])
        .iter()
        .map(|b| Backend::parse(b))
        .collect();
    let secs = bench::arg("--secs", 8u64);
    let connections = bench::arg("--connections", 64u32);

    let mut rows = Vec::new();
    for backend in backends {
        eprintln!("measuring {} …", backend.label());
        rows.push(measure(backend, secs, connections).await);
    }

    println!(
        "progress polls: wrk -t2 -c{connections} -d{secs}s --latency, one finished run (4 analysts), {}",
        bench::machine()
    );
    println!();
    println!("| backend | `/healthz` rps | progress 200 rps (ratio) | progress 304 rps (ratio) | 304 p99 |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} ({:.2}×) | {:.0} ({:.2}×) | {:.2} ms |",
            r.backend.label(),
            r.health.rps,
            r.full.rps,
            r.full.rps / r.health.rps,
            r.not_modified.rps,
            r.not_modified.rps / r.health.rps,
            r.not_modified.p99_ms
        );
    }
    println!();
    println!("| backend | target | requests | errors | bytes/response | p50 | p99 |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        for (name, w) in [("`/healthz`", &r.health), ("progress 200", &r.full), ("progress 304", &r.not_modified)] {
            println!(
                "| {} | {name} | {} | {} | {:.0} | {:.2} ms | {:.2} ms |",
                r.backend.label(),
                w.requests,
                w.errors,
                w.bytes_per_response(),
                w.p50_ms,
                w.p99_ms
            );
        }
    }
    println!();
    for r in &rows {
        let misses: Vec<String> = [
            (r.not_modified.rps >= 0.5 * r.health.rps, "304 rps ≥ 0.5× /healthz"),
            (r.not_modified.p99_ms < 20.0, "304 p99 < 20 ms"),
            (r.full.rps >= 0.25 * r.health.rps, "200 rps ≥ 0.25× /healthz"),
            (r.health.errors + r.full.errors + r.not_modified.errors == 0, "no errors"),
        ]
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| what.to_string())
        .collect();
        if misses.is_empty() {
            println!("{}: all targets met", r.backend.label());
        } else {
            println!("{}: MISSED {}", r.backend.label(), misses.join("; "));
        }
    }
}
