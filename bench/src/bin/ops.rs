//! What an operator sees at scale, on PostgreSQL:
//! - **queue wait** (created → claimed) with two worker processes (`server worker --workers 4`,
//!   the release binary, the offline model without simulated latency), for runs arriving at a
//!   steady rate and for one burst, from the rows' own timestamps;
//! - **`/metrics` scrape time** of a web process (`serve --workers 0`) with 10,000 runs in the
//!   table.
//!
//! cargo run --release -p bench --bin ops -- [--runs 1000] [--rate 50] [--table 10000] [--scrapes 100] [--server PATH]

#[path = "../served.rs"]
#[allow(dead_code)]
mod served;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use application::run::{KIND, RunArgs, RunProgress, job_id};
use application::{RunService, ServiceConfig};
use domain::{StartRequest, ValidStart};
use jobs::job::{Finish, Outcome};
use jobs::testing::TestDb;
use jobs::{Database, Events, Insert, InsertOutcome, JobStore, NewJob, State, SystemClock};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn server(binary: &std::path::Path, db_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .current_dir(served::workspace())
        .env("DATABASE_URL", db_url)
        .env("DATA_DIR", served::workspace().join("data"))
        .env("SIMULATED_LATENCY_MS", "0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// A fresh database with every migration applied.
async fn open(db: &TestDb) -> Database {
    let database = Database::connect(&db.url, Arc::new(SystemClock)).await.unwrap();
    application::store::migrate(&database).await.unwrap();
    database
}

async fn wait_done(store: &Arc<dyn JobStore>, n: u64) {
    let start = Instant::now();
    loop {
        let counts = store.counts().await.unwrap();
        let done: u64 = counts.iter().filter(|c| c.state.is_terminal()).map(|c| c.jobs).sum();
        if done >= n {
            assert!(counts.iter().all(|c| c.state == State::Completed || !c.state.is_terminal()), "{counts:?}");
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "runs stuck: {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Queue waits, in ms, of `runs` started through the service (which wakes the workers by
/// NOTIFY), `gap` apart (none: all at once).
async fn queue_wait(binary: &std::path::Path, runs: usize, gap: Option<Duration>) -> Vec<f64> {
    let db = TestDb::postgres().await;
    let database = open(&db).await;
    let store = database.queue().clone();
    // Both workers listening (they print their metrics address once they are) before the first run.
    let mut workers: Vec<Child> = Vec::new();
    for _ in 0..2 {
        let mut child = server(binary, &db.url, &["worker", "--workers", "4", "--metrics-addr", "127.0.0.1:0"])
            .spawn()
            .expect("a worker process");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        lines.next_line().await.unwrap().expect("the metrics line");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        workers.push(child);
    }
    let config = ServiceConfig { max_active_per_user: u32::MAX, max_queued: u32::MAX, ..ServiceConfig::default() };
    let service = RunService::new(&database, Events::new(), bench::checks(), config).unwrap();
    let request = StartRequest {
        symbol: Some("AAPL".into()),
        analysts: Some(vec!["invest".into(), "risk".into()]),
        ..StartRequest::default()
    };
    let mut ticker = gap.map(tokio::time::interval);
    let mut ids = Vec::with_capacity(runs);
    for i in 0..runs {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        ids.push(service.start(&format!("bench-{}", i % 50), &request, None).await.unwrap().run_id);
    }
    wait_done(&store, runs as u64).await;
    let mut waits = Vec::with_capacity(runs);
    for id in ids {
        let job = store.get(job_id(id)).await.unwrap().unwrap();
        waits.push((job.started_at.unwrap() - job.created_at).num_microseconds().unwrap() as f64 / 1000.0);
    }
    drop(workers);
    waits
}

/// Scrape times, in ms, of a web process's `/metrics` with `table` finished runs in the table.
async fn scrape(binary: &std::path::Path, table: usize, scrapes: usize) -> (Vec<f64>, usize) {
    let db = TestDb::postgres().await;
    let store = open(&db).await.queue().clone();
    let start = ValidStart {
        symbol: "AAPL".parse().unwrap(),
        model_id: domain::ModelId::offline(),
        analysts: vec![domain::AnalystKind::Invest, domain::AnalystKind::Risk],
        as_of: None,
        options: Default::default(),
    };
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (store, start) = (store.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..table).step_by(16) {
                let args = serde_json::to_value(RunArgs {
                    start: start.clone(),
                    retry_of: None,
                    rerun_of: None,
                    batch_id: None,
                    webhook: None,
                })
                .unwrap();
                let job = NewJob {
                    progress: serde_json::to_value(RunProgress::new(&start)).unwrap(),
                    ..NewJob::new(KIND, &format!("bench-{}", i % 200), args)
                };
                assert!(matches!(store.insert(&Insert::one(job)).await.unwrap(), InsertOutcome::Created(_)));
                // Another task's claim may hold the only pending row for a moment (skip locked).
                let claimed = loop {
                    let kinds = [KIND.to_string()];
                    if let Some(job) =
                        store.claim("bench", chrono::Duration::seconds(60), 1, &kinds).await.unwrap().pop()
                    {
                        break job;
                    }
                };
                let outcome = if i % 10 == 0 {
                    Outcome::Failed("the model provider answered 500".into())
                } else {
                    Outcome::Completed(serde_json::json!({}))
                };
                let finish = Finish {
                    fence: claimed.fence().unwrap(),
                    outcome,
                    progress: claimed.progress.clone(),
                    checkpoints: Default::default(),
                };
                store.finish(&[finish]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut web = server(binary, &db.url, &["serve", "--workers", "0", "--addr", "127.0.0.1:0"]).spawn().unwrap();
    let mut lines = BufReader::new(web.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next_line().await.unwrap().expect("the listening line");
        if let Some(a) = line.strip_prefix("listening on ") {
            break a.trim().to_string();
        }
    };
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(scrapes);
    let mut size = 0;
    for _ in 0..scrapes {
        let start = Instant::now();
        let body = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        size = body.len();
    }
    (times, size)
}

#[tokio::main]
async fn main() {
    let runs = bench::arg("--runs", 1000usize);
    let rate = bench::arg("--rate", 50u64);
    let table = bench::arg("--table", 10_000usize);
    let scrapes = bench::arg("--scrapes", 100usize);
    let binary = served::server_binary();
    println!("ops benchmark on PostgreSQL; {}", bench::machine());
    println!();
    println!("| queue wait, 2 worker processes × 4 workers | runs | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    let steady = bench::quantiles(queue_wait(&binary, runs, Some(Duration::from_millis(1000 / rate))).await);
    println!("| steady arrivals, {rate} runs/s | {runs} | {:.1} | {:.1} | {:.1} |", steady.0, steady.1, steady.2);
    let burst = bench::quantiles(queue_wait(&binary, runs, None).await);
    println!(
        "| back to back (one client starting runs as fast as it can) | {runs} | {:.1} | {:.1} | {:.1} |",
        burst.0, burst.1, burst.2
    );
    println!();
    let (times, size) = scrape(&binary, table, scrapes).await;
    let (p50, p99, max) = bench::quantiles(times);
    println!("| `/metrics` scrape | runs in the table | scrapes | p50 ms | p99 ms | max ms | body KB |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| web process, `--workers 0` | {table} | {scrapes} | {p50:.2} | {p99:.2} | {max:.2} | {:.1} |",
        size as f64 / 1024.0
    );
}
