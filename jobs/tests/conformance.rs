//! The queue's conformance suite: every test here runs against real SQLite and real
//! PostgreSQL, so both backends keep exactly the same behaviour. (River's `riverdrivertest`.)
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! each test creates and drops a database of its own.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use jobs::janitor::{Janitor, JanitorConfig, JanitorReport};
use jobs::job::{Control, Filter, Finish, Order, Outcome, Settle, Write};
use jobs::rescuer::{RescueReport, Rescuer, RescuerConfig};
use jobs::testing::{SCRIPTED, ScriptedHandler, StepScript, TestDb, new_family, new_job};
use jobs::worker::RunEnd;
use jobs::{
    Clock, Event, Events, Handlers, Insert, InsertOutcome, Job, JobId, JobStore, ManualClock, NewJob, State,
    WorkerConfig, WorkerPool,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Harness {
    store: Arc<dyn JobStore>,
    clock: ManualClock,
    events: Events,
    _db: TestDb,
}

const LEASE: ChronoDuration = ChronoDuration::seconds(30);

impl Harness {
    async fn new(db: TestDb) -> Self {
        let clock = ManualClock::starting_now();
        let store = db.store(Arc::new(clock.clone())).await;
        Self { store, clock, events: Events::new(), _db: db }
    }

    fn handlers(handler: Arc<ScriptedHandler>) -> Handlers {
        Handlers::new().register(SCRIPTED, handler)
    }

    fn pool_with(&self, handler: Arc<ScriptedHandler>, config: WorkerConfig) -> WorkerPool {
        WorkerPool::new(
            self.store.clone(),
            Self::handlers(handler),
            self.events.clone(),
            config,
            Arc::new(self.clock.clone()),
        )
        .unwrap()
    }

    fn pool(&self, handler: Arc<ScriptedHandler>) -> WorkerPool {
        let config = WorkerConfig {
            workers: 1,
            lease: Duration::from_secs(30),
            check_every: Duration::from_millis(100),
            ..WorkerConfig::default()
        };
        self.pool_with(handler, config)
    }

    fn rescuer(&self) -> Rescuer {
        Rescuer::new(
            self.store.clone(),
            Arc::new(self.clock.clone()),
            self.events.clone(),
            Self::handlers(Arc::new(ScriptedHandler::new())),
            RescuerConfig::default(),
        )
    }

    async fn job(&self, id: JobId) -> Job {
        self.store.get(id).await.unwrap().expect("job exists")
    }

    async fn claim(&self, owner: &str) -> Option<Job> {
        self.store.claim(owner, LEASE, 1, &[SCRIPTED.to_string()]).await.unwrap().pop()
    }

    /// Polls the store until `cond` holds for the job (the work under test happens elsewhere).
    async fn wait_for(&self, id: JobId, what: &str, cond: impl Fn(&Job) -> bool) -> Job {
        let start = Instant::now();
        loop {
            let job = self.job(id).await;
            if cond(&job) {
                return job;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}: {job:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn insert(h: &Harness, job: NewJob) -> Job {
    match h.store.insert(&Insert::one(job)).await.unwrap() {
        InsertOutcome::Created(j) => j,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn write(fence: &jobs::job::Fence, progress: serde_json::Value) -> Write {
    Write { fence: fence.clone(), progress, checkpoints: Default::default() }
}

fn finish(job: &Job, outcome: Outcome) -> Finish {
    Finish { fence: job.fence().unwrap(), outcome, progress: job.progress.clone(), checkpoints: Default::default() }
}

/// Higher priority first, then oldest first; a claimed job carries a lease, a deadline and
/// attempt 1.
async fn claim_order(h: Harness) {
    let mut ids = Vec::new();
    for p in [0, 5, 0, 5] {
        ids.push(insert(&h, NewJob { priority: p, ..new_job("u") }).await.job_id);
        h.clock.advance(ChronoDuration::milliseconds(5));
    }
    let mut order = Vec::new();
    while let Some(job) = h.claim("w").await {
        assert_eq!(job.state, State::Running);
        assert_eq!(job.attempt, 1);
        assert_eq!(job.lease_owner.as_deref(), Some("w"));
        assert_eq!(job.lease_expires_at, Some(job.heartbeat_at.unwrap() + LEASE));
        assert_eq!(job.timeout_at, Some(job.started_at.unwrap() + ChronoDuration::milliseconds(600_000)));
        order.push(job.job_id);
    }
    assert_eq!(order, vec![ids[1], ids[3], ids[0], ids[2]]);
    assert!(h.store.claim("w", LEASE, 5, &["other kind".to_string()]).await.unwrap().is_empty());
}

/// 500 jobs, 8 claimers racing in batches of up to 7: every job is claimed exactly once.
async fn exactly_once_claim(h: Harness) {
    for i in 0..500 {
        insert(&h, new_job(&format!("user{}", i % 50))).await;
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim(&format!("w{w}"), LEASE, 1 + w % 7, &[SCRIPTED.to_string()]).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|j| j.job_id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 500, "claims in all");
    assert_eq!(unique.len(), 500, "no job claimed twice");
    let counts = h.store.counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!((counts[0].state, counts[0].jobs, counts[0].child), (State::Running, 500, false));
}

/// A worker whose lease was taken over cannot write progress, checkpoints or the end; every
/// item of a batch is answered for itself.
async fn fencing(h: Harness) {
    let id = insert(&h, new_job("u")).await.job_id;
    let a = h.claim("a").await.unwrap();
    let fence_a = a.fence().unwrap();
    h.clock.advance(LEASE + ChronoDuration::seconds(1));
    let report = h.rescuer().run_once().await.unwrap();
    assert_eq!(report, RescueReport { requeued: 1, ..RescueReport::default() });
    let b = h.claim("b").await.unwrap();
    assert_eq!((b.job_id, b.attempt), (id, 2));
    let fence_b = b.fence().unwrap();

    let stale =
        Write { checkpoints: [("a".to_string(), json!(1))].into_iter().collect(), ..write(&fence_a, json!({"x": 1})) };
    assert_eq!(h.store.write(&[stale]).await.unwrap(), vec![None]);
    assert_eq!(h.store.control(std::slice::from_ref(&fence_a), Some(LEASE)).await.unwrap(), vec![None]);
    assert_eq!(h.store.control(std::slice::from_ref(&fence_a), None).await.unwrap(), vec![None]);
    let done = |f: &jobs::job::Fence| Finish {
        fence: f.clone(),
        outcome: Outcome::Completed(json!({"ok": 1})),
        progress: json!({"done": true}),
        checkpoints: [("last".to_string(), json!({"written": "with the end"}))].into_iter().collect(),
    };
    assert_eq!(h.store.finish(&[done(&fence_a)]).await.unwrap(), vec![false]);
    let released = Finish { outcome: Outcome::Released, ..done(&fence_a) };
    assert_eq!(h.store.finish(&[released]).await.unwrap(), vec![false]);
    let untouched = h.job(id).await;
    assert_eq!(untouched.version, b.version, "no write of the old owner landed");
    assert!(untouched.checkpoints.is_empty());

    // One batch, the stale fence and the live one: each answered for itself.
    let answers = h.store.write(&[write(&fence_a, json!({"x": 2})), write(&fence_b, json!({"x": 3}))]).await.unwrap();
    assert_eq!(answers, vec![None, Some(Control { cancel_requested: false })]);
    assert_eq!(h.job(id).await.progress, json!({"x": 3}));
    assert_eq!(h.store.finish(&[done(&fence_a), done(&fence_b)]).await.unwrap(), vec![false, true]);
    let ended = h.job(id).await;
    assert_eq!(ended.state, State::Completed);
    assert_eq!(ended.output, Some(json!({"ok": 1})));
    assert_eq!(ended.progress, json!({"done": true}));
    assert_eq!(ended.checkpoints["last"], json!({"written": "with the end"}), "what was unwritten went with the end");
    assert_eq!(h.store.finish(&[done(&fence_b)]).await.unwrap(), vec![false], "ended jobs refuse writes");
}

/// Expired leases: requeued with checkpoints and progress kept, failed after the last
/// attempt, cancelled when a cancel was pending; live leases are left alone.
async fn rescue(h: Harness) {
    let rescuer = h.rescuer();
    let id = insert(&h, NewJob { max_attempts: 2, ..new_job("u") }).await.job_id;
    let live = insert(&h, new_job("u2")).await.job_id;

    let job = h.claim("a").await.unwrap();
    let checkpoint = Write {
        checkpoints: [("a".to_string(), json!({"prices": 3}))].into_iter().collect(),
        ..write(&job.fence().unwrap(), json!({"done": ["a"], "calls": 2}))
    };
    h.store.write(&[checkpoint]).await.unwrap();

    let mut woken = h.events.subscribe();
    assert_eq!(rescuer.run_once().await.unwrap(), RescueReport::default(), "lease still valid");
    assert!(woken.try_recv().is_err(), "a pass that rescued nothing wakes no worker");
    h.clock.advance(ChronoDuration::seconds(20));
    let other = h.claim("b").await.unwrap();
    assert_eq!(other.job_id, live);
    h.clock.advance(ChronoDuration::seconds(11));
    // `id` expired (31 s); `live` was claimed 11 s ago.
    assert_eq!(rescuer.run_once().await.unwrap(), RescueReport { requeued: 1, ..RescueReport::default() });
    assert_eq!(woken.try_recv(), Ok(Event::JobAvailable), "a requeued job wakes the workers");
    let requeued = h.job(id).await;
    assert_eq!(requeued.state, State::Pending);
    assert_eq!(requeued.lease_owner, None);
    assert_eq!(requeued.progress, json!({"done": ["a"], "calls": 2}), "the progress is kept");
    assert_eq!(requeued.checkpoints["a"], json!({"prices": 3}));
    assert_eq!(h.job(live).await.state, State::Running);

    // Second and last attempt dies too: failed, saying why.
    let again = h.claim("c").await.unwrap();
    assert_eq!((again.job_id, again.attempt), (id, 2));
    h.clock.advance(LEASE + ChronoDuration::seconds(1));
    // `live` has expired by now as well, on its first attempt.
    let report = rescuer.run_once().await.unwrap();
    assert_eq!(report, RescueReport { requeued: 1, failed: 1, ..RescueReport::default() });
    let failed = h.job(id).await;
    assert_eq!(failed.state, State::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("The scripted job was interrupted 2 times (the worker running it stopped responding) and was given up.")
    );
    assert!(failed.completed_at.is_some());

    // A running job asked to cancel whose worker vanished ends cancelled.
    assert_eq!(h.store.cancel(live).await.unwrap().unwrap().state, State::Cancelled);
    let c = insert(&h, new_job("u3")).await.job_id;
    let job = h.claim("d").await.unwrap();
    assert_eq!(job.job_id, c);
    h.store.cancel(c).await.unwrap();
    h.clock.advance(LEASE + ChronoDuration::seconds(1));
    assert_eq!(rescuer.run_once().await.unwrap().cancelled, 1);
    assert_eq!(h.job(c).await.state, State::Cancelled);
}

/// A worker dies right after a checkpoint; the next attempt skips every step with one, so no
/// step runs twice, and the first attempt's outputs are kept.
async fn resume_from_checkpoint(h: Harness) {
    let id = insert(&h, new_job("u")).await.job_id;
    let dying = Arc::new(ScriptedHandler::new().with("b", StepScript::CompleteThenHang));
    let pool = h.pool(dying.clone());
    let task = tokio::spawn(async move { pool.run_once(&CancellationToken::new()).await });
    h.wait_for(id, "the checkpoint of b", |j| j.checkpoints.contains_key("b")).await;
    task.abort(); // the process dies: no further writes
    let _ = task.await;

    h.clock.advance(LEASE + ChronoDuration::seconds(1));
    assert_eq!(h.rescuer().run_once().await.unwrap().requeued, 1);

    let healthy = Arc::new(ScriptedHandler::new());
    let (job, end) = h.pool(healthy.clone()).run_once(&CancellationToken::new()).await.unwrap().unwrap();
    assert_eq!((job.job_id, job.attempt, end), (id, 2, RunEnd::Completed));
    let first: Vec<_> = dying.executed().into_iter().map(|(_, s)| s).collect();
    let second: Vec<_> = healthy.executed().into_iter().map(|(_, s)| s).collect();
    assert_eq!(first, vec!["a", "b"]);
    assert_eq!(second, vec!["c"], "steps with a checkpoint were not run again");
    let done = h.job(id).await;
    assert_eq!(done.state, State::Completed);
    assert_eq!(done.output, Some(json!({"steps": 3})));
    assert_eq!(done.checkpoints["b"]["attempt"], 1, "the first attempt's output was kept");
    assert_eq!(done.checkpoints["c"]["attempt"], 2);
    assert_eq!(done.progress, json!({"done": ["a", "b", "c"]}));
}

/// A job inserted with checkpoints (a run started from another's finished steps) hands them to
/// its handler as an earlier attempt's: those steps are not run, and are kept as they came.
async fn starts_from_given_checkpoints(h: Harness) {
    let given = BTreeMap::from([("a".to_string(), json!({"from": "elsewhere"}))]);
    let id = insert(&h, NewJob { checkpoints: given, ..new_job("u") }).await.job_id;
    assert_eq!(h.job(id).await.checkpoints["a"], json!({"from": "elsewhere"}));
    let handler = Arc::new(ScriptedHandler::new());
    let (job, end) = h.pool(handler.clone()).run_once(&CancellationToken::new()).await.unwrap().unwrap();
    assert_eq!((job.job_id, job.attempt, end), (id, 1, RunEnd::Completed));
    let ran: Vec<_> = handler.executed().into_iter().map(|(_, s)| s).collect();
    assert_eq!(ran, vec!["b", "c"], "the given step was not run");
    let done = h.job(id).await;
    assert_eq!(done.checkpoints["a"], json!({"from": "elsewhere"}));
    assert_eq!(done.checkpoints["c"]["attempt"], 1);
}

/// A job past its deadline is stopped by its worker; the rescuer ends one whose worker is
/// stuck, once the slack has passed.
async fn timeout(h: Harness) {
    let id = insert(&h, NewJob { timeout_ms: 300, ..new_job("u") }).await.job_id;
    let hang = Arc::new(ScriptedHandler::new().with("b", StepScript::Hang));
    let (_, end) = h.pool(hang).run_once(&CancellationToken::new()).await.unwrap().unwrap();
    assert_eq!(end, RunEnd::TimedOut);
    let job = h.job(id).await;
    assert_eq!(job.state, State::Timeout);
    assert_eq!(job.error.as_deref(), Some("The scripted job did not finish within 300 milliseconds and was stopped."));
    assert_eq!(job.progress, json!({"done": ["a"], "current": "b"}), "the last progress is kept");

    // Backstop: a claimed job whose worker never ends it.
    let stuck = insert(&h, NewJob { timeout_ms: 60_000, ..new_job("u") }).await.job_id;
    let claimed = h.claim("zombie").await.unwrap();
    assert_eq!(claimed.job_id, stuck);
    // The zombie keeps its lease alive.
    h.clock.advance(ChronoDuration::seconds(25));
    h.store.control(&[claimed.fence().unwrap()], Some(LEASE)).await.unwrap();
    h.clock.advance(ChronoDuration::seconds(25));
    h.store.control(&[claimed.fence().unwrap()], Some(LEASE)).await.unwrap();
    h.clock.advance(ChronoDuration::seconds(12));
    assert_eq!(h.rescuer().run_once().await.unwrap(), RescueReport::default(), "within the slack");
    h.clock.advance(ChronoDuration::seconds(4));
    assert_eq!(h.rescuer().run_once().await.unwrap().timed_out, 1);
    let reaped = h.job(stuck).await;
    assert_eq!(reaped.state, State::Timeout);
    assert_eq!(reaped.error.as_deref(), Some("The scripted job did not finish within 1 minute and was stopped."));
    assert_eq!(h.store.write(&[write(&claimed.fence().unwrap(), json!({}))]).await.unwrap(), vec![None]);
}

/// Cancelling a pending job ends it at once and no worker ever claims it.
async fn cancel_pending(h: Harness) {
    let id = insert(&h, new_job("u")).await.job_id;
    let job = h.store.cancel(id).await.unwrap().unwrap();
    assert_eq!(job.state, State::Cancelled);
    assert!(job.cancel_requested && job.completed_at.is_some());
    assert!(h.claim("w").await.is_none());
    let again = h.store.cancel(id).await.unwrap().unwrap();
    assert_eq!(again.version, job.version, "cancelling twice changes nothing");
    assert!(h.store.cancel(JobId::new()).await.unwrap().is_none());
}

/// Cancelling a running job stops it, by event and by polling alike, with the progress it
/// had; the flag reaches the worker's next write too.
async fn cancel_running(h: Harness) {
    for by_event in [true, false] {
        let id = insert(&h, new_job("u")).await.job_id;
        let hang = Arc::new(ScriptedHandler::new().with("b", StepScript::Hang));
        // Stopped by the event alone, the watcher does not poll meanwhile: what the store tells
        // the worker can be read before the worker acts on it.
        let (lease, check_every) = if by_event {
            (Duration::from_secs(4 * 3600), Duration::from_secs(3600))
        } else {
            (Duration::from_secs(30), Duration::from_millis(100))
        };
        let config = WorkerConfig { workers: 1, lease, check_every, ..WorkerConfig::default() };
        let pool = h.pool_with(hang, config);
        let task = tokio::spawn(async move { pool.run_once(&CancellationToken::new()).await });
        let running = h.wait_for(id, "b in progress", |j| j.progress["current"] == "b").await;
        let job = h.store.cancel(id).await.unwrap().unwrap();
        assert_eq!((job.state, job.cancel_requested), (State::Running, true));
        if by_event {
            assert_eq!(
                h.store.control(&[running.fence().unwrap()], None).await.unwrap(),
                vec![Some(Control { cancel_requested: true })]
            );
            h.events.send_local(jobs::Event::CancelRequested { job_id: id });
        }
        let (_, end) = task.await.unwrap().unwrap().unwrap();
        assert_eq!(end, RunEnd::Cancelled);
        let job = h.job(id).await;
        assert_eq!(job.state, State::Cancelled);
        assert_eq!(job.progress, json!({"done": ["a"], "current": "b"}));
    }
}

/// The janitor archives only jobs that ended before the retention, in batches; archived jobs
/// are still read, marked, and listed with the live ones in one order and one count; the
/// archive is pruned after its own retention, in batches, and nothing else goes.
async fn retention(h: Harness) {
    let mut old = Vec::new();
    for i in 0..7 {
        let id = insert(&h, NewJob { args: json!({"steps": [], "n": i}), ..new_job("h") }).await.job_id;
        let job = h.claim("w").await.unwrap();
        assert_eq!(job.job_id, id);
        h.store.finish(&[finish(&job, Outcome::Cancelled)]).await.unwrap();
        old.push(id);
        h.clock.advance(ChronoDuration::seconds(1));
    }
    let old_pending = insert(&h, new_job("p")).await.job_id;
    h.clock.advance(ChronoDuration::days(31));
    let recent = insert(&h, new_job("h")).await.job_id;
    let job = h.claim("w").await.unwrap();
    assert_eq!(job.job_id, old_pending, "oldest first");
    h.store.finish(&[finish(&job, Outcome::Cancelled)]).await.unwrap();

    let before = h.clock.now() - ChronoDuration::days(30);
    let mut batches = Vec::new();
    loop {
        let n = h.store.archive(before, 3).await.unwrap();
        batches.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(batches, vec![3, 3, 1, 0]);
    for (i, id) in old.iter().enumerate() {
        let archived = h.job(*id).await;
        assert!(archived.archived);
        assert_eq!((archived.state, archived.args["n"].as_i64()), (State::Cancelled, Some(i as i64)));
    }
    assert!(!h.job(old_pending).await.archived, "ended recently: kept");
    assert!(!h.job(recent).await.archived, "pending: kept");

    let mine = Filter { owner: Some("h".into()), archived: true, count: true, limit: 3, ..Filter::default() };
    let first = h.store.list(&mine).await.unwrap();
    assert_eq!(first.total, Some(8), "seven archived and one live");
    assert_eq!(
        first.jobs.iter().map(|j| (j.job_id, j.archived)).collect::<Vec<_>>(),
        vec![(recent, false), (old[6], true), (old[5], true)]
    );
    let live_only = h.store.list(&Filter { archived: false, ..mine.clone() }).await.unwrap();
    assert_eq!(live_only.total, Some(1));
    let cancelled = Filter { states: vec![State::Cancelled], limit: 100, ..mine.clone() };
    assert_eq!(h.store.list(&cancelled).await.unwrap().jobs.len(), 7);

    // The janitor: archives the one that ended recently once it is old, then prunes after the
    // archive's retention, a batch at a time.
    h.clock.advance(ChronoDuration::days(31));
    let config = JanitorConfig { batch: 2, archive_retention_days: Some(10), ..JanitorConfig::default() };
    let janitor = Janitor::new(h.store.clone(), Arc::new(h.clock.clone()), config).unwrap();
    assert_eq!(janitor.run_once().await.unwrap(), JanitorReport { archived: 1, pruned: 7 });
    assert!(h.store.get(old[0]).await.unwrap().is_none(), "pruned");
    assert!(h.job(old_pending).await.archived);
    h.clock.advance(ChronoDuration::days(11));
    assert_eq!(janitor.run_once().await.unwrap(), JanitorReport { archived: 0, pruned: 1 });
    assert!(h.store.get(recent).await.unwrap().is_some(), "a pending job is never archived");
}

/// Visible writes bump the version (the ETag); heartbeats do not. Listing pages and filters.
async fn versions_and_listing(h: Harness) {
    let id = insert(&h, new_job("u")).await.job_id;
    let v0 = h.job(id).await.version;
    let job = h.claim("w").await.unwrap();
    assert!(job.version > v0);
    let fence = job.fence().unwrap();
    h.clock.advance(ChronoDuration::seconds(5));
    h.store.control(std::slice::from_ref(&fence), Some(LEASE)).await.unwrap();
    let after_hb = h.job(id).await;
    assert_eq!(after_hb.version, job.version);
    assert_eq!(after_hb.lease_expires_at, Some(h.clock.now() + LEASE));
    h.store.write(&[write(&fence, json!({"percent": 12}))]).await.unwrap();
    let after = h.job(id).await;
    assert_eq!(after.version, job.version + 1);
    assert_eq!(after.progress, json!({"percent": 12}));
    assert_eq!(after.updated_at, h.clock.now());

    for i in 0..4 {
        let symbol = if i % 2 == 0 { "AAPL" } else { "MSFT" };
        insert(&h, NewJob { args: json!({"symbol": symbol}), ..new_job("u") }).await;
        h.clock.advance(ChronoDuration::milliseconds(10));
    }
    insert(&h, new_job("someone else")).await;
    let mine = Filter { owner: Some("u".into()), limit: 2, count: true, ..Filter::default() };
    let page1 = h.store.list(&mine).await.unwrap();
    let page3 = h.store.list(&Filter { offset: 4, ..mine.clone() }).await.unwrap();
    assert_eq!((page1.jobs.len(), page3.jobs.len(), page1.total), (2, 1, Some(5)));
    assert!(page1.jobs[0].created_at >= page1.jobs[1].created_at, "newest first");
    assert_eq!(page3.jobs[0].job_id, id, "the oldest is last");
    assert!(page1.jobs[0].checkpoints.is_empty());
    let running = h.store.list(&Filter { states: vec![State::Running], limit: 10, ..mine.clone() }).await.unwrap();
    assert_eq!(running.jobs.iter().map(|j| j.job_id).collect::<Vec<_>>(), vec![id]);
    let aapl = Filter { args_eq: vec![("symbol".into(), "AAPL".into())], limit: 10, ..mine.clone() };
    assert_eq!(h.store.list(&aapl).await.unwrap().total, Some(2));
    let inserted = h.store.list(&Filter { order: Order::Inserted, limit: 10, ..mine }).await.unwrap();
    assert_eq!(inserted.jobs[0].job_id, id);
}

/// Heartbeats keep coming while the event bus is busy: wake-ups for other jobs must not
/// postpone them (a worker that stopped heartbeating under load would lose its lease).
async fn heartbeats_survive_a_busy_bus(h: Harness) {
    let id = insert(&h, new_job("u")).await.job_id;
    let hang = Arc::new(ScriptedHandler::new().with("b", StepScript::Hang));
    let config = WorkerConfig {
        workers: 1,
        lease: Duration::from_secs(3),
        check_every: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let pool = h.pool_with(hang, config);
    let stop = CancellationToken::new();
    let hard = stop.clone();
    let task = tokio::spawn(async move { pool.run_once(&hard).await });
    let claimed = h.wait_for(id, "b started", |j| j.progress["current"] == "b").await;
    // Events every 5 ms, and the queue's clock moving a second every 100 ms.
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
    assert_eq!(beating.state, State::Running);
    flooding.cancel();
    flood.await.unwrap();
    stop.cancel();
    let (_, end) = task.await.unwrap().unwrap().unwrap();
    assert_eq!(end, RunEnd::Released);
}

/// Graceful release gives the job back without spending an attempt, its progress kept.
async fn release(h: Harness) {
    let id = insert(&h, new_job("u")).await.job_id;
    let slow = Arc::new(ScriptedHandler::new().with("b", StepScript::Hang));
    let pool = h.pool(slow);
    let hard_stop = CancellationToken::new();
    let stop = hard_stop.clone();
    let task = tokio::spawn(async move { pool.run_once(&stop).await });
    h.wait_for(id, "b started", |j| j.progress["current"] == "b").await;
    hard_stop.cancel();
    let (_, end) = task.await.unwrap().unwrap().unwrap();
    assert_eq!(end, RunEnd::Released);
    let job = h.job(id).await;
    assert_eq!((job.state, job.attempt, job.lease_owner.clone(), job.completed_at), (State::Pending, 0, None, None));
    assert_eq!(job.progress, json!({"done": ["a"], "current": "b"}));
    let again = h.claim("other").await.unwrap();
    assert_eq!((again.job_id, again.attempt), (id, 1));
}

/// A failing handler fails the job with its message; the settle of a job that moved on since
/// it was read is refused.
async fn failure_and_stale_settle(h: Harness) {
    let id = insert(&h, new_job("u")).await.job_id;
    let failing =
        Arc::new(ScriptedHandler::new().with("b", StepScript::Fail("The model returned nonsense twice.".into())));
    let (_, end) = h.pool(failing).run_once(&CancellationToken::new()).await.unwrap().unwrap();
    assert_eq!(end, RunEnd::Failed);
    let job = h.job(id).await;
    assert_eq!(job.state, State::Failed);
    assert_eq!(job.error.as_deref(), Some("The model returned nonsense twice."));
    assert!(job.duration_ms().is_some());
    assert_eq!(job.progress["current"], "b");

    let id2 = insert(&h, new_job("u")).await.job_id;
    let seen = h.claim("w").await.unwrap();
    assert_eq!(seen.job_id, id2);
    h.clock.advance(ChronoDuration::seconds(1));
    h.store.control(&[seen.fence().unwrap()], Some(LEASE)).await.unwrap();
    assert!(!h.store.settle(&seen, &Settle::Requeue).await.unwrap(), "a heartbeat since the read wins");
    assert_eq!(h.job(id2).await.state, State::Running);
}

/// A parent is stored with all its children, waiting; the children are pending below their
/// priority, listed by parent in the order given, and outside the owner's limit of jobs
/// without a parent.
async fn families(h: Harness) {
    let family = new_family("bt", 30, 4);
    let parent = match h.store.insert(&family).await.unwrap() {
        InsertOutcome::Created(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!((parent.state, parent.child_limit, parent.parent), (State::Waiting, Some(4), None));
    let children = h
        .store
        .list(&Filter { parent: Some(Some(parent.job_id)), order: Order::Inserted, limit: 100, ..Filter::default() })
        .await
        .unwrap()
        .jobs;
    assert_eq!(
        children.iter().map(|c| c.job_id).collect::<Vec<_>>(),
        family.children.iter().map(|c| c.job_id).collect::<Vec<_>>()
    );
    assert!(children.iter().all(|c| c.parent == Some(parent.job_id) && c.priority == -10 && c.state == State::Pending));
    // 30 pending children, yet the owner may start jobs of their own up to the limit of 3.
    let limited = |job| Insert { owner_limit: Some(3), ..Insert::one(job) };
    for _ in 0..3 {
        assert!(matches!(h.store.insert(&limited(new_job("bt"))).await.unwrap(), InsertOutcome::Created(_)));
    }
    assert!(matches!(
        h.store.insert(&limited(new_job("bt"))).await.unwrap(),
        InsertOutcome::LimitReached { active: 3 }
    ));
    let top = Filter { owner: Some("bt".into()), parent: Some(None), count: true, limit: 100, ..Filter::default() };
    assert_eq!(h.store.list(&top).await.unwrap().total, Some(4), "the parent and three jobs");
    let counts = h.store.counts().await.unwrap();
    let pending_children: u64 = counts.iter().filter(|c| c.child && c.state == State::Pending).map(|c| c.jobs).sum();
    assert_eq!(pending_children, 30);
}

/// A job without a parent started while 200 children are queued (some running) is claimed
/// before every remaining child, children run at most `child_limit` at a time (a batch claim
/// included), and none starts once the parent is cancelled.
async fn children_behind_top_level_and_capped(h: Harness) {
    let family = new_family("bt", 200, 4);
    h.store.insert(&family).await.unwrap();
    let kinds = [SCRIPTED.to_string()];
    let running = h.store.claim("w", LEASE, 10, &kinds).await.unwrap();
    assert_eq!(running.len(), 4, "the cap holds within one batch");
    assert_eq!(
        running.iter().map(|c| c.job_id).collect::<Vec<_>>(),
        family.children[..4].iter().map(|c| c.job_id).collect::<Vec<_>>(),
        "children in order"
    );
    assert!(h.claim("w").await.is_none(), "196 children wait, none may start");
    h.clock.advance(ChronoDuration::seconds(1));
    let mine = insert(&h, new_job("bt")).await;
    h.clock.advance(ChronoDuration::seconds(1));
    let theirs = insert(&h, new_job("someone")).await;
    // Someone else's job first: the owner of the family has 4 running.
    assert_eq!(h.claim("w").await.unwrap().job_id, theirs.job_id);
    assert_eq!(h.claim("w").await.unwrap().job_id, mine.job_id);
    // A child ends: the next may start.
    h.store.finish(&[finish(&running[0], Outcome::Completed(json!(1)))]).await.unwrap();
    let next = h.claim("w").await.unwrap();
    assert_eq!(next.job_id, family.children[4].job_id);
    // Cancelled: pending children end, running ones are asked to stop, none starts any more.
    let cancelled = h.store.cancel(family.job.job_id).await.unwrap().unwrap();
    assert_eq!(cancelled.state, State::Cancelled);
    assert!(h.claim("w").await.is_none());
    assert!(h.job(next.job_id).await.cancel_requested);
    assert_eq!(h.job(family.children[100].job_id).await.state, State::Cancelled);
}

/// A family capped at one running child goes through a pool that never polls: each child's
/// end frees the slot and wakes the producer, which claims the next child at once (a claim
/// made while the child's end was still on its way to the database found the cap full).
async fn capped_children_follow_each_other_without_polling(h: Harness) {
    let family = new_family("f", 6, 1);
    h.store.insert(&family).await.unwrap();
    let config = WorkerConfig {
        workers: 2,
        lease: Duration::from_secs(30),
        poll_every: Duration::from_secs(3600),
        check_every: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let pool = h.pool_with(Arc::new(ScriptedHandler::new()), config);
    let stop = CancellationToken::new();
    let running = tokio::spawn(pool.run(stop.clone()));
    let parent = h
        .wait_for(family.job.job_id, "the parent to run after its six children", |j| j.state == State::Completed)
        .await;
    stop.cancel();
    running.await.unwrap();
    assert_eq!(parent.state, State::Completed);
    for child in &family.children {
        assert_eq!(h.job(child.job_id).await.state, State::Completed);
    }
}

/// When its last child ends — finished by its worker, cancelled, or settled by the rescuer — a
/// waiting parent becomes pending and runs.
async fn parents_wake_when_children_end(h: Harness) {
    let family = new_family("p", 3, 3);
    h.store.insert(&family).await.unwrap();
    let parent = family.job.job_id;
    let kinds = [SCRIPTED.to_string()];
    let children = h.store.claim("w", LEASE, 3, &kinds).await.unwrap();
    assert_eq!(children.len(), 3);
    h.store.finish(&[finish(&children[0], Outcome::Completed(json!(1)))]).await.unwrap();
    h.store.cancel(children[1].job_id).await.unwrap();
    assert_eq!(h.job(parent).await.state, State::Waiting, "one child still runs; another is asked to stop");
    h.store
        .finish(&[finish(&children[1], Outcome::Cancelled), finish(&children[2], Outcome::Failed("no".into()))])
        .await
        .unwrap();
    assert_eq!(h.job(parent).await.state, State::Pending);
    let (job, end) =
        h.pool(Arc::new(ScriptedHandler::new())).run_once(&CancellationToken::new()).await.unwrap().unwrap();
    assert_eq!((job.job_id, end), (parent, RunEnd::Completed));

    // A child whose worker died is ended by the rescuer's settle, which wakes its parent too.
    let family = new_family("q", 1, 1);
    h.store.insert(&family).await.unwrap();
    let child = h.claim("w").await.unwrap();
    h.clock.advance(LEASE + ChronoDuration::seconds(1));
    let settled =
        h.store.settle(&child, &Settle::End { state: State::Failed, error: Some("gone".into()) }).await.unwrap();
    assert!(settled);
    assert_eq!(h.job(family.job.job_id).await.state, State::Pending, "a settled child wakes its parent too");
}

/// Runs `statement` on the harness's database behind the store's back: what a crash between
/// two writes leaves.
async fn behind_the_back(h: &Harness, statement: &str) {
    use sqlx::Connection;
    let statement = sqlx::AssertSqlSafe(statement.to_string());
    if h._db.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&h._db.url).await.unwrap();
        sqlx::query(statement).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&h._db.url).await.unwrap();
        sqlx::query(statement).execute(&mut c).await.unwrap();
    }
}

/// A waiting parent whose last child ended without waking it (the process crashed between the
/// two) is woken by the rescuer, counted as woken, not requeued, and the workers are told.
async fn rescuer_wakes_a_stranded_parent(h: Harness) {
    let family = new_family("p", 1, 1);
    h.store.insert(&family).await.unwrap();
    let parent = family.job.job_id;
    let child = h.claim("w").await.unwrap();
    h.store.finish(&[finish(&child, Outcome::Completed(json!(1)))]).await.unwrap();
    assert_eq!(h.job(parent).await.state, State::Pending);
    behind_the_back(&h, &format!("update queue_jobs set state = 'waiting' where job_id = '{}'", parent.0)).await;
    assert_eq!(h.job(parent).await.state, State::Waiting);

    let mut woken = h.events.subscribe();
    assert_eq!(h.rescuer().run_once().await.unwrap(), RescueReport { woken: 1, ..RescueReport::default() });
    assert_eq!(woken.try_recv(), Ok(Event::JobAvailable));
    let job = h.job(parent).await;
    assert_eq!((job.state, job.attempt), (State::Pending, 0), "woken, not an attempt used up");
}

/// The rescuer's loop looks again every interval until it is shut down.
async fn rescuer_runs_until_shut_down(h: Harness) {
    let id = insert(&h, new_job("u")).await.job_id;
    h.claim("gone").await.unwrap();
    h.clock.advance(LEASE + ChronoDuration::seconds(1));
    let config = RescuerConfig { interval: Duration::from_millis(20), ..RescuerConfig::default() };
    let rescuer = Rescuer::new(
        h.store.clone(),
        Arc::new(h.clock.clone()),
        h.events.clone(),
        Harness::handlers(Arc::new(ScriptedHandler::new())),
        config,
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(rescuer.run(shutdown.clone()));
    h.wait_for(id, "the rescuer's loop to requeue the expired job", |j| j.state == State::Pending).await;
    // Claimed and expired again: the loop is still looking.
    h.claim("gone again").await.unwrap();
    h.clock.advance(LEASE + ChronoDuration::seconds(1));
    h.wait_for(id, "a later pass to requeue it again", |j| j.state == State::Pending && j.attempt == 2).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running).await.expect("the loop ends when shut down").unwrap();
}

/// Among jobs of equal priority, the one whose owner has the fewest running goes first, then
/// the oldest — one at a time or in one batch alike.
async fn fair_claims(h: Harness) {
    for batch in [1, 6] {
        let mut a = Vec::new();
        for _ in 0..4 {
            a.push(insert(&h, new_job(&format!("a{batch}"))).await.job_id);
            h.clock.advance(ChronoDuration::milliseconds(5));
        }
        let b = insert(&h, new_job(&format!("b{batch}"))).await.job_id;
        h.clock.advance(ChronoDuration::milliseconds(5));
        let c = insert(&h, new_job(&format!("c{batch}"))).await.job_id;
        let mut order = Vec::new();
        loop {
            let got = h.store.claim("w", LEASE, batch, &[SCRIPTED.to_string()]).await.unwrap();
            if got.is_empty() {
                break;
            }
            order.extend(got.into_iter().map(|j| j.job_id));
        }
        if batch == 1 {
            // a1 (nobody runs anything), then b and c (a has one running), then a's others.
            assert_eq!(order, vec![a[0], b, c, a[1], a[2], a[3]]);
        } else {
            // All at once: the same jobs, reported oldest first.
            assert_eq!(order.iter().collect::<HashSet<_>>(), [a[0], a[1], a[2], a[3], b, c].iter().collect());
        }
        for id in order {
            let job = h.job(id).await;
            h.store.finish(&[finish(&job, Outcome::Completed(json!(1)))]).await.unwrap();
        }
    }
}

/// An idempotency key returns the first job for the same args hash and a conflict for
/// another; keys are per owner.
async fn idempotency(h: Harness) {
    let keyed = |owner: &str, hash: &str| NewJob {
        idempotency_key: Some("key-1".into()),
        args_hash: Some(hash.into()),
        ..new_job(owner)
    };
    let first = insert(&h, keyed("erin", "h1")).await;
    match h.store.insert(&Insert::one(keyed("erin", "h1"))).await.unwrap() {
        InsertOutcome::Existing(j) => assert_eq!(j.job_id, first.job_id),
        other => panic!("{other:?}"),
    }
    match h.store.insert(&Insert::one(keyed("erin", "h2"))).await.unwrap() {
        InsertOutcome::IdempotencyConflict(j) => assert_eq!(j.job_id, first.job_id),
        other => panic!("{other:?}"),
    }
    assert_ne!(insert(&h, keyed("frank", "h1")).await.job_id, first.job_id);
}

/// Batches of progress writes and of heartbeats over the same running jobs, each in the
/// opposite order of the other, at once: none fails (on PostgreSQL, rows locked in whatever
/// order each join visits them would deadlock), and every write lands.
async fn overlapping_batches_never_deadlock(h: Harness) {
    for _ in 0..40 {
        insert(&h, new_job("u")).await;
    }
    let jobs = h.store.claim("w", LEASE, 40, &[SCRIPTED.to_string()]).await.unwrap();
    assert_eq!(jobs.len(), 40);
    let fences: Vec<_> = jobs.iter().map(|j| j.fence().unwrap()).collect();
    let reversed: Vec<_> = fences.iter().rev().cloned().collect();
    let rounds = 60;
    let writer = {
        let (store, fences) = (h.store.clone(), fences.clone());
        tokio::spawn(async move {
            for round in 0..rounds {
                let writes: Vec<Write> =
                    fences.iter().map(|f| write(f, serde_json::json!({ "round": round }))).collect();
                let answers = store.write(&writes).await.expect("a batch of writes");
                assert!(answers.iter().all(Option::is_some), "every fence holds");
            }
        })
    };
    let heart = {
        let store = h.store.clone();
        tokio::spawn(async move {
            for _ in 0..rounds {
                let answers = store.control(&reversed, Some(LEASE)).await.expect("a batch of heartbeats");
                assert!(answers.iter().all(Option::is_some), "every fence holds");
            }
        })
    };
    writer.await.unwrap();
    heart.await.unwrap();
    for j in &jobs {
        let now = h.job(j.job_id).await;
        assert_eq!(now.progress, serde_json::json!({ "round": rounds - 1 }));
        assert_eq!(now.version, j.version + rounds as i64);
    }
}

jobs::both_backends!(
    claim_order,
    overlapping_batches_never_deadlock,
    exactly_once_claim,
    fencing,
    rescue,
    resume_from_checkpoint,
    starts_from_given_checkpoints,
    timeout,
    cancel_pending,
    cancel_running,
    retention,
    versions_and_listing,
    heartbeats_survive_a_busy_bus,
    release,
    failure_and_stale_settle,
    families,
    children_behind_top_level_and_capped,
    parents_wake_when_children_end,
    capped_children_follow_each_other_without_polling,
    fair_claims,
    idempotency,
    rescuer_wakes_a_stranded_parent,
    rescuer_runs_until_shut_down,
);
