//! Faults with real processes against real PostgreSQL: a worker killed with SIGKILL in the
//! middle of a step, a worker stopped with SIGTERM, and a model provider that never answers.
//! The model is a fake OpenAI-compatible server in this test process, so every model call
//! each worker makes is counted.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agents::testing::{Behaviour, FakeLlm};
use chrono::Utc;
use common::{Records, fake_catalog, spawn_worker, terminate};
use domain::{JobStatus, RunId, StepStatus};
use jobs::testing::TestDb;

/// A database, a fake provider in `mode`, and a catalog naming it as model `fake`.
struct Setup {
    db: TestDb,
    store: Records,
    fake: FakeLlm,
    catalog: String,
}

impl Setup {
    async fn new(mode: &str) -> Self {
        let db = TestDb::postgres().await;
        let store = Records::open(&db).await;
        let fake = FakeLlm::start().await;
        let catalog = fake_catalog(&std::env::temp_dir(), &fake.base_url(mode)).to_str().unwrap().to_string();
        Self { db, store, fake, catalog }
    }

    /// A worker process using the catalog, with `extra` settings.
    fn worker(&self, extra: &[(&str, &str)]) -> tokio::process::Child {
        let mut env = vec![("MODEL_CATALOG", self.catalog.as_str()), ("FAKE_API_KEY", "sk-test")];
        env.extend_from_slice(extra);
        spawn_worker(&self.db.url, &env)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.catalog);
    }
}

async fn insert(store: &Records, model: &str, timeout_ms: u64) -> RunId {
    store.insert("faults", model, timeout_ms).await
}

fn calls_per_step(fake: &FakeLlm) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for c in fake.calls() {
        *m.entry(c.step).or_insert(0) += 1;
    }
    m
}

/// SIGKILL while the risk analyst waits on the model: after the lease expires, another worker
/// process finishes the run from its checkpoints. Data Collection and the invest analyst, which
/// had finished, do not run again; only the interrupted risk call is repeated, and each step's
/// model call is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_s_job_resumes_from_its_last_checkpoint_elsewhere() {
    let setup = Setup::new("ok").await;
    let (store, fake) = (&setup.store, &setup.fake);
    fake.queue("You are the Risk Analyst", Behaviour::Delay(Duration::from_secs(120)));
    let env = [("LEASE_SECS", "6")];

    let id = insert(store, "fake", 600_000).await;
    let mut first = setup.worker(&env);
    let first_pid = first.id().unwrap();
    let before = store
        .wait_for(id, Duration::from_secs(60), "invest done, risk waiting", |j| {
            j.checkpoints.contains_key("Invest Analyst") && j.progress.steps[2].status == StepStatus::InProgress
        })
        .await;
    first.start_kill().unwrap(); // SIGKILL: no goodbye, no release
    first.wait().await.unwrap();
    assert_eq!(before.attempt, 1);
    assert!(before.lease_owner.as_deref().unwrap().contains(&format!(":{first_pid}:")), "{:?}", before.lease_owner);

    let killed_at = Instant::now();
    let mut second = setup.worker(&env);
    let second_pid = second.id().unwrap();
    let done = store.wait_for(id, Duration::from_secs(60), "completion", |j| j.status.is_terminal()).await;
    second.start_kill().unwrap();
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    assert!(killed_at.elapsed() < Duration::from_secs(30), "resumed after the lease (6 s), not after minutes");
    assert_eq!(done.attempt, 2);
    assert!(done.lease_owner.as_deref().unwrap().contains(&format!(":{second_pid}:")));
    // Finished steps were not run again: same start times, one model call each.
    assert_eq!(
        done.progress.steps[0].started_at, before.progress.steps[0].started_at,
        "Data Collection did not run again"
    );
    assert_eq!(
        done.progress.steps[1].started_at, before.progress.steps[1].started_at,
        "Invest Analyst did not run again"
    );
    let calls = calls_per_step(fake);
    assert_eq!(calls.get("Invest Analyst"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("Risk Analyst"), Some(&2), "the interrupted call, then the finished one: {calls:?}");
    assert_eq!(calls.get("Final Assessment"), Some(&1), "{calls:?}");
    assert_eq!(done.progress.usage.calls, 3, "one per finished step, counted once");
    let result = done.result.unwrap();
    assert_eq!(result.llm_calls, 3);
    assert!(!result.rule_based);
    assert!(fake.calls().iter().all(|c| c.authorization.as_deref() == Some("Bearer sk-test")));
    // The run's log tells the story: two attempts, the second taking over the finished steps.
    let log = application::store::Store::new(store.db.pools.clone()).log_of(id, 100).await.unwrap();
    let attempts: Vec<u32> = log
        .iter()
        .filter_map(|e| match e.event {
            domain::LogEvent::Started { attempt } => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2]);
    let resumed: Vec<&Vec<String>> = log
        .iter()
        .filter_map(|e| match &e.event {
            domain::LogEvent::Resumed { steps } => Some(steps),
            _ => None,
        })
        .collect();
    assert_eq!(resumed, [&vec!["Data Collection".to_string(), "Invest Analyst".to_string()]]);
}

/// SIGTERM: the worker stops claiming, lets the running step go on for the grace period, then
/// releases the job — which does not cost it an attempt — and exits; another worker process
/// takes it over at once and finishes it without re-running the finished steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_terminated_worker_releases_its_job_for_another_process() {
    let setup = Setup::new("ok").await;
    let (store, fake) = (&setup.store, &setup.fake);
    fake.queue("You are the Risk Analyst", Behaviour::Delay(Duration::from_secs(120)));
    let env = [("SHUTDOWN_GRACE_SECS", "1"), ("LEASE_SECS", "30")];

    let id = insert(store, "fake", 600_000).await;
    let mut first = setup.worker(&env);
    store
        .wait_for(id, Duration::from_secs(60), "risk waiting", |j| j.progress.steps[2].status == StepStatus::InProgress)
        .await;
    let asked = Instant::now();
    terminate(&first);
    let status = tokio::time::timeout(Duration::from_secs(15), first.wait())
        .await
        .expect("exits after the grace period")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(asked.elapsed() >= Duration::from_secs(1), "it waited for the grace period");
    let released = store.run(id).await.unwrap();
    assert_eq!((released.status, released.attempt, released.lease_owner.clone()), (JobStatus::Pending, 0, None));
    assert_eq!(released.progress.steps[1].status, StepStatus::Completed);

    let mut second = setup.worker(&env);
    let done = store.wait_for(id, Duration::from_secs(60), "completion", |j| j.status.is_terminal()).await;
    second.start_kill().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.attempt, 1, "a release is not an attempt");
    let calls = calls_per_step(fake);
    assert_eq!(calls.get("Invest Analyst"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("Risk Analyst"), Some(&2), "{calls:?}");
}

/// A provider that accepts the request and never answers: the run ends as `timeout` when its
/// deadline passes — on time, not when some socket gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_provider_ends_the_run_as_timeout_on_time() {
    let setup = Setup::new("hang").await;
    let store = &setup.store;

    let id = insert(store, "fake", 3_000).await;
    let mut worker = setup.worker(&[("MODEL_TIMEOUT_SECS", "600")]);
    let done = store.wait_for(id, Duration::from_secs(30), "the timeout", |j| j.status.is_terminal()).await;
    worker.start_kill().unwrap();
    assert_eq!(done.status, JobStatus::Timeout);
    assert_eq!(done.error.as_deref(), Some("The analysis did not finish within 3 seconds and was stopped."));
    let took = done.duration_ms().unwrap();
    // On time: not before the deadline, and long before the model's own 600 s timeout would
    // have ended it (the upper bound leaves room for a machine several times slower).
    assert!((3_000..15_000).contains(&took), "ended {took} ms after it started");
    let statuses: Vec<StepStatus> = done.progress.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Completed, StepStatus::Failed, StepStatus::Failed, StepStatus::Skipped]);
    assert!(done.completed_at.unwrap() <= Utc::now());
    assert_eq!(calls_per_step(&setup.fake).len(), 2, "both analysts asked, neither answered");
}
