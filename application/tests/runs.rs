//! The run service against real SQLite and PostgreSQL: starts, retries, limits, idempotency,
//! the daily budget and the stats, with the real request checks (bundled market data, the
//! built-in model catalog).

use std::sync::Arc;
use std::time::Duration;

use agents::market::bundled::BundledData;
use agents::model::{Catalog, Models, ModelsConfig};
use application::checks::Checks;
use application::{Error, RunService, ServiceConfig};
use chrono::Duration as ChronoDuration;
use domain::{AnalystKind, Depth, JobStatus, RunOptions, StartRequest, TokenUsage};
use jobs::model::{Checkpoint, Finish, InsertOutcome, NewJob, ProgressSnapshot};
use jobs::store::JobStore;
use jobs::testing::{TestDb, new_job, sample_result};
use jobs::{Clock, Events, ManualClock};

const LEASE: ChronoDuration = ChronoDuration::seconds(30);

struct Harness {
    store: Arc<dyn JobStore>,
    clock: ManualClock,
    events: Events,
    checks: Arc<Checks>,
    _db: TestDb,
}

impl Harness {
    async fn new(db: TestDb) -> Self {
        let clock = ManualClock::starting_now();
        let store = db.store(Arc::new(clock.clone())).await;
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/market");
        let market = Arc::new(BundledData::load(std::path::Path::new(data)).expect("bundled data"));
        let models =
            Arc::new(Models::new(Catalog::builtin(), &|_| None, reqwest::Client::new(), ModelsConfig::default()));
        let checks = Arc::new(Checks { market, models });
        Self { store, clock, events: Events::new(), checks, _db: db }
    }

    async fn job(&self, run_id: domain::RunId) -> jobs::Job {
        self.store.get(run_id).await.unwrap().expect("job exists")
    }

    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

async fn insert(h: &Harness, job: NewJob) -> jobs::Job {
    match h.store.insert(&job, 1000).await.unwrap() {
        InsertOutcome::Created(j) => j,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn service(h: &Harness, limit: u32) -> RunService {
    let config = ServiceConfig { max_active_per_user: limit, ..ServiceConfig::default() };
    RunService::new(h.store.clone(), h.events.clone(), h.checks.clone(), config).unwrap()
}

fn request(symbol: &str) -> StartRequest {
    StartRequest { symbol: Some(symbol.into()), analysts: Some(vec!["risk".into()]), ..Default::default() }
}

/// Retrying a failed, timed-out or cancelled run creates a new pending run linked to it; other
/// runs cannot be retried, and nobody retries another user's run.
async fn retry(h: Harness) {
    let svc = service(&h, 10);
    let first = h.job(svc.start("alice", &request("msft"), None).await.unwrap().run_id).await;
    let claimed = h.store.claim("w", LEASE).await.unwrap().unwrap();
    h.store.finish(&claimed.fence().unwrap(), &claimed.steps, &Finish::Failed("model said no".into())).await.unwrap();

    let again = h.job(svc.retry("alice", first.run_id).await.unwrap().run_id).await;
    assert_ne!(again.run_id, first.run_id);
    assert_eq!(again.retry_of, Some(first.run_id));
    assert_eq!(again.status, JobStatus::Pending);
    assert_eq!((again.symbol.as_str(), again.analysts.as_slice()), ("MSFT", &[AnalystKind::Risk][..]));
    assert_eq!(h.job(first.run_id).await.status, JobStatus::Failed, "history is kept");

    assert!(matches!(svc.retry("alice", again.run_id).await, Err(Error::NotRetryable(JobStatus::Pending))));
    assert!(matches!(svc.retry("bob", first.run_id).await, Err(Error::NotFound)));
    let cancelled = svc.cancel("alice", again.run_id).await.unwrap();
    assert_eq!(cancelled.run.status, JobStatus::Cancelled);
    assert!(svc.retry("alice", again.run_id).await.is_ok());
    assert!(
        matches!(svc.start("alice", &request("nodata"), None).await, Err(Error::Invalid(e)) if e[0].field == "symbol")
    );
}

/// A start fixes what the server decides for the run — the rounds its depth means and the
/// default budget — and stores it with the run; a retry asks for the same again.
async fn start_settles_depth_and_budget(h: Harness) {
    let config = ServiceConfig {
        standard_rounds: 2,
        deep_rounds: 4,
        default_max_tokens: Some(9_000),
        ..ServiceConfig::default()
    };
    let svc = RunService::new(h.store.clone(), h.events.clone(), h.checks.clone(), config).unwrap();
    let deep = StartRequest { depth: Some("deep".into()), ..request("aapl") };
    let job = h.job(svc.start("gina", &deep, None).await.unwrap().run_id).await;
    assert_eq!(
        job.options,
        RunOptions { depth: Depth::Deep, rounds: Some(4), max_tokens: Some(9_000), ..RunOptions::default() }
    );
    assert_eq!(job.steps.len(), 10, "data, one analyst, seven team steps, final");
    let (progress, _) = svc.progress("gina", job.run_id).await.unwrap();
    assert_eq!(progress.run.depth, Depth::Deep);
    let listed = svc.list("gina", None, 1, 10).await.unwrap();
    assert_eq!(listed.runs[0].depth, Depth::Deep);

    let own = StartRequest {
        depth: Some("standard".into()),
        max_tokens: Some(100),
        max_cost_usd: Some(0.5),
        ..request("msft")
    };
    let job = h.job(svc.start("gina", &own, None).await.unwrap().run_id).await;
    assert_eq!((job.options.rounds, job.options.max_tokens, job.options.max_cost_usd), (Some(2), Some(100), Some(0.5)));
    let quick = h.job(svc.start("gina", &request("nvda"), None).await.unwrap().run_id).await;
    assert_eq!(quick.options, RunOptions { max_tokens: Some(9_000), ..RunOptions::default() });
    assert_eq!(quick.steps.len(), 3);

    svc.cancel("gina", job.run_id).await.unwrap();
    let again = h.job(svc.retry("gina", job.run_id).await.unwrap().run_id).await;
    assert_eq!(again.options, job.options);
}

/// 50 concurrent starts by one user with a limit of 3 create exactly 3 runs.
async fn per_user_limit(h: Harness) {
    let svc = Arc::new(service(&h, 3));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move { svc.start("carol", &request("aapl"), None).await }));
    }
    let (mut created, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(s) if s.created => created += 1,
            Err(Error::TooManyActive { limit: 3, retry_after }) => {
                assert!(retry_after >= Duration::from_secs(1));
                limited += 1
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created, limited), (3, 47));
    let (runs, total) = h.store.list_for_user("carol", None, 100, 0).await.unwrap();
    assert_eq!((runs.len(), total), (3, 3));
    assert!(svc.start("dave", &request("aapl"), None).await.is_ok(), "other users are not limited");
    // A finished run frees a slot.
    h.store.request_cancel(runs[0].run_id).await.unwrap();
    assert!(svc.start("carol", &request("aapl"), None).await.unwrap().created);
}

/// The same key and request return the original run; the same key with another request is a
/// conflict; keys are per user.
async fn idempotency(h: Harness) {
    let svc = service(&h, 10);
    let a = svc.start("erin", &request("aapl"), Some("key-1")).await.unwrap();
    assert!(a.created);
    let b = svc.start("erin", &request("AAPL"), Some("key-1")).await.unwrap();
    assert!(!b.created);
    assert_eq!(b.run_id, a.run_id);
    match svc.start("erin", &request("msft"), Some("key-1")).await {
        Err(Error::IdempotencyConflict { run_id }) => assert_eq!(run_id, a.run_id),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let c = svc.start("frank", &request("aapl"), Some("key-1")).await.unwrap();
    assert!(c.created && c.run_id != a.run_id);
    assert!(matches!(svc.start("erin", &request("aapl"), Some("bad key")).await, Err(Error::Invalid(_))));
    let (_, total) = h.store.list_for_user("erin", None, 10, 0).await.unwrap();
    assert_eq!(total, 1);
}

/// The stats read the runs that finished in a window, latest first, and count them right.
async fn stats_of_finished_runs(h: Harness) {
    let mut ids = Vec::new();
    for (i, finish) in
        [Finish::Failed("boom".into()), Finish::Completed(Box::new(sample_result("AAPL", 3)))].into_iter().enumerate()
    {
        let id = insert(&h, new_job(&format!("s{i}"))).await.run_id;
        let job = h.store.claim("w", LEASE).await.unwrap().unwrap();
        h.clock.advance(ChronoDuration::seconds(4));
        h.store.finish(&job.fence().unwrap(), &job.steps, &finish).await.unwrap();
        ids.push(id);
        h.clock.advance(ChronoDuration::hours(2));
    }
    let now = h.clock_now();
    let recent = h.store.finished_since(now - ChronoDuration::hours(5), 10).await.unwrap();
    assert_eq!(recent.iter().map(|j| j.run_id).collect::<Vec<_>>(), vec![ids[1], ids[0]], "latest first");
    assert_eq!(h.store.finished_since(now - ChronoDuration::hours(1), 10).await.unwrap().len(), 0);
    let stats = application::stats::Stats::compute(&recent, &[(JobStatus::Pending, 2)], now);
    assert_eq!((stats.last_day.finished, stats.last_day.failed, stats.last_day.completed), (2, 1, 1));
    assert_eq!(stats.last_day.average_duration_ms, Some(4000));
    assert_eq!(stats.last_day.failure_rate, Some(0.5));
    assert_eq!(stats.last_hour.finished, 0);
    assert_eq!(stats.queue.pending, 2);
    assert_eq!(stats.recent_failures.iter().map(|f| f.error.as_deref()).collect::<Vec<_>>(), vec![Some("boom")]);
}

/// A user's spending in a window: the tokens and cost of their runs last updated in it, the
/// oldest update among them; other users' runs, runs that spent nothing and runs last updated
/// before the window do not count. The service refuses a start once a daily limit is reached,
/// with a `Retry-After` of when the oldest counted run leaves the window, and creates nothing.
async fn daily_usage(h: Harness) {
    let window = application::budget::WINDOW;
    insert(&h, new_job("ann")).await;
    let first = spend(&h, "w", 300, 100, 0.25).await;
    let steps = h.job(first.run_id).await.steps;
    h.clock.advance(ChronoDuration::seconds(1));
    h.store.finish(&first.fence().unwrap(), &steps, &Finish::Failed("no".into())).await.unwrap();
    let t0 = h.store.clock().now();
    h.clock.advance(ChronoDuration::hours(2));
    insert(&h, new_job("ann")).await;
    let second = spend(&h, "w", 50, 25, 0.5).await;
    insert(&h, new_job("bob")).await;
    spend(&h, "w", 1000, 1000, 9.0).await;
    insert(&h, new_job("ann")).await; // pending: spent nothing

    let now = h.store.clock().now();
    let used = h.store.usage_since("ann", now - window).await.unwrap();
    assert_eq!((used.runs, used.tokens), (2, 475));
    assert!((used.cost_usd - 0.75).abs() < 1e-9, "{used:?}");
    assert_eq!(used.oldest.map(|t| t.timestamp_millis()), Some(t0.timestamp_millis()));
    assert_eq!(h.job(first.run_id).await.updated_at.timestamp_millis(), t0.timestamp_millis());
    let later = h.store.usage_since("ann", t0 + ChronoDuration::hours(1)).await.unwrap();
    assert_eq!((later.runs, later.tokens), (1, 75));
    assert_eq!(
        later.oldest.map(|t| t.timestamp_millis()),
        Some(h.job(second.run_id).await.updated_at.timestamp_millis())
    );
    let nobody = h.store.usage_since("carl", now - window).await.unwrap();
    assert_eq!((nobody.runs, nobody.tokens, nobody.cost_usd, nobody.oldest), (0, 0, 0.0, None));

    let budget = |tokens, cost_usd| {
        let config = ServiceConfig {
            max_active_per_user: 100,
            daily_budget: application::budget::DailyBudget { tokens, cost_usd },
            ..ServiceConfig::default()
        };
        RunService::new(h.store.clone(), h.events.clone(), h.checks.clone(), config).unwrap()
    };
    let count = |user: &'static str| {
        let store = h.store.clone();
        async move { store.list_for_user(user, None, 100, 0).await.unwrap().1 }
    };
    assert!(budget(Some(476), None).start("ann", &request("aapl"), None).await.unwrap().created);
    assert_eq!(count("ann").await, 4);
    for svc in [budget(Some(475), None), budget(None, Some(0.75)), budget(Some(10_000), Some(0.5))] {
        match svc.start("ann", &request("aapl"), None).await {
            Err(Error::DailyBudget { retry_after, .. }) => {
                // The first run, 2 hours and 2 seconds old, leaves the window 2 s before 22 h.
                assert_eq!(retry_after.as_secs(), 22 * 3600 - 2);
            }
            other => panic!("expected a daily-budget refusal, got {other:?}"),
        }
        assert!(matches!(svc.retry("ann", first.run_id).await, Err(Error::DailyBudget { .. })));
    }
    assert_eq!(count("ann").await, 4, "a refused start creates nothing");
    assert!(budget(Some(475), None).start("dora", &request("aapl"), None).await.unwrap().created, "others start");
    // Once the first run leaves the window, what it spent no longer counts.
    h.clock.advance(window - ChronoDuration::hours(2) + ChronoDuration::seconds(1));
    assert!(budget(Some(475), None).start("ann", &request("aapl"), None).await.unwrap().created);
}

/// Claims the only pending run and stores a checkpoint that cost `tokens`
/// (prompt, completion) and `cost_usd`.
async fn spend(h: &Harness, owner: &str, prompt: u64, completion: u64, cost_usd: f64) -> jobs::Job {
    let job = h.store.claim(owner, LEASE).await.unwrap().expect("a pending run");
    // A write at the very instant of the last one would get the database's own clock (the
    // PostgreSQL trigger keeping `updated_at` true), not the test's.
    h.clock.advance(ChronoDuration::seconds(1));
    let snap = ProgressSnapshot { steps: job.steps.clone(), progress_percent: 10, current_step: None };
    let cp = Checkpoint {
        step: "Invest Analyst".into(),
        output: serde_json::json!({}),
        llm_calls: 1,
        tokens: TokenUsage { prompt, completion },
        cost_usd,
    };
    h.store.save_checkpoint(&job.fence().unwrap(), &snap, &cp).await.unwrap();
    job
}

macro_rules! both_backends {
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

both_backends!(retry, start_settles_depth_and_budget, per_user_limit, idempotency, stats_of_finished_runs, daily_usage);
