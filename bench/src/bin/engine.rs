//! The job engine's throughput: N no-op jobs, each writing 5 checkpoints, through claim →
//! progress → complete, with 1, 4 and 16 workers, on SQLite and PostgreSQL — and, for scale,
//! `pgbench`'s simple-update TPS on the same PostgreSQL in the same run.
//!
//! cargo run --release -p bench --bin engine -- [--jobs 500] [--workers 1,4,16] [--pgbench-secs 10]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::{AnalysisResult, AnalystKind, JobStatus, TokenUsage};
use jobs::model::{InsertOutcome, NewJob};
use jobs::testing::{TestDb, new_job, postgres_admin_url, sample_result, with_database};
use jobs::{Analysis, AnalysisError, Events, JobContext, JobStore, StepUsage, SystemClock, WorkerConfig, WorkerPool};
use tokio_util::sync::CancellationToken;

/// Five steps (data, three analysts, final), each completed at once: five fenced writes.
struct Noop;

#[async_trait]
impl Analysis for Noop {
    async fn run(&self, ctx: JobContext) -> Result<AnalysisResult, AnalysisError> {
        for step in domain::step_names(&ctx.spec().analysts, ctx.spec().options.depth) {
            ctx.complete_step(
                &step,
                serde_json::json!({"ok": true}),
                StepUsage { llm_calls: 1, tokens: TokenUsage::default(), cost_usd: 0.0 },
                &ctx.spec().model_id,
            )
            .await?;
        }
        Ok(sample_result(&ctx.spec().symbol, 5))
    }
}

async fn run(store: Arc<dyn JobStore>, jobs: usize, workers: usize) -> f64 {
    for i in 0..jobs {
        let job = NewJob {
            analysts: vec![AnalystKind::Invest, AnalystKind::Risk, AnalystKind::Sentiment],
            ..new_job(&format!("bench-{}", i % 100))
        };
        assert!(matches!(store.insert(&job, u32::MAX).await.unwrap(), InsertOutcome::Created(_)));
    }
    let config = WorkerConfig { workers, poll_every: Duration::from_millis(50), ..WorkerConfig::default() };
    let pool = WorkerPool::new(store.clone(), Arc::new(Noop), Events::new(), config).unwrap();
    let stop = CancellationToken::new();
    let start = Instant::now();
    let running = tokio::spawn(pool.run(stop.clone()));
    loop {
        let done: u64 = store
            .count_by_status()
            .await
            .unwrap()
            .iter()
            .filter(|(s, _)| *s == JobStatus::Completed)
            .map(|(_, n)| n)
            .sum();
        if done as usize == jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    stop.cancel();
    running.await.unwrap();
    jobs as f64 / elapsed.as_secs_f64()
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

#[tokio::main]
async fn main() {
    let jobs = bench::arg("--jobs", 500usize);
    let workers = bench::list("--workers", &[1usize, 4, 16]);
    let pgbench_secs = bench::arg("--pgbench-secs", 10u64);
    println!("engine benchmark: {jobs} no-op jobs × 5 checkpoint writes; {}", bench::machine());
    println!();
    println!("| workers | SQLite jobs/s | PostgreSQL jobs/s | pgbench simple-update TPS |");
    println!("|---:|---:|---:|---:|");
    for w in workers {
        let sqlite = {
            let db = TestDb::sqlite();
            run(db.store(Arc::new(SystemClock)).await, jobs, w).await
        };
        let postgres = {
            let db = TestDb::postgres().await;
            run(db.store(Arc::new(SystemClock)).await, jobs, w).await
        };
        let tps = pgbench(w, pgbench_secs).map(|t| format!("{t:.0}")).unwrap_or_else(|| "n/a".into());
        println!("| {w} | {sqlite:.0} | {postgres:.0} | {tps} |");
    }
}
