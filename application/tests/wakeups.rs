//! Wake-ups: an idle worker starts a new job within 100 ms of its insertion, long before its
//! poll interval — through LISTEN/NOTIFY from another process's connection on PostgreSQL, and
//! through the in-process bus on SQLite.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use application::run::{KIND, job_id};
use application::{RunService, ServiceConfig};
use domain::StartRequest;
use jobs::testing::{ScriptedHandler, TestDb};
use jobs::{Events, Handlers, JobStore, State, SystemClock, WorkerConfig, WorkerPool};
use tokio_util::sync::CancellationToken;

fn request() -> StartRequest {
    StartRequest { symbol: Some("AAPL".into()), analysts: Some(vec!["risk".into()]), ..Default::default() }
}

/// Starts one job through `producer` and returns how long it waited between insertion and claim.
async fn claim_latency(producer: &RunService, consumer: &Arc<dyn JobStore>, user: &str) -> Duration {
    let job = producer.start(user, &request(), None).await.unwrap();
    let start = Instant::now();
    loop {
        let j = consumer.get(job_id(job.run_id)).await.unwrap().unwrap();
        if j.state != State::Pending {
            return (j.started_at.unwrap() - j.created_at).to_std().unwrap_or_default();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never claimed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What the README promises: a new job starts within 100 ms. The median of the wake-ups is
/// held to it (a wake-up takes milliseconds; one hiccup of a busy machine cannot move a median
/// of nine) …
const WAKE_PROMISE: Duration = Duration::from_millis(100);
/// … and every one of them stays far under the 30 s poll interval, so only a wake-up explains
/// it, even on a machine many times slower.
const WAKE_BOUND: Duration = Duration::from_secs(5);
const WAKES: usize = 9;

/// The median and the worst of the latencies after the first (which may race the workers'
/// first subscription).
fn check(mut latencies: Vec<Duration>) {
    let all = latencies.clone();
    latencies.remove(0);
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(median <= WAKE_PROMISE, "median claim latency {median:?} over {WAKE_PROMISE:?}: {all:?}");
    assert!(*latencies.last().unwrap() < WAKE_BOUND, "claim latencies {all:?}");
}

fn idle_pool(store: Arc<dyn JobStore>, events: Events) -> WorkerPool {
    // A poll interval far longer than the latency asserted: only a wake-up can explain it.
    let config = WorkerConfig { workers: 2, poll_every: Duration::from_secs(30), ..WorkerConfig::default() };
    // Runs whose args name no steps: the scripted handler completes them at once.
    let handlers = Handlers::new().register(KIND, Arc::new(ScriptedHandler::new()));
    WorkerPool::new(store, handlers, events, config, Arc::new(SystemClock)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_wakes_an_idle_worker_on_postgres() {
    let db = TestDb::postgres().await;
    let worker_side = common::open(&db, Arc::new(SystemClock)).await.queue().clone();
    let worker_events = Events::new();
    let _listener = worker_side.listen(worker_events.clone()).await.unwrap();
    let shutdown = CancellationToken::new();
    let pool = idle_pool(worker_side.clone(), worker_events);
    let running = tokio::spawn(pool.run(shutdown.clone()));

    // "Another process": its own connection pool and its own (unconnected) event bus.
    let producer_db = common::open(&db, Arc::new(SystemClock)).await;
    let producer = RunService::new(&producer_db, Events::new(), common::checks(), ServiceConfig::default()).unwrap();
    let consumer: Arc<dyn JobStore> = worker_side;
    let mut latencies = Vec::new();
    for i in 0..WAKES {
        latencies.push(claim_latency(&producer, &consumer, &format!("u{i}")).await);
    }
    shutdown.cancel();
    running.await.unwrap();
    check(latencies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_in_process_bus_wakes_an_idle_worker_on_sqlite() {
    let db = TestDb::sqlite();
    let database = common::open(&db, Arc::new(SystemClock)).await;
    let store = database.queue().clone();
    let events = Events::new();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(idle_pool(store.clone(), events.clone()).run(shutdown.clone()));
    let producer = RunService::new(&database, events, common::checks(), ServiceConfig::default()).unwrap();
    let mut latencies = Vec::new();
    for i in 0..WAKES {
        latencies.push(claim_latency(&producer, &store, &format!("u{i}")).await);
    }
    shutdown.cancel();
    running.await.unwrap();
    check(latencies);
}
