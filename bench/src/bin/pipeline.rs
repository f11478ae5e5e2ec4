//! Concurrency of the analysts: with a model that takes 2 s per call and all four analysts, a
//! run through the real engine (SQLite, one worker, the real pipeline) should take about its
//! critical path — Data Collection + one analyst + the Final Assessment — not the sum of all
//! its steps. The analysis is the server's own (`TradingAnalysis`). Prints each run's duration against both.
//!
//! cargo run --release -p bench --bin pipeline -- [--runs 3]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agents::Pipeline;
use agents::market::bundled::BundledData;
use agents::model::{Catalog, Models, ModelsConfig};
use agents::testing::FakeLlm;
use async_trait::async_trait;
use domain::{AnalystKind, JobStatus, StartRequest, ValidStart};
use jobs::testing::TestDb;
use jobs::{Events, RequestChecker, RunService, ServiceConfig, SystemClock, WorkerConfig, WorkerPool};
use server::analysis::TradingAnalysis;
use tokio_util::sync::CancellationToken;

const CALL: Duration = Duration::from_secs(2);

struct Any;

#[async_trait]
impl RequestChecker for Any {
    async fn check(&self, _: &ValidStart) -> Result<(), Vec<domain::FieldError>> {
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    let runs = bench::arg("--runs", 3usize);
    let fake = FakeLlm::start().await;
    let toml = format!(
        "[[model]]\nid = \"slow\"\nlabel = \"2 s per call\"\nprovider = \"openai-compatible\"\nbase_url = \"{}\"\nmodel = \"m\"\n",
        fake.base_url("slow")
    );
    let models =
        Models::new(Catalog::from_toml(&toml).unwrap(), &|_| None, reqwest::Client::new(), ModelsConfig::default());
    let market = BundledData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/market")).unwrap();
    let pipeline = Arc::new(Pipeline::new(Arc::new(market), Arc::new(models)));

    let db = TestDb::sqlite();
    let store = db.store(Arc::new(SystemClock)).await;
    let events = Events::new();
    let service = RunService::new(store.clone(), events.clone(), Arc::new(Any), ServiceConfig::default()).unwrap();
    let pool = WorkerPool::new(
        store.clone(),
        Arc::new(TradingAnalysis::new(pipeline)),
        events,
        WorkerConfig { workers: 1, ..WorkerConfig::default() },
    )
    .unwrap();
    let stop = CancellationToken::new();
    let running = tokio::spawn(pool.run(stop.clone()));

    println!(
        "pipeline benchmark: 4 analysts, a model answering each call after {} s; {}",
        CALL.as_secs(),
        bench::machine()
    );
    println!();
    println!("| run | duration | critical path (data + analyst + final) | ratio | sum of steps | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for i in 1..=runs {
        let request = StartRequest {
            symbol: Some("NVDA".into()),
            model_id: Some("slow".into()),
            analysts: Some(AnalystKind::ALL.iter().map(|a| a.id().to_string()).collect()),
            ..StartRequest::default()
        };
        let id = service.start("bench", &request, None).await.unwrap().job.run_id;
        let job = loop {
            let j = store.get(id).await.unwrap().unwrap();
            if j.status.is_terminal() {
                break j;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
        let total = job.duration_ms.unwrap() as f64 / 1000.0;
        let data = job.steps[0].duration_ms.unwrap() as f64 / 1000.0;
        let critical = data + 2.0 * CALL.as_secs_f64();
        let sum = data + 5.0 * CALL.as_secs_f64();
        println!(
            "| {i} | {total:.2} s | {critical:.2} s | {:.2}× | {sum:.2} s | {:.2}× |",
            total / critical,
            total / sum
        );
    }
    stop.cancel();
    running.await.unwrap();
}
