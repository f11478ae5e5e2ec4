//! The job store conformance suite: every test here runs against real SQLite and real
//! PostgreSQL, so both backends keep exactly the same behaviour. (River's `riverdrivertest`.)
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! each test creates and drops a database of its own.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use domain::{Depth, JobStatus, RunId, RunOptions, StepStatus, TokenUsage};
use jobs::analysis::StepUsage;
use jobs::janitor::{Janitor, JanitorConfig, JanitorReport};
use jobs::model::{Checkpoint, Finish, InsertOutcome, NewJob, ProgressSnapshot};
use jobs::reaper::{Reaper, ReaperConfig};
use jobs::rescuer::{RescueReport, Rescuer, RescuerConfig};
use jobs::store::{JobStore, Settle, StoreError};
use jobs::testing::{ScriptedAnalysis, StepScript, TestDb, new_backtest, new_job, sample_result};
use jobs::worker::{RunEnd, Worker, WorkerConfig};
use jobs::{Events, ManualClock};
use tokio_util::sync::CancellationToken;

struct Harness {
    store: Arc<dyn JobStore>,
    clock: ManualClock,
    events: Events,
    _db: TestDb,
}

impl Harness {
    async fn new(db: TestDb) -> Self {
        let clock = ManualClock::starting_now();
        let store = db.store(Arc::new(clock.clone())).await;
        Self { store, clock, events: Events::new(), _db: db }
    }

    fn worker(&self, analysis: Arc<ScriptedAnalysis>, index: usize) -> Worker {
        let config = WorkerConfig {
            workers: 1,
            lease: Duration::from_secs(30),
            check_every: Duration::from_millis(100),
            ..WorkerConfig::default()
        };
        Worker::new(self.store.clone(), analysis, self.events.clone(), config, index)
    }

    async fn job(&self, run_id: RunId) -> jobs::Job {
        self.store.get(run_id).await.unwrap().expect("job exists")
    }

    /// Polls the store until `cond` holds for the job (the work under test happens elsewhere).
    async fn wait_for(&self, run_id: RunId, what: &str, cond: impl Fn(&jobs::Job) -> bool) -> jobs::Job {
        let start = Instant::now();
        loop {
            let job = self.job(run_id).await;
            if cond(&job) {
                return job;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}: {job:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn insert(h: &Harness, job: NewJob) -> jobs::Job {
    match h.store.insert(&job, 1000).await.unwrap() {
        InsertOutcome::Created(j) => j,
        other => panic!("expected Created, got {other:?}"),
    }
}

const LEASE: ChronoDuration = ChronoDuration::seconds(30);

/// Higher priority first, then oldest first; a claimed job carries a lease and attempt 1.
async fn claim_order(h: Harness) {
    let mut ids = Vec::new();
    for p in [0, 5, 0, 5] {
        ids.push(insert(&h, NewJob { priority: p, ..new_job("u") }).await.run_id);
        h.clock.advance(ChronoDuration::milliseconds(5));
    }
    let mut order = Vec::new();
    while let Some(job) = h.store.claim("w", LEASE).await.unwrap() {
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.attempt, 1);
        assert_eq!(job.lease_owner.as_deref(), Some("w"));
        assert_eq!(job.lease_expires_at, Some(job.heartbeat_at.unwrap() + LEASE));
        assert_eq!(job.timeout_at, Some(job.started_at.unwrap() + ChronoDuration::milliseconds(600_000)));
        order.push(job.run_id);
    }
    assert_eq!(order, vec![ids[1], ids[3], ids[0], ids[2]]);
}

/// 500 jobs, 8 claimers racing: every job is claimed exactly once.
async fn exactly_once_claim(h: Harness) {
    for i in 0..500 {
        insert(&h, new_job(&format!("user{}", i % 50))).await;
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) = store.claim(&format!("w{w}"), LEASE).await.unwrap() {
                mine.push(job.run_id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    let mut busy_claimers = 0;
    for t in tasks {
        let mine = t.await.unwrap();
        busy_claimers += usize::from(!mine.is_empty());
        all.extend(mine);
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 500, "claims in all");
    assert_eq!(unique.len(), 500, "no job claimed twice");
    assert!(busy_claimers >= 2, "claims were spread over claimers ({busy_claimers})");
    let counts = h.store.count_by_status().await.unwrap();
    assert_eq!(counts, vec![(JobStatus::Running, 500)]);
}

/// A worker whose lease was taken over cannot write progress, checkpoints or the end.
async fn fencing(h: Harness) {
    let id = insert(&h, new_job("u")).await.run_id;
    let a = h.store.claim("a", LEASE).await.unwrap().unwrap();
    let fence_a = a.fence().unwrap();
    h.clock.advance(LEASE + ChronoDuration::seconds(1));
    let report = Rescuer::new(h.store.clone(), h.events.clone(), RescuerConfig::default()).run_once().await.unwrap();
    assert_eq!(report, RescueReport { requeued: 1, failed: 0, cancelled: 0 });
    let b = h.store.claim("b", LEASE).await.unwrap().unwrap();
    assert_eq!((b.run_id, b.attempt), (id, 2));
    let fence_b = b.fence().unwrap();

    let snap = ProgressSnapshot { steps: b.steps.clone(), progress_percent: 10, current_step: Some("x".into()) };
    assert!(matches!(h.store.save_progress(&fence_a, &snap).await, Err(StoreError::LeaseLost(r)) if r == id));
    assert!(matches!(h.store.heartbeat(&fence_a, LEASE).await, Err(StoreError::LeaseLost(_))));
    assert!(matches!(h.store.control(&fence_a).await, Err(StoreError::LeaseLost(_))));
    let cp = Checkpoint {
        step: "Data Collection".into(),
        output: serde_json::json!({"a": 1}),
        llm_calls: 1,
        tokens: Default::default(),
        cost_usd: 0.0,
    };
    assert!(matches!(h.store.save_checkpoint(&fence_a, &snap, &cp).await, Err(StoreError::LeaseLost(_))));
    let done = Finish::Completed(Box::new(sample_result("AAPL", 0)));
    assert!(matches!(h.store.finish(&fence_a, &b.steps, &done).await, Err(StoreError::LeaseLost(_))));
    assert!(matches!(h.store.release(&fence_a, &b.steps).await, Err(StoreError::LeaseLost(_))));

    let untouched = h.job(id).await;
    assert_eq!(untouched.version, b.version, "no write of the old owner landed");
    assert!(untouched.checkpoints.is_empty());

    assert!(!h.store.save_progress(&fence_b, &snap).await.unwrap().cancel_requested);
    h.store.finish(&fence_b, &b.steps, &done).await.unwrap();
    let ended = h.job(id).await;
    assert_eq!(ended.status, JobStatus::Completed);
    assert_eq!(ended.progress_percent, 100);
    assert!(
        matches!(h.store.finish(&fence_b, &b.steps, &done).await, Err(StoreError::LeaseLost(_))),
        "ended jobs refuse writes"
    );
}

/// Expired leases: requeued with completed steps kept, failed after the last attempt, cancelled
/// when a cancel was pending; live leases are left alone.
async fn rescue(h: Harness) {
    let rescuer = Rescuer::new(h.store.clone(), h.events.clone(), RescuerConfig::default());
    let id = insert(&h, NewJob { max_attempts: 2, ..new_job("u") }).await.run_id;
    let live = insert(&h, new_job("u2")).await.run_id;

    let job = h.store.claim("a", LEASE).await.unwrap().unwrap();
    let mut steps = job.steps.clone();
    steps[0].status = StepStatus::Completed;
    steps[0].progress = 100;
    steps[1].status = StepStatus::InProgress;
    steps[1].progress = 40;
    let snap = ProgressSnapshot { steps, progress_percent: 30, current_step: Some("Invest Analyst".into()) };
    let cp = Checkpoint {
        step: "Data Collection".into(),
        output: serde_json::json!({"prices": 3}),
        llm_calls: 2,
        tokens: TokenUsage { prompt: 300, completion: 100 },
        cost_usd: 0.25,
    };
    h.store.save_checkpoint(&job.fence().unwrap(), &snap, &cp).await.unwrap();

    assert_eq!(rescuer.run_once().await.unwrap(), RescueReport::default(), "lease still valid");
    h.clock.advance(ChronoDuration::seconds(20));
    let other = h.store.claim("b", LEASE).await.unwrap().unwrap();
    assert_eq!(other.run_id, live);
    h.clock.advance(ChronoDuration::seconds(11));
    // `id` expired (31 s); `live` was claimed 11 s ago.
    assert_eq!(rescuer.run_once().await.unwrap(), RescueReport { requeued: 1, failed: 0, cancelled: 0 });
    let requeued = h.job(id).await;
    assert_eq!(requeued.status, JobStatus::Pending);
    assert_eq!(requeued.lease_owner, None);
    assert_eq!(requeued.steps[0].status, StepStatus::Completed);
    assert_eq!(requeued.steps[1].status, StepStatus::Pending, "unfinished step starts over");
    assert_eq!((requeued.llm_calls, requeued.tokens.total(), requeued.cost_usd), (2, 400, 0.25), "costs are kept");
    assert_eq!(requeued.checkpoints["Data Collection"], serde_json::json!({"prices": 3}));
    assert_eq!(h.job(live).await.status, JobStatus::Running);

    // Second and last attempt dies too: failed, saying why.
    let again = h.store.claim("c", LEASE).await.unwrap().unwrap();
    assert_eq!((again.run_id, again.attempt), (id, 2));
    h.clock.advance(LEASE + ChronoDuration::seconds(1));
    // `live` has expired by now as well, on its first attempt.
    let report = rescuer.run_once().await.unwrap();
    assert_eq!(report, RescueReport { requeued: 1, failed: 1, cancelled: 0 });
    let failed = h.job(id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.as_deref().unwrap().contains("interrupted 2 times"), "{:?}", failed.error);
    assert!(failed.completed_at.is_some());

    // A running job asked to cancel whose worker vanished ends cancelled.
    assert_eq!(h.store.request_cancel(live).await.unwrap().unwrap().status, JobStatus::Cancelled);
    let c = insert(&h, new_job("u3")).await.run_id;
    let job = h.store.claim("d", LEASE).await.unwrap().unwrap();
    assert_eq!(job.run_id, c);
    h.store.request_cancel(c).await.unwrap();
    h.clock.advance(LEASE + ChronoDuration::seconds(1));
    assert_eq!(rescuer.run_once().await.unwrap().cancelled, 1);
    let cancelled = h.job(c).await;
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(cancelled.steps.iter().all(|s| s.status == StepStatus::Skipped));
}

/// A worker dies right after a checkpoint; the next attempt skips every completed step, so no
/// step (no model call) runs twice and `llm_calls` counts each step once.
async fn resume_from_checkpoint(h: Harness) {
    let id = insert(&h, new_job("u")).await.run_id;
    let dying = Arc::new(ScriptedAnalysis::new().with("Invest Analyst", StepScript::CompleteThenHang));
    let worker = h.worker(dying.clone(), 0);
    let task = tokio::spawn(async move { worker.run_once(&CancellationToken::new()).await });
    h.wait_for(id, "the invest checkpoint", |j| j.checkpoints.contains_key("Invest Analyst")).await;
    task.abort(); // the process dies: no further writes
    let _ = task.await;

    h.clock.advance(LEASE + ChronoDuration::seconds(1));
    let report = Rescuer::new(h.store.clone(), h.events.clone(), RescuerConfig::default()).run_once().await.unwrap();
    assert_eq!(report.requeued, 1);

    let healthy = Arc::new(ScriptedAnalysis::new());
    let (job, end) = h.worker(healthy.clone(), 1).run_once(&CancellationToken::new()).await.unwrap().unwrap();
    assert_eq!((job.run_id, job.attempt, end), (id, 2, RunEnd::Completed));
    let first: Vec<_> = dying.executed().into_iter().map(|(_, s)| s).collect();
    let second: Vec<_> = healthy.executed().into_iter().map(|(_, s)| s).collect();
    assert_eq!(first, vec!["Data Collection", "Invest Analyst"]);
    assert_eq!(second, vec!["Risk Analyst", "Final Assessment"], "completed steps were not run again");
    let done = h.job(id).await;
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.llm_calls, 4, "one call per step, none counted twice");
    assert_eq!(done.tokens.prompt, 40);
    assert_eq!(done.checkpoints["Invest Analyst"]["attempt"], 1, "the first attempt's output was kept");
    assert_eq!(done.checkpoints["Risk Analyst"]["attempt"], 2);
    assert!(done.steps.iter().all(|s| s.status == StepStatus::Completed));
}

/// A run past its deadline is stopped by its worker; the reaper ends one whose worker is stuck.
async fn timeout(h: Harness) {
    let id = insert(&h, NewJob { timeout_ms: 300, ..new_job("u") }).await.run_id;
    let hang = Arc::new(ScriptedAnalysis::new().with("Risk Analyst", StepScript::Hang));
    let started = Instant::now();
    let (_, end) = h.worker(hang, 0).run_once(&CancellationToken::new()).await.unwrap().unwrap();
    assert_eq!(end, RunEnd::TimedOut);
    // The deadline, not a hang: a worker that never noticed would block this test forever.
    assert!(started.elapsed() < Duration::from_secs(20));
    let job = h.job(id).await;
    assert_eq!(job.status, JobStatus::Timeout);
    assert_eq!(job.error.as_deref(), Some("The analysis did not finish within 300 milliseconds and was stopped."));
    let statuses: Vec<_> = job.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, vec![StepStatus::Completed, StepStatus::Completed, StepStatus::Failed, StepStatus::Skipped]);

    // Backstop: a claimed job whose worker never ends it.
    let stuck = insert(&h, NewJob { timeout_ms: 60_000, ..new_job("u") }).await.run_id;
    let claimed = h.store.claim("zombie", LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.run_id, stuck);
    let reaper = Reaper::new(h.store.clone(), ReaperConfig::default());
    h.clock.advance(ChronoDuration::seconds(62));
    assert_eq!(reaper.run_once().await.unwrap(), 0, "within the slack the worker may still end it");
    h.clock.advance(ChronoDuration::seconds(4));
    assert_eq!(reaper.run_once().await.unwrap(), 1);
    let reaped = h.job(stuck).await;
    assert_eq!(reaped.status, JobStatus::Timeout);
    assert_eq!(reaped.error.as_deref(), Some("The analysis did not finish within 1 minute and was stopped."));
    let snap = ProgressSnapshot { steps: reaped.steps.clone(), progress_percent: 1, current_step: None };
    assert!(matches!(h.store.save_progress(&claimed.fence().unwrap(), &snap).await, Err(StoreError::LeaseLost(_))));
}

/// Cancelling a pending run ends it at once and no worker ever claims it.
async fn cancel_pending(h: Harness) {
    let id = insert(&h, new_job("u")).await.run_id;
    let job = h.store.request_cancel(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(job.cancel_requested);
    assert!(job.steps.iter().all(|s| s.status == StepStatus::Skipped));
    assert!(h.store.claim("w", LEASE).await.unwrap().is_none());
    let again = h.store.request_cancel(id).await.unwrap().unwrap();
    assert_eq!(again.version, job.version, "cancelling twice changes nothing");
    assert!(h.store.request_cancel(RunId::from_uuid(uuid::Uuid::new_v4())).await.unwrap().is_none());
}

/// Cancelling a running run stops it within a second, by event and by polling alike; finished
/// steps stay completed, the rest are skipped.
async fn cancel_running(h: Harness) {
    for by_event in [true, false] {
        let id = insert(&h, new_job("u")).await.run_id;
        let hang = Arc::new(ScriptedAnalysis::new().with("Invest Analyst", StepScript::Hang));
        let worker = h.worker(hang, 0);
        let task = tokio::spawn(async move { worker.run_once(&CancellationToken::new()).await });
        h.wait_for(id, "invest in progress", |j| j.steps[1].status == StepStatus::InProgress).await;
        let asked = Instant::now();
        let job = h.store.request_cancel(id).await.unwrap().unwrap();
        assert_eq!((job.status, job.cancel_requested), (JobStatus::Running, true));
        if by_event {
            h.events.send_local(jobs::Event::CancelRequested { run_id: id });
        }
        // A worker that never looked would hang on the script, not be slow: the bound is wide
        // (two shared cores), the check itself comes every 500 ms.
        let (_, end) =
            tokio::time::timeout(Duration::from_secs(20), task).await.expect("stopped").unwrap().unwrap().unwrap();
        assert_eq!(end, RunEnd::Cancelled);
        assert!(asked.elapsed() < Duration::from_secs(10), "stopped after {:?}", asked.elapsed());
        let job = h.job(id).await;
        assert_eq!(job.status, JobStatus::Cancelled);
        let statuses: Vec<_> = job.steps.iter().map(|s| s.status).collect();
        assert_eq!(
            statuses,
            vec![StepStatus::Completed, StepStatus::Skipped, StepStatus::Skipped, StepStatus::Skipped]
        );
    }
}

/// The janitor archives only finished runs older than the retention, in batches, and archived
/// runs can still be read, options and all.
async fn retention(h: Harness) {
    let mut old = Vec::new();
    let deep = RunOptions { depth: Depth::Deep, rounds: Some(3), max_tokens: Some(5000), ..RunOptions::default() };
    for i in 0..7 {
        let id = insert(&h, NewJob { options: deep.clone(), ..new_job(&format!("u{i}")) }).await.run_id;
        assert_eq!(h.job(id).await.options, deep);
        assert_eq!(h.job(id).await.steps.len(), 11, "data, two analysts, seven team steps, final");
        let job = h.store.claim("w", LEASE).await.unwrap().unwrap();
        assert_eq!(job.run_id, id);
        h.store.finish(&job.fence().unwrap(), &job.steps, &Finish::Cancelled).await.unwrap();
        old.push(id);
    }
    let old_pending = insert(&h, new_job("p")).await.run_id;
    h.clock.advance(ChronoDuration::days(31));
    let recent = insert(&h, new_job("r")).await.run_id;
    let job = h.store.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(job.run_id, old_pending, "oldest first");
    h.store.finish(&job.fence().unwrap(), &job.steps, &Finish::Cancelled).await.unwrap();
    let _ = recent;

    let before = h.clock_now() - ChronoDuration::days(30);
    let mut batches = Vec::new();
    loop {
        let n = h.store.archive_finished(before, 3).await.unwrap();
        batches.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(batches, vec![3, 3, 1, 0]);
    for id in &old {
        assert!(h.store.get(*id).await.unwrap().is_none());
        let archived = h.store.get_archived(*id).await.unwrap().expect("archived");
        assert_eq!(archived.status, JobStatus::Cancelled);
        assert_eq!(archived.options, deep);
    }
    assert!(h.store.get(old_pending).await.unwrap().is_some(), "finished recently: kept");
    assert!(h.store.get(recent).await.unwrap().is_some(), "pending: kept");

    // The janitor does the same through its loop.
    h.clock.advance(ChronoDuration::days(31));
    let janitor = Janitor::new(h.store.clone(), JanitorConfig { batch: 1, ..JanitorConfig::default() }).unwrap();
    assert_eq!(janitor.run_once().await.unwrap(), JanitorReport { archived: 1, pruned: 0 });
    assert!(h.store.get(old_pending).await.unwrap().is_none());
}

/// History lists archived runs with the live ones, marked, in one order and one count; the
/// janitor deletes archived runs past the archive's retention, in batches, and nothing else.
async fn archive_in_history_and_pruning(h: Harness) {
    let mut old = Vec::new();
    for _ in 0..3 {
        let id = insert(&h, new_job("h")).await.run_id;
        let job = h.store.claim("w", LEASE).await.unwrap().unwrap();
        h.store.finish(&job.fence().unwrap(), &job.steps, &Finish::Cancelled).await.unwrap();
        old.push(id);
        h.clock.advance(ChronoDuration::seconds(1));
    }
    h.clock.advance(ChronoDuration::days(31));
    let live = insert(&h, new_job("h")).await.run_id;
    let other = insert(&h, new_job("someone else")).await.run_id;
    let config = JanitorConfig { batch: 2, archive_retention_days: Some(10), ..JanitorConfig::default() };
    let janitor = Janitor::new(h.store.clone(), config).unwrap();
    assert_eq!(janitor.run_once().await.unwrap(), JanitorReport { archived: 3, pruned: 0 });

    let (first, total) = h.store.list_for_user("h", None, 2, 0).await.unwrap();
    assert_eq!(total, 4, "three archived and one live");
    assert_eq!(first.iter().map(|j| (j.run_id, j.archived)).collect::<Vec<_>>(), vec![(live, false), (old[2], true)]);
    let (second, _) = h.store.list_for_user("h", None, 2, 2).await.unwrap();
    assert_eq!(second.iter().map(|j| (j.run_id, j.archived)).collect::<Vec<_>>(), vec![(old[1], true), (old[0], true)]);
    let (cancelled, total) = h.store.list_for_user("h", Some(JobStatus::Cancelled), 10, 0).await.unwrap();
    assert_eq!(total, 3);
    assert!(cancelled.iter().all(|j| j.archived && j.status == JobStatus::Cancelled));
    assert!(h.store.get_archived(old[0]).await.unwrap().unwrap().archived);
    assert!(!h.store.get(live).await.unwrap().unwrap().archived);

    // Ten days after archiving they go, two at a time; the live runs stay.
    h.clock.advance(ChronoDuration::days(9));
    assert_eq!(janitor.run_once().await.unwrap(), JanitorReport::default());
    h.clock.advance(ChronoDuration::days(2));
    assert_eq!(janitor.run_once().await.unwrap(), JanitorReport { archived: 0, pruned: 3 });
    for id in &old {
        assert!(h.store.get_archived(*id).await.unwrap().is_none());
    }
    let (left, total) = h.store.list_for_user("h", None, 10, 0).await.unwrap();
    assert_eq!((left.len(), total), (1, 1));
    assert!(h.store.get(other).await.unwrap().is_some());
}

/// Visible writes bump the version (the ETag); heartbeats do not. Listing pages and filters.
async fn versions_and_listing(h: Harness) {
    let id = insert(&h, new_job("u")).await.run_id;
    let v0 = h.job(id).await.version;
    let job = h.store.claim("w", LEASE).await.unwrap().unwrap();
    assert!(job.version > v0);
    let fence = job.fence().unwrap();
    h.clock.advance(ChronoDuration::seconds(5));
    h.store.heartbeat(&fence, LEASE).await.unwrap();
    let after_hb = h.job(id).await;
    assert_eq!(after_hb.version, job.version);
    assert_eq!(after_hb.lease_expires_at, Some(h.clock_now() + LEASE));
    let snap = ProgressSnapshot {
        steps: job.steps.clone(),
        progress_percent: 12,
        current_step: Some("Data Collection".into()),
    };
    h.store.save_progress(&fence, &snap).await.unwrap();
    let after = h.job(id).await;
    assert_eq!(after.version, job.version + 1);
    assert_eq!(after.progress_percent, 12);
    assert_eq!(after.current_step.as_deref(), Some("Data Collection"));

    for _ in 0..4 {
        insert(&h, new_job("u")).await;
        h.clock.advance(ChronoDuration::milliseconds(10));
    }
    let (page1, total) = h.store.list_for_user("u", None, 2, 0).await.unwrap();
    let (page3, _) = h.store.list_for_user("u", None, 2, 4).await.unwrap();
    assert_eq!((page1.len(), page3.len(), total), (2, 1, 5));
    assert!(page1[0].created_at >= page1[1].created_at, "newest first");
    assert_eq!(page3[0].run_id, id, "the oldest is last");
    let (running, n) = h.store.list_for_user("u", Some(JobStatus::Running), 10, 0).await.unwrap();
    assert_eq!((running.len(), n), (1, 1));
    assert_eq!(h.store.setting_or_insert("k", "first").await.unwrap(), "first");
    assert_eq!(h.store.setting_or_insert("k", "second").await.unwrap(), "first");
}

/// Heartbeats keep coming while the event bus is busy: wake-ups for other jobs must not
/// postpone them (a worker that stopped heartbeating under load would lose its lease).
async fn heartbeats_survive_a_busy_bus(h: Harness) {
    let id = insert(&h, new_job("u")).await.run_id;
    let hang = Arc::new(ScriptedAnalysis::new().with("Invest Analyst", StepScript::Hang));
    let config = WorkerConfig {
        workers: 1,
        lease: Duration::from_secs(3),
        check_every: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(h.store.clone(), hang, h.events.clone(), config, 0);
    let stop = CancellationToken::new();
    let hard = stop.clone();
    let task = tokio::spawn(async move { worker.run_once(&hard).await });
    let claimed = h.wait_for(id, "invest started", |j| j.steps[1].status == StepStatus::InProgress).await;
    // Events every 5 ms, and the engine's clock moving a second every 100 ms.
    let (events, clock, flooding) = (h.events.clone(), h.clock.clone(), CancellationToken::new());
    let flood = {
        let flooding = flooding.clone();
        tokio::spawn(async move {
            let mut n = 0u32;
            while !flooding.is_cancelled() {
                events.send_local(jobs::Event::JobAvailable);
                n += 1;
                if n.is_multiple_of(20) {
                    clock.advance(ChronoDuration::seconds(1));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let started = claimed.heartbeat_at.unwrap();
    let beating = h
        .wait_for(id, "heartbeats under load", |j| {
            j.heartbeat_at.is_some_and(|t| t - started >= ChronoDuration::seconds(2))
        })
        .await;
    assert_eq!(beating.status, JobStatus::Running);
    flooding.cancel();
    flood.await.unwrap();
    stop.cancel();
    let (_, end) = task.await.unwrap().unwrap().unwrap();
    assert_eq!(end, RunEnd::Released);
}

/// Graceful release gives the job back without spending an attempt.
async fn release(h: Harness) {
    let id = insert(&h, new_job("u")).await.run_id;
    let slow = Arc::new(ScriptedAnalysis::new().with("Invest Analyst", StepScript::Hang));
    let worker = h.worker(slow, 0);
    let hard_stop = CancellationToken::new();
    let stop = hard_stop.clone();
    let task = tokio::spawn(async move { worker.run_once(&stop).await });
    h.wait_for(id, "invest started", |j| j.steps[1].status == StepStatus::InProgress).await;
    hard_stop.cancel();
    let (_, end) = task.await.unwrap().unwrap().unwrap();
    assert_eq!(end, RunEnd::Released);
    let job = h.job(id).await;
    assert_eq!((job.status, job.attempt, job.lease_owner.clone()), (JobStatus::Pending, 0, None));
    assert_eq!(job.steps[0].status, StepStatus::Completed);
    let again = h.store.claim("other", LEASE).await.unwrap().unwrap();
    assert_eq!((again.run_id, again.attempt), (id, 1));
}

/// A failing step fails the run with the analysis's message; the settle of a job that moved on
/// is refused.
async fn failure_and_stale_settle(h: Harness) {
    let id = insert(&h, new_job("u")).await.run_id;
    let failing = Arc::new(
        ScriptedAnalysis::new().with("Risk Analyst", StepScript::Fail("The model returned nonsense twice.".into())),
    );
    let (_, end) = h.worker(failing, 0).run_once(&CancellationToken::new()).await.unwrap().unwrap();
    assert_eq!(end, RunEnd::Failed);
    let job = h.job(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.as_deref(), Some("The model returned nonsense twice."));
    assert_eq!(job.steps[2].status, StepStatus::Failed);
    assert_eq!(job.steps[3].status, StepStatus::Skipped);
    assert_eq!(job.llm_calls, 2);
    assert!(job.duration_ms.is_some());

    let id2 = insert(&h, new_job("u")).await.run_id;
    let seen = h.store.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(seen.run_id, id2);
    h.store.heartbeat(&seen.fence().unwrap(), LEASE + ChronoDuration::seconds(1)).await.unwrap();
    let requeue = Settle::Requeue { steps: seen.steps.clone() };
    assert!(!h.store.settle(&seen, &requeue).await.unwrap(), "a heartbeat since the read wins");
    let usage = StepUsage::default();
    let _ = usage;
}

impl Harness {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use jobs::Clock;
        self.clock.now()
    }
}

/// A backtest is stored with all its cells; they are linked to it, queued below interactive
/// runs, left out of the owner's run list and of the per-user limit of interactive runs.
async fn backtest_rows(h: Harness) {
    let backtest = new_backtest("bt", 30, 4);
    let stored = h.store.insert_backtest(&backtest).await.unwrap();
    assert_eq!((stored.cells, stored.max_running, stored.cancelled_at), (30, 4, None));
    assert_eq!(h.store.get_backtest(backtest.backtest_id).await.unwrap(), Some(stored.clone()));
    assert_eq!(h.store.list_backtests("bt", 10).await.unwrap(), vec![stored.clone()]);
    assert!(h.store.list_backtests("other", 10).await.unwrap().is_empty());
    let cells = h.store.backtest_cells(backtest.backtest_id).await.unwrap();
    assert_eq!(cells.len(), 30);
    assert!(cells.iter().all(|c| c.backtest_id == Some(backtest.backtest_id) && c.priority == -10));
    let dates: Vec<_> = cells.iter().map(|c| c.as_of.unwrap()).collect();
    assert_eq!(dates, backtest.cells.iter().map(|c| c.as_of.unwrap()).collect::<Vec<_>>());
    // 30 pending cells, yet the owner may start interactive runs up to the limit of 3.
    for _ in 0..3 {
        assert!(matches!(h.store.insert(&new_job("bt"), 3).await.unwrap(), InsertOutcome::Created(_)));
    }
    assert!(matches!(h.store.insert(&new_job("bt"), 3).await.unwrap(), InsertOutcome::LimitReached { active: 3 }));
    let (runs, total) = h.store.list_for_user("bt", None, 100, 0).await.unwrap();
    assert_eq!((runs.len(), total), (3, 3), "cells are not in the run list");
    assert_eq!(h.store.queued_interactive().await.unwrap(), 3);
}

/// An interactive run started while a 200-cell backtest is queued (some cells running) is
/// claimed before every remaining cell, and cells run at most `max_running` at a time.
async fn interactive_before_cells(h: Harness) {
    let backtest = new_backtest("bt", 200, 4);
    h.store.insert_backtest(&backtest).await.unwrap();
    let mut running = Vec::new();
    for _ in 0..4 {
        let cell = h.store.claim("w", LEASE).await.unwrap().unwrap();
        assert_eq!(cell.backtest_id, Some(backtest.backtest_id));
        running.push(cell);
    }
    assert_eq!(running[0].as_of, backtest.cells[0].as_of, "cells in order");
    // The cap: 196 cells wait, none may start.
    assert!(h.store.claim("w", LEASE).await.unwrap().is_none());
    h.clock.advance(ChronoDuration::seconds(1));
    let mine = insert(&h, new_job("bt")).await;
    h.clock.advance(ChronoDuration::seconds(1));
    let theirs = insert(&h, new_job("someone")).await;
    // Someone else's run first: the owner of the backtest has 4 running.
    assert_eq!(h.store.claim("w", LEASE).await.unwrap().unwrap().run_id, theirs.run_id);
    assert_eq!(h.store.claim("w", LEASE).await.unwrap().unwrap().run_id, mine.run_id);
    // A cell finishes: the next cell may start.
    let fence = running[0].fence().unwrap();
    h.store.finish(&fence, &running[0].steps, &Finish::Completed(Box::new(sample_result("AAPL", 1)))).await.unwrap();
    let next = h.store.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(next.as_of, backtest.cells[4].as_of);
    // Cancelled: no further cell is claimed.
    h.store.mark_backtest_cancelled(backtest.backtest_id).await.unwrap();
    let fence = next.fence().unwrap();
    h.store.finish(&fence, &next.steps, &Finish::Completed(Box::new(sample_result("AAPL", 1)))).await.unwrap();
    assert!(h.store.claim("w", LEASE).await.unwrap().is_none());
    assert!(h.store.get_backtest(backtest.backtest_id).await.unwrap().unwrap().cancelled_at.is_some());
}

/// Once the janitor has moved a backtest's finished cells to the archive, the backtest still
/// reads every cell, in order, the archived ones with their results; never their checkpoints,
/// which the run itself keeps.
async fn archived_cells(h: Harness) {
    let backtest = new_backtest("bt", 5, 2);
    h.store.insert_backtest(&backtest).await.unwrap();
    let mut finished = Vec::new();
    for calls in [1, 2] {
        let cell = h.store.claim("w", LEASE).await.unwrap().unwrap();
        let snap = ProgressSnapshot { steps: cell.steps.clone(), progress_percent: 10, current_step: None };
        let cp = Checkpoint {
            step: "Data Collection".into(),
            output: serde_json::json!({"prices": calls}),
            llm_calls: 0,
            tokens: TokenUsage::default(),
            cost_usd: 0.0,
        };
        h.store.save_checkpoint(&cell.fence().unwrap(), &snap, &cp).await.unwrap();
        let result = sample_result(&cell.symbol, calls);
        h.store
            .finish(&cell.fence().unwrap(), &cell.steps, &Finish::Completed(Box::new(result.clone())))
            .await
            .unwrap();
        finished.push((cell.run_id, result));
    }
    h.clock.advance(ChronoDuration::days(31));
    let before = h.clock_now() - ChronoDuration::days(30);
    assert_eq!(h.store.archive_finished(before, 100).await.unwrap(), 2);
    for (id, _) in &finished {
        assert!(h.store.get(*id).await.unwrap().is_none(), "moved to the archive");
    }
    let cells = h.store.backtest_cells(backtest.backtest_id).await.unwrap();
    assert_eq!(cells.len(), 5, "live and archived cells");
    let dates: Vec<_> = cells.iter().map(|c| c.as_of.unwrap()).collect();
    assert_eq!(dates, backtest.cells.iter().map(|c| c.as_of.unwrap()).collect::<Vec<_>>());
    for (cell, (id, result)) in cells.iter().zip(&finished) {
        assert_eq!(cell.run_id, *id);
        assert_eq!(cell.status, JobStatus::Completed);
        assert_eq!(cell.result.as_ref(), Some(result));
        assert_eq!(cell.backtest_id, Some(backtest.backtest_id));
        assert!(cell.checkpoints.is_empty(), "a backtest's cells come without checkpoints");
        let run = h.store.get_archived(*id).await.unwrap().unwrap();
        assert_eq!(run.checkpoints["Data Collection"], serde_json::json!({"prices": result.llm_calls}));
    }
    assert!(cells[2..].iter().all(|c| c.status == JobStatus::Pending));
    assert!(h.store.backtest_cells(RunId::from_uuid(uuid::Uuid::new_v4())).await.unwrap().is_empty());
}

/// The calls and tokens of a model's recent completed runs that called it, newest first: the
/// history a backtest's cost is estimated from.
async fn recent_usage(h: Harness) {
    let run = |model: &str, calls: u32, tokens: TokenUsage, end: Finish| {
        let h = &h;
        let model = model.to_string();
        async move {
            insert(h, NewJob { model_id: model, ..new_job("u") }).await;
            let job = h.store.claim("w", LEASE).await.unwrap().unwrap();
            let fence = job.fence().unwrap();
            if calls > 0 {
                let snap = ProgressSnapshot { steps: job.steps.clone(), progress_percent: 50, current_step: None };
                let cp = Checkpoint {
                    step: "x".into(),
                    output: serde_json::json!({}),
                    llm_calls: calls,
                    tokens,
                    cost_usd: 0.0,
                };
                h.store.save_checkpoint(&fence, &snap, &cp).await.unwrap();
            }
            h.store.finish(&fence, &job.steps, &end).await.unwrap();
            h.clock.advance(ChronoDuration::seconds(1));
        }
    };
    let done = || Finish::Completed(Box::new(sample_result("AAPL", 1)));
    run("m", 2, TokenUsage { prompt: 300, completion: 100 }, done()).await;
    run("m", 4, TokenUsage { prompt: 800, completion: 200 }, done()).await;
    run("m", 3, TokenUsage { prompt: 900, completion: 300 }, Finish::Failed("x".into())).await;
    run("m", 0, TokenUsage::default(), done()).await;
    run("other", 5, TokenUsage { prompt: 1000, completion: 500 }, done()).await;
    run("m", 1, TokenUsage { prompt: 150, completion: 50 }, done()).await;
    let usage = h.store.recent_usage("m", 2).await.unwrap();
    assert_eq!(
        usage,
        vec![(1, TokenUsage { prompt: 150, completion: 50 }), (4, TokenUsage { prompt: 800, completion: 200 })]
    );
    assert_eq!(h.store.recent_usage("m", 10).await.unwrap().len(), 3);
    assert!(h.store.recent_usage("nobody", 10).await.unwrap().is_empty());
}

/// Among runs of equal priority, the one whose owner has the fewest running goes first, then
/// the oldest: one user's backlog does not hold back another user's first run.
async fn fair_claims(h: Harness) {
    let mut a = Vec::new();
    for _ in 0..4 {
        a.push(insert(&h, new_job("a")).await.run_id);
        h.clock.advance(ChronoDuration::milliseconds(5));
    }
    let b = insert(&h, new_job("b")).await.run_id;
    h.clock.advance(ChronoDuration::milliseconds(5));
    let c = insert(&h, new_job("c")).await.run_id;
    let mut order = Vec::new();
    while let Some(job) = h.store.claim("w", LEASE).await.unwrap() {
        order.push(job.run_id);
    }
    // a1 (nobody runs anything), then b and c (a has one running), then a's others.
    assert_eq!(order, vec![a[0], b, c, a[1], a[2], a[3]]);
}
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Harness::new(super::TestDb::sqlite()).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Harness::new(super::TestDb::postgres().await).await).await;
                }
            )*
        }
    };
}

conformance!(
    claim_order,
    exactly_once_claim,
    fencing,
    rescue,
    resume_from_checkpoint,
    timeout,
    cancel_pending,
    cancel_running,
    retention,
    archive_in_history_and_pruning,
    versions_and_listing,
    release,
    failure_and_stale_settle,
    heartbeats_survive_a_busy_bus,
    backtest_rows,
    interactive_before_cells,
    archived_cells,
    recent_usage,
    fair_claims,
);
