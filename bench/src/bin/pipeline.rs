//! Concurrency of the analysts: with a model that takes 2 s per call and all four analysts, a
//! run through the real engine (SQLite, one worker, the real pipeline) should take about its
//! critical path — Data Collection + one analyst + the Final Assessment — not the sum of all
//! its steps. The analysis is the server's own (`TradingAnalysis`). Prints each run's duration against both.
//!
//! With `--depth standard` (or `deep`) the run has the whole team: its critical path is data +
//! one analyst + each debate round + the research manager + the trader + each risk round +
//! the portfolio manager, against every call made one after another (the anchor's way).
//!
//! With `--cancels N` it then cancels N runs while an analyst waits on its model call and
//! prints how long each took from the request to the run's end, against `jobs::CANCEL_WITHIN`
//! (what the README promises and `server/tests/api.rs` holds an idle machine to): run it beside
//! a build to see the bound on a loaded machine.
//!
//! cargo run --release -p bench --bin pipeline -- [--runs 3] [--depth quick|standard|deep] [--cancels 0]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agents::Pipeline;
use agents::market::bundled::BundledData;
use agents::model::{Catalog, Models, ModelsConfig};
use agents::testing::FakeLlm;
use application::analysis::AnalysisJob;
use application::checks::Checks;
use application::run::{KIND, Run, job_id};
use application::{RunService, ServiceConfig};
use domain::{AnalystKind, Depth, JobStatus, StartRequest};
use jobs::testing::TestDb;
use jobs::{Database, Events, Handlers, SystemClock, WorkerConfig, WorkerPool};
use tokio_util::sync::CancellationToken;

const CALL: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() {
    let runs = bench::arg("--runs", 3usize);
    let depth = bench::arg("--depth", Depth::Quick);
    let fake = FakeLlm::start().await;
    let toml = format!(
        "[[model]]\nid = \"slow\"\nlabel = \"2 s per call\"\nprovider = \"openai-compatible\"\nbase_url = \"{}\"\nmodel = \"m\"\n",
        fake.base_url("slow")
    );
    let models = Arc::new(Models::new(
        Catalog::from_toml(&toml).unwrap(),
        &|_| None,
        reqwest::Client::new(),
        ModelsConfig::default(),
    ));
    let market = Arc::new(BundledData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/market")).unwrap());
    let pipeline = Arc::new(Pipeline::new(market.clone(), models.clone()));
    let checks = Arc::new(Checks { market, models });

    let test_db = TestDb::sqlite();
    let db = Database::connect(&test_db.url, Arc::new(SystemClock)).await.unwrap();
    application::store::migrate(&db).await.unwrap();
    let store = db.queue().clone();
    let events = Events::new();
    let service = RunService::new(&db, events.clone(), checks, ServiceConfig::default()).unwrap();
    let handlers = Handlers::new().register(KIND, Arc::new(AnalysisJob::new(pipeline, db.clock.clone())));
    let config = WorkerConfig { workers: 1, ..WorkerConfig::default() };
    let pool = WorkerPool::new(store.clone(), handlers, events, config, db.clock.clone()).unwrap();
    let stop = CancellationToken::new();
    let running = tokio::spawn(pool.run(stop.clone()));

    println!(
        "pipeline benchmark: 4 analysts, depth {depth}, a model answering each call after {} s; {}",
        CALL.as_secs(),
        bench::machine()
    );
    println!();
    println!("| run | duration | critical path | ratio | sum of steps | ratio | one call after another | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for i in 1..=runs {
        let request = StartRequest {
            symbol: Some("NVDA".into()),
            model_id: Some("slow".into()),
            analysts: Some(AnalystKind::ALL.iter().map(|a| a.id().to_string()).collect()),
            depth: Some(depth.id().to_string()),
            ..StartRequest::default()
        };
        let id = service.start("bench", &request, None).await.unwrap().run_id;
        let job = loop {
            let j = Run::from_job(store.get(job_id(id)).await.unwrap().unwrap()).unwrap();
            if j.status.is_terminal() {
                break j;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
        let total = job.duration_ms().unwrap() as f64 / 1000.0;
        let data = job.progress.steps[0].duration_ms.unwrap() as f64 / 1000.0;
        let call = CALL.as_secs_f64();
        let rounds = f64::from(job.start.options.debate_rounds());
        let (critical_calls, all_calls) = if depth.is_quick() {
            (2.0, 5.0)
        } else {
            // analyst, bull+bear rounds, manager, trader, risk rounds, portfolio manager
            (1.0 + rounds + 2.0 + rounds + 1.0, 4.0 + 2.0 * rounds + 2.0 + 3.0 * rounds + 1.0)
        };
        let critical = data + critical_calls * call;
        let sequential = data + all_calls * call;
        let sum: f64 = job.progress.steps.iter().filter_map(|s| s.duration_ms).sum::<u64>() as f64 / 1000.0;
        println!(
            "| {i} | {total:.2} s | {critical:.2} s | {:.2}× | {sum:.2} s | {:.2}× | {sequential:.2} s | {:.2}× |",
            total / critical,
            total / sum,
            total / sequential
        );
    }
    let cancels = bench::arg("--cancels", 0usize);
    if cancels > 0 {
        let mut took = Vec::new();
        for _ in 0..cancels {
            let request = StartRequest {
                symbol: Some("NVDA".into()),
                model_id: Some("slow".into()),
                analysts: Some(vec!["risk".into()]),
                ..StartRequest::default()
            };
            let id = service.start("bench", &request, None).await.unwrap().run_id;
            // Inside the analyst's model call (it answers after 2 s).
            loop {
                let j = Run::from_job(store.get(job_id(id)).await.unwrap().unwrap()).unwrap();
                if j.progress.steps[1].status == domain::StepStatus::InProgress {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let asked = Instant::now();
            service.cancel("bench", id).await.unwrap();
            loop {
                let j = Run::from_job(store.get(job_id(id)).await.unwrap().unwrap()).unwrap();
                if j.status.is_terminal() {
                    assert_eq!(j.status, JobStatus::Cancelled);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            took.push(asked.elapsed());
        }
        took.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!();
        println!("| cancels inside a model call | p50 | max | promised |");
        println!("|---:|---:|---:|---:|");
        println!(
            "| {cancels} | {:.0} ms | {:.0} ms | {} ms |",
            ms(took[took.len() / 2]),
            ms(*took.last().unwrap()),
            jobs::CANCEL_WITHIN.as_millis()
        );
    }
    stop.cancel();
    running.await.unwrap();
}
