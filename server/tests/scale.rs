//! Scale-out under faults: two web processes (`serve --workers 0`) and two worker processes
//! (`worker`) against one PostgreSQL, 200 runs from 20 identities, the model a fake provider in
//! this test that records every call. Half-way, one worker process is killed with SIGKILL and
//! one web process is stopped (SIGTERM); the second half is posted to the web process left.
//! Every run completes exactly once — none lost, none duplicated, each counted once — and no
//! step that had finished before the kill asks the model again.
//!
//! These are the commands and settings of docs/deploy.md.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use agents::testing::FakeLlm;
use common::{Server, spawn_worker, terminate, visitor};
use domain::{JobStatus, StepStatus};
use jobs::testing::TestDb;
use serde_json::{Value, json};

const IDENTITIES: usize = 20;
const RUNS_EACH: usize = 10;
const RUNS: usize = IDENTITIES * RUNS_EACH;
const SYMBOLS: [&str; 7] = ["AAPL", "MSFT", "AMZN", "GOOG", "IBM", "NVDA", "NFLX"];

/// Thirty weekdays from March 1st of `year` without a market holiday, inside every symbol's data
/// for that year: each run analyses its own (symbol, date), so each model call names its run.
fn dates(year: i32) -> Vec<String> {
    const HOLIDAYS: [&str; 2] = ["2010-04-02", "2016-03-25"];
    let mut out = Vec::new();
    let mut d = chrono::NaiveDate::from_ymd_opt(year, 3, 1).unwrap();
    while out.len() < 30 {
        if chrono::Datelike::weekday(&d).number_from_monday() <= 5 && !HOLIDAYS.contains(&d.to_string().as_str()) {
            out.push(d.to_string());
        }
        d = d.succ_opt().unwrap();
    }
    out
}

/// The year whose dates a symbol is analysed at (MSFT and IBM end in 2013, AMZN, NVDA and NFLX
/// start then).
fn year_of(symbol: &str) -> i32 {
    match symbol {
        "MSFT" | "IBM" => 2010,
        "AAPL" | "GOOG" => 2016,
        _ => 2017,
    }
}

async fn completed(store: &common::Records) -> u64 {
    store.counts().await.into_iter().filter(|(s, _)| *s == JobStatus::Completed).map(|(_, n)| n).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_web_and_two_worker_processes_survive_a_killed_worker_and_a_stopped_web_process() {
    let db = TestDb::postgres().await;
    let store = common::Records::open(&db).await;
    let fake = FakeLlm::start().await;
    let catalog = common::fake_models(&fake, &[("fake", "delay-40")]);
    let env = [
        ("MODEL_CATALOG", catalog.as_str()),
        ("FAKE_API_KEY", "sk-test"),
        ("MAX_ACTIVE_JOBS_PER_USER", "1000"),
        ("WORKERS", "4"),
        ("LEASE_SECS", "6"),
    ];
    let mut web = vec![
        Server::start_on(&db.url, &["serve", "--workers", "0"], &env).await,
        Server::start_on(&db.url, &["serve", "--workers", "0"], &env).await,
    ];
    let mut workers = [spawn_worker(&db.url, &env), spawn_worker(&db.url, &env)];
    let killed_pid = workers[0].id().unwrap();

    // Twenty identities, each from a page load on one web process or the other.
    let mut clients = Vec::new();
    for i in 0..IDENTITIES {
        clients.push(visitor(&web[i % 2]).await);
    }
    let dates: HashMap<i32, Vec<String>> = [2010, 2016, 2017].into_iter().map(|y| (y, dates(y))).collect();
    let requests: Vec<(usize, Value)> = (0..RUNS)
        .map(|i| {
            let body = json!({
                "symbol": SYMBOLS[i % SYMBOLS.len()],
                "asOf": dates[&year_of(SYMBOLS[i % SYMBOLS.len()])][i / SYMBOLS.len()],
                "modelId": "fake",
                "analysts": ["invest", "technical"],
            });
            (i % IDENTITIES, body)
        })
        .collect();
    let post = |web: &Server, client: &reqwest::Client, body: &Value| {
        let (url, c, body) = (web.url("/api/trading/run"), client.clone(), body.clone());
        async move {
            let resp = c.post(url).json(&body).send().await.unwrap();
            let status = resp.status();
            if status != 202 {
                panic!("{body}: {status} {}", resp.text().await.unwrap());
            }
            resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string()
        }
    };

    // The first half through both web processes.
    let mut ids = Vec::new();
    for chunk in requests[..RUNS / 2].chunks(20) {
        let posts = chunk.iter().enumerate().map(|(j, (who, body))| post(&web[j % 2], &clients[*who], body));
        ids.extend(futures::future::join_all(posts).await);
    }

    // Mid-way, while it holds runs (its claims come in batches, so between two it may hold
    // none): a worker dies without a word, a web process is stopped.
    let start = Instant::now();
    let killed_owner = format!(":{killed_pid}:");
    loop {
        assert!(start.elapsed() < Duration::from_secs(120), "the runs do not move");
        if completed(&store).await >= 40 && running_under(&store, &killed_owner).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers[0].start_kill().unwrap();
    workers[0].wait().await.unwrap();
    // What the killed worker held, and which of its steps had finished, as the database saw it
    // when it died: those steps must never be asked again.
    let mut held: HashMap<String, HashSet<String>> = HashMap::new();
    for id in &ids {
        let job = store.run(id.parse().unwrap()).await.unwrap();
        if job.status == JobStatus::Running && job.lease_owner.as_deref().is_some_and(|o| o.contains(&killed_owner)) {
            let done = job
                .progress
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Completed)
                .map(|s| s.name.clone())
                .collect();
            held.insert(id.clone(), done);
        }
    }
    assert!(!held.is_empty(), "the killed worker was running jobs");
    let stopped = web.remove(1);
    terminate(&stopped.child);
    let mut stopped_child = stopped.child;
    let status = tokio::time::timeout(Duration::from_secs(30), stopped_child.wait()).await.expect("stops").unwrap();
    assert!(status.success(), "a stopped web process exits cleanly: {status:?}");

    // The second half through the web process left, with the same identities.
    for chunk in requests[RUNS / 2..].chunks(20) {
        let posts = chunk.iter().map(|(who, body)| post(&web[0], &clients[*who], body));
        ids.extend(futures::future::join_all(posts).await);
    }
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), RUNS);

    let start = Instant::now();
    while completed(&store).await < RUNS as u64 {
        let counts = store.counts().await;
        assert!(counts.iter().all(|(s, _)| !s.is_terminal() || *s == JobStatus::Completed), "{counts:?}");
        assert!(start.elapsed() < Duration::from_secs(240), "not all done: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nothing lost, nothing duplicated: exactly the posted runs, per identity.
    let mut users = HashSet::new();
    let mut jobs = HashMap::new();
    for id in &ids {
        let job = store.run(id.parse().unwrap()).await.expect("every posted run exists");
        users.insert(job.owner.clone());
        jobs.insert(id.clone(), job);
    }
    assert_eq!(users.len(), IDENTITIES);
    let mut listed = 0;
    for user in &users {
        let total = store.total(user).await;
        assert_eq!(total, RUNS_EACH as u64, "{user} has exactly its runs");
        listed += total;
    }
    assert_eq!(listed, RUNS as u64);

    // Which run and step each model call was for, from the (symbol, date) its prompt names.
    let mut by_key: HashMap<(String, String), String> = HashMap::new();
    for (id, job) in &jobs {
        let as_of = job.result.as_ref().expect("completed with a result").as_of.to_string();
        assert!(
            by_key.insert((job.start.symbol.to_string(), as_of), id.clone()).is_none(),
            "one run per (symbol, date)"
        );
    }
    let mut calls: HashMap<(String, String), usize> = HashMap::new();
    for call in fake.calls() {
        let run = by_key
            .iter()
            .find(|((symbol, as_of), _)| {
                call.prompt.contains(&format!("daily prices of {symbol} up to {as_of}"))
                    || call.prompt.contains(&format!("reported on {symbol} as of {as_of}"))
            })
            .map(|(_, id)| id.clone())
            .unwrap_or_else(|| panic!("a call for no run: {}", &call.prompt[..200.min(call.prompt.len())]));
        *calls.entry((run, call.step.clone())).or_default() += 1;
    }

    let mut rescued = 0;
    for (id, job) in &jobs {
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.progress.usage.calls, 3, "each step's call counted once: {id}");
        assert_eq!(job.result.as_ref().unwrap().llm_calls, 3);
        let owner = job.lease_owner.as_deref().unwrap();
        if held.contains_key(id) {
            assert!(!owner.contains(&killed_owner), "finished by the live worker: {id}");
        }
        for step in ["Invest Analyst", "Technical Analyst", "Final Assessment"] {
            let n = calls.get(&(id.clone(), step.to_string())).copied().unwrap_or(0);
            match held.get(id) {
                Some(done) if done.contains(step) => assert_eq!(n, 1, "{id} {step} finished before the kill"),
                // In flight when its worker died: asked again by the next attempt.
                Some(_) => assert!((1..=2).contains(&n), "{id} {step}: {n} calls"),
                None => assert_eq!(n, 1, "{id} {step}: never interrupted"),
            }
        }
        if held.contains_key(id) {
            assert_eq!(job.attempt, 2, "rescued once: {id}");
            rescued += 1;
        } else {
            assert_eq!(job.attempt, 1, "claimed once: {id}");
        }
    }
    assert_eq!(rescued, held.len());

    // A run started through the stopped process reads the same through the one left.
    let resp = clients[1].get(web[0].url(&format!("/api/trading/progress/{}", ids[1]))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "completed");
    workers[1].start_kill().unwrap();
}

/// How many jobs are running under a lease whose owner contains `owner`.
async fn running_under(store: &common::Records, owner: &str) -> usize {
    let filter = jobs::Filter { states: vec![jobs::State::Running], limit: u32::MAX, ..jobs::Filter::default() };
    let page = store.queue().list(&filter).await.unwrap();
    page.jobs.iter().filter(|j| j.lease_owner.as_deref().is_some_and(|o| o.contains(owner))).count()
}
