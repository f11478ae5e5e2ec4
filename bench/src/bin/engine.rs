//! The queue's throughput: N no-op jobs, each writing 5 checkpoints, through claim → writes →
//! end, with 1, 4 and 16 workers, on SQLite and PostgreSQL — where the time goes (how many
//! claim, write and end statements the jobs took, and how long those took on average) — and,
//! for scale, `pgbench`'s simple-update TPS on the same PostgreSQL in the same run.
//!
//! cargo run --release -p bench --bin engine -- [--jobs 500] [--workers 1,4,16] [--pgbench-secs 10]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jobs::testing::{TestDb, postgres_admin_url, with_database};
use jobs::{
    Events, Handler, Handlers, Insert, InsertOutcome, JobContext, JobError, JobStore, NewJob, State, SystemClock,
    WorkerConfig, WorkerPool,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const KIND: &str = "noop";

/// Five steps, each stored at once as a checkpoint: five fenced writes.
struct Noop;

#[async_trait]
impl Handler for Noop {
    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        for step in 0..5 {
            ctx.save(&format!("step {step}"), json!({"ok": true}), json!({"done": step + 1})).await?;
        }
        Ok(json!({"steps": 5}))
    }
}

/// Statements timed by the store, by name: how many, and their total seconds.
fn statements(recorder: &metrics_exporter_prometheus::PrometheusHandle) -> Vec<(String, u64, f64)> {
    server::http::telemetry::statement_times(&recorder.render())
}

struct Row {
    jobs_per_sec: f64,
    /// (statement, per job, mean ms)
    statements: Vec<(String, f64, f64)>,
}

async fn run(
    store: Arc<dyn JobStore>,
    jobs: usize,
    workers: usize,
    recorder: &metrics_exporter_prometheus::PrometheusHandle,
) -> Row {
    for i in 0..jobs {
        let job = NewJob::new(KIND, &format!("bench-{}", i % 100), json!({}));
        assert!(matches!(store.insert(&Insert::one(job)).await.unwrap(), InsertOutcome::Created(_)));
    }
    let config = WorkerConfig { workers, poll_every: Duration::from_millis(50), ..WorkerConfig::default() };
    let handlers = Handlers::new().register(KIND, Arc::new(Noop));
    let pool = WorkerPool::new(store.clone(), handlers, Events::new(), config, Arc::new(SystemClock)).unwrap();
    let before = statements(recorder);
    let stop = CancellationToken::new();
    let start = Instant::now();
    let running = tokio::spawn(pool.run(stop.clone()));
    loop {
        let done: u64 =
            store.counts().await.unwrap().iter().filter(|c| c.state == State::Completed).map(|c| c.jobs).sum();
        if done as usize == jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    stop.cancel();
    running.await.unwrap();
    let after = statements(recorder);
    let statements = ["claim", "write", "finish", "control", "heartbeat"]
        .iter()
        .filter_map(|name| {
            let then = before.iter().find(|(s, ..)| s == name).map(|(_, n, t)| (*n, *t)).unwrap_or((0, 0.0));
            let now = after.iter().find(|(s, ..)| s == name).map(|(_, n, t)| (*n, *t))?;
            let (n, secs) = (now.0 - then.0, now.1 - then.1);
            (n > 0).then(|| (name.to_string(), n as f64 / jobs as f64, secs * 1000.0 / n as f64))
        })
        .collect();
    Row { jobs_per_sec: jobs as f64 / elapsed.as_secs_f64(), statements }
}

fn pgbench(clients: usize, secs: u64) -> Option<f64> {
    let admin = postgres_admin_url();
    let name = format!("ta_bench_{}", uuid::Uuid::new_v4().simple());
    let db_url = with_database(&admin, &name);
    let ok = |cmd: &mut std::process::Command| cmd.output().ok().filter(|o| o.status.success());
    ok(std::process::Command::new("psql").args([admin.as_str(), "-qc", &format!("create database {name}")]))?;
    ok(std::process::Command::new("pgbench").args(["-i", "-q", "-s", "1", &db_url]))?;
    let out = ok(std::process::Command::new("pgbench").args([
        "-b",
        "simple-update",
        "-c",
        &clients.to_string(),
        "-j",
        &clients.min(2).to_string(),
        "-T",
        &secs.to_string(),
        &db_url,
    ]));
    let _ = std::process::Command::new("psql")
        .args([admin.as_str(), "-qc", &format!("drop database {name} with (force)")])
        .output();
    let text = String::from_utf8_lossy(&out?.stdout).to_string();
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
}

fn detail(row: &Row) -> String {
    row.statements
        .iter()
        .map(|(s, per_job, ms)| format!("{s} {per_job:.2}/job {ms:.2} ms"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main]
async fn main() {
    let jobs = bench::arg("--jobs", 500usize);
    let workers = bench::list("--workers", &[1usize, 4, 16]);
    let pgbench_secs = bench::arg("--pgbench-secs", 10u64);
    let recorder = server::http::telemetry::recorder();
    println!("engine benchmark: {jobs} no-op jobs × 5 checkpoint writes; {}", bench::machine());
    println!();
    println!("| workers | SQLite jobs/s | PostgreSQL jobs/s | pgbench simple-update TPS |");
    println!("|---:|---:|---:|---:|");
    let mut details = Vec::new();
    for w in workers {
        let sqlite = {
            let db = TestDb::sqlite();
            run(db.store(Arc::new(SystemClock)).await, jobs, w, &recorder).await
        };
        let postgres = {
            let db = TestDb::postgres().await;
            run(db.store(Arc::new(SystemClock)).await, jobs, w, &recorder).await
        };
        let tps = pgbench(w, pgbench_secs).map(|t| format!("{t:.0}")).unwrap_or_else(|| "n/a".into());
        println!("| {w} | {:.0} | {:.0} | {tps} |", sqlite.jobs_per_sec, postgres.jobs_per_sec);
        details.push((w, "SQLite", detail(&sqlite)));
        details.push((w, "PostgreSQL", detail(&postgres)));
    }
    println!();
    println!("| workers | backend | statements per job, and their mean time |");
    println!("|---:|---|---|");
    for (w, backend, d) in details {
        println!("| {w} | {backend} | {d} |");
    }
}
