//! Scale-out: two web processes (`serve --workers 0`) and two worker processes against one
//! PostgreSQL. 200 runs posted through both web processes all complete, each claimed exactly
//! once, by both worker processes between them; a session made by one web process is honoured
//! by the other (they share the signing key through the database).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, spawn_worker, visitor};
use domain::JobStatus;
use jobs::SystemClock;
use jobs::testing::TestDb;
use serde_json::{Value, json};

const RUNS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_web_and_two_worker_processes_run_200_jobs_exactly_once() {
    let db = TestDb::postgres().await;
    let store = db.store(Arc::new(SystemClock)).await;
    let env = [("MAX_ACTIVE_JOBS_PER_USER", "1000"), ("SIMULATED_LATENCY_MS", "5"), ("WORKERS", "4")];
    let web = [
        Server::start_on(&db.url, &["serve", "--workers", "0"], &env).await,
        Server::start_on(&db.url, &["serve", "--workers", "0"], &env).await,
    ];
    let mut workers = [spawn_worker(&db.url, &env), spawn_worker(&db.url, &env)];
    let pids: Vec<u32> = workers.iter().map(|w| w.id().unwrap()).collect();

    // The first page load gives the session cookie (from web 0); every later request carries it.
    let c = visitor(&web[0]).await;
    let mut ids = Vec::new();
    let first: Value = c
        .post(web[0].url("/api/trading/run"))
        .json(&json!({"symbol": "NVDA"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ids.push(first["runId"].as_str().unwrap().to_string());
    let symbols = ["AAPL", "MSFT", "AMZN", "GOOG", "META", "NFLX", "IBM", "NVDA"];
    for chunk in (1..RUNS).collect::<Vec<_>>().chunks(20) {
        let posts = chunk.iter().map(|i| {
            let url = web[i % 2].url("/api/trading/run");
            let body = json!({"symbol": symbols[i % symbols.len()], "analysts": ["invest", "technical"]});
            let c = c.clone();
            async move {
                let resp = c.post(url).json(&body).send().await.unwrap();
                assert_eq!(resp.status(), 202);
                resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string()
            }
        });
        ids.extend(futures::future::join_all(posts).await);
    }
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), RUNS);

    let start = Instant::now();
    loop {
        let counts: HashMap<JobStatus, u64> = store.count_by_status().await.unwrap().into_iter().collect();
        if counts.get(&JobStatus::Completed).copied().unwrap_or(0) == RUNS as u64 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(180), "not all done: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut by_worker: HashMap<u32, usize> = HashMap::new();
    let (jobs, total) = store.list_for_user(&user_of(&store, &ids[0]).await, None, 1000, 0).await.unwrap();
    assert_eq!(total, RUNS as u64, "every run belongs to the one session");
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.attempt, 1, "claimed once, never rescued: {}", job.run_id);
        let expected_calls = job.analysts.len() as u32 + 1;
        assert_eq!(job.llm_calls, expected_calls, "each step's call counted once");
        assert_eq!(job.result.as_ref().unwrap().llm_calls, expected_calls);
        let owner = job.lease_owner.as_deref().unwrap();
        let pid = pids.iter().find(|p| owner.contains(&format!(":{p}:"))).copied().expect("a worker process ran it");
        *by_worker.entry(pid).or_default() += 1;
    }
    assert_eq!(by_worker.len(), 2, "both worker processes took work: {by_worker:?}");

    // Runs started through one web process are read through the other.
    for (i, id) in ids.iter().enumerate().step_by(37) {
        let resp = c.get(web[(i + 1) % 2].url(&format!("/api/trading/progress/{id}"))).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.json::<Value>().await.unwrap()["status"], "completed");
    }
    for w in &mut workers {
        w.start_kill().unwrap();
    }
}

async fn user_of(store: &Arc<dyn jobs::JobStore>, id: &str) -> String {
    store.get(id.parse().unwrap()).await.unwrap().unwrap().user_id
}
