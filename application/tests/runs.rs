//! The run service against real SQLite and PostgreSQL: starts, retries, limits, idempotency,
//! the daily budget and the stats, with the real request checks (bundled market data, the
//! built-in model catalog).

mod common;

use std::sync::Arc;
use std::time::Duration;

use application::checks::Checks;
use application::run::{KIND, Run, RunProgress, job_id};
use application::store::Store;
use application::{Error, RunService, ServiceConfig};
use chrono::Duration as ChronoDuration;
use domain::{AnalysisResult, AnalystKind, Depth, JobStatus, RunId, RunOptions, StartRequest, TokenUsage, Usage};
use jobs::job::{Finish, Outcome, Write};
use jobs::testing::TestDb;
use jobs::{Clock, Database, Events, Job, JobStore, ManualClock};

const LEASE: ChronoDuration = ChronoDuration::seconds(30);

struct Harness {
    db: Database,
    queue: Arc<dyn JobStore>,
    store: Store,
    clock: ManualClock,
    events: Events,
    checks: Arc<Checks>,
    _db: TestDb,
}

impl Harness {
    async fn new(test_db: TestDb) -> Self {
        let clock = ManualClock::starting_now();
        let db = common::open(&test_db, Arc::new(clock.clone())).await;
        let queue = db.queue().clone();
        let store = Store::new(db.pools.clone());
        Self { db, queue, store, clock, events: Events::new(), checks: common::checks(), _db: test_db }
    }

    fn service_with(&self, config: ServiceConfig) -> RunService {
        RunService::new(&self.db, self.events.clone(), self.checks.clone(), config).unwrap()
    }

    async fn job(&self, run_id: RunId) -> Run {
        Run::from_job(self.queue.get(job_id(run_id)).await.unwrap().expect("job exists")).unwrap()
    }

    async fn claim(&self, owner: &str) -> Option<Job> {
        self.queue.claim(owner, LEASE, 1, &[KIND.to_string()]).await.unwrap().pop()
    }

    /// Ends a claimed run as its worker would, with its progress as it was claimed.
    async fn finish(&self, job: &Job, outcome: Outcome) {
        let finish = Finish {
            fence: job.fence().unwrap(),
            outcome,
            progress: job.progress.clone(),
            checkpoints: Default::default(),
        };
        assert_eq!(self.queue.finish(&[finish]).await.unwrap(), vec![true]);
    }

    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

fn service(h: &Harness, limit: u32) -> RunService {
    h.service_with(ServiceConfig { max_active_per_user: limit, ..ServiceConfig::default() })
}

/// A result to complete a run with.
fn result(symbol: &str) -> serde_json::Value {
    let mut r: serde_json::Value = serde_json::json!({
        "symbol": symbol, "asOf": "2023-09-21", "modelId": "offline", "rating": "Hold", "confidence": 0.5,
        "summary": "Scripted.", "keyRisks": [], "reports": [], "figures": [], "chart": [], "llmCalls": 3,
        "tokens": {"prompt": 0, "completion": 0}, "ruleBased": true
    });
    // Whatever the result type adds later, this one must still read as one.
    let _: AnalysisResult = serde_json::from_value(r.clone()).expect("a result");
    r["symbol"] = symbol.into();
    r
}

fn request(symbol: &str) -> StartRequest {
    StartRequest { symbol: Some(symbol.into()), analysts: Some(vec!["risk".into()]), ..Default::default() }
}

/// Retrying a failed, timed-out or cancelled run creates a new pending run linked to it; other
/// runs cannot be retried, and nobody retries another user's run.
async fn retry(h: Harness) {
    let svc = service(&h, 10);
    let first = h.job(svc.start("alice", &request("msft"), None).await.unwrap().run_id).await;
    let claimed = h.claim("w").await.unwrap();
    h.finish(&claimed, Outcome::Failed("model said no".into())).await;

    let again = h.job(svc.retry("alice", first.run_id).await.unwrap().run_id).await;
    assert_ne!(again.run_id, first.run_id);
    assert_eq!(again.retry_of, Some(first.run_id));
    assert_eq!(again.status, JobStatus::Pending);
    assert_eq!((again.start.symbol.as_str(), again.start.analysts.as_slice()), ("MSFT", &[AnalystKind::Risk][..]));
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
    let svc = h.service_with(config);
    let deep = StartRequest { depth: Some("deep".into()), ..request("aapl") };
    let job = h.job(svc.start("gina", &deep, None).await.unwrap().run_id).await;
    assert_eq!(
        job.start.options,
        RunOptions { depth: Depth::Deep, rounds: Some(4), max_tokens: Some(9_000), ..RunOptions::default() }
    );
    assert_eq!(job.progress.steps.len(), 10, "data, one analyst, seven team steps, final");
    let (progress, _) = svc.progress("gina", job.run_id).await.unwrap();
    assert_eq!(progress.run.depth, Depth::Deep);
    let listed = svc.list("gina", &domain::RunsQuery::newest(10)).await.unwrap();
    assert_eq!(listed.runs[0].depth, Depth::Deep);

    let own = StartRequest {
        depth: Some("standard".into()),
        max_tokens: Some(100),
        max_cost_usd: Some(0.5),
        ..request("msft")
    };
    let job = h.job(svc.start("gina", &own, None).await.unwrap().run_id).await;
    assert_eq!(
        (job.start.options.rounds, job.start.options.max_tokens, job.start.options.max_cost_usd),
        (Some(2), Some(100), Some(0.5))
    );
    let quick = h.job(svc.start("gina", &request("nvda"), None).await.unwrap().run_id).await;
    assert_eq!(quick.start.options, RunOptions { max_tokens: Some(9_000), ..RunOptions::default() });
    assert_eq!(quick.progress.steps.len(), 3);

    svc.cancel("gina", job.run_id).await.unwrap();
    let again = h.job(svc.retry("gina", job.run_id).await.unwrap().run_id).await;
    assert_eq!(again.start.options, job.start.options);
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
    let listed = svc.list("carol", &domain::RunsQuery::newest(100)).await.unwrap();
    assert_eq!((listed.runs.len(), listed.total), (3, 3));
    assert!(svc.start("dave", &request("aapl"), None).await.is_ok(), "other users are not limited");
    // A finished run frees a slot.
    svc.cancel("carol", listed.runs[0].run_id).await.unwrap();
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
    assert_eq!(svc.list("erin", &domain::RunsQuery::newest(10)).await.unwrap().total, 1);
}

/// The stats read the runs that ended in the last day, latest first, and count them right.
async fn stats_of_finished_runs(h: Harness) {
    let svc = service(&h, 10);
    let mut ids = Vec::new();
    for (i, outcome) in [Outcome::Failed("boom".into()), Outcome::Completed(result("AAPL"))].into_iter().enumerate() {
        let id = svc.start(&format!("s{i}"), &request("aapl"), None).await.unwrap().run_id;
        let job = h.claim("w").await.unwrap();
        h.clock.advance(ChronoDuration::seconds(4));
        h.finish(&job, outcome).await;
        ids.push(id);
        h.clock.advance(ChronoDuration::hours(2));
    }
    svc.start("p", &request("aapl"), None).await.unwrap();
    svc.start("p", &request("msft"), None).await.unwrap();
    let stats = svc.stats().await.unwrap();
    assert_eq!((stats.last_day.finished, stats.last_day.failed, stats.last_day.completed), (2, 1, 1));
    assert_eq!(stats.last_day.average_duration_ms, Some(4000));
    assert_eq!(stats.last_day.failure_rate, Some(0.5));
    assert_eq!(stats.last_hour.finished, 0);
    assert_eq!((stats.queue.pending, stats.queue.running), (2, 0));
    let failures: Vec<_> = stats.recent_failures.iter().map(|f| (f.run_id, f.error.as_deref())).collect();
    assert_eq!(failures, vec![(ids[0], Some("boom"))]);
    h.clock.advance(ChronoDuration::hours(21));
    let later = svc.stats().await.unwrap();
    assert_eq!(later.last_day.finished, 1, "the first ended more than a day ago");
}

/// A user's spending in a window: the tokens and cost of their runs last updated in it, the
/// oldest update among them; other users' runs, runs that spent nothing and runs last updated
/// before the window do not count. The service refuses a start once a daily limit is reached,
/// with a `Retry-After` of when the oldest counted run leaves the window, and creates nothing.
async fn daily_usage(h: Harness) {
    let window = application::budget::WINDOW;
    let free = service(&h, 100);
    free.start("ann", &request("aapl"), None).await.unwrap();
    let first = spend(&h, 300, 100, 0.25).await;
    h.clock.advance(ChronoDuration::seconds(1));
    let ended = h.queue.get(first.job_id).await.unwrap().unwrap();
    h.finish(&ended, Outcome::Failed("no".into())).await;
    let first = h.job(application::run::run_id(first.job_id)).await;
    let t0 = h.clock_now();
    h.clock.advance(ChronoDuration::hours(2));
    free.start("ann", &request("aapl"), None).await.unwrap();
    let second = spend(&h, 50, 25, 0.5).await;
    free.start("bob", &request("aapl"), None).await.unwrap();
    spend(&h, 1000, 1000, 9.0).await;
    free.start("ann", &request("aapl"), None).await.unwrap(); // pending: spent nothing

    let now = h.clock_now();
    let used = h.store.usage_since("ann", now - window).await.unwrap();
    assert_eq!((used.runs, used.tokens), (2, 475));
    assert!((used.cost_usd - 0.75).abs() < 1e-9, "{used:?}");
    assert_eq!(used.oldest.map(|t| t.timestamp_millis()), Some(t0.timestamp_millis()));
    assert_eq!(first.updated_at.timestamp_millis(), t0.timestamp_millis());
    let later = h.store.usage_since("ann", t0 + ChronoDuration::hours(1)).await.unwrap();
    assert_eq!((later.runs, later.tokens), (1, 75));
    let second_updated = h.queue.get(second.job_id).await.unwrap().unwrap().updated_at;
    assert_eq!(later.oldest.map(|t| t.timestamp_millis()), Some(second_updated.timestamp_millis()));
    let nobody = h.store.usage_since("carl", now - window).await.unwrap();
    assert_eq!((nobody.runs, nobody.tokens, nobody.cost_usd, nobody.oldest), (0, 0, 0.0, None));

    let budget = |tokens, cost_usd| {
        h.service_with(ServiceConfig {
            max_active_per_user: 100,
            daily_budget: application::budget::DailyBudget { tokens, cost_usd },
            ..ServiceConfig::default()
        })
    };
    let count = |user: &'static str| {
        let svc = service(&h, 100);
        async move { svc.list(user, &domain::RunsQuery::newest(100)).await.unwrap().total }
    };
    assert!(budget(Some(476), None).start("ann", &request("aapl"), None).await.unwrap().created);
    assert_eq!(count("ann").await, 4);
    for svc in [budget(Some(475), None), budget(None, Some(0.75)), budget(Some(10_000), Some(0.5))] {
        match svc.start("ann", &request("aapl"), None).await {
            Err(Error::DailyBudget { retry_after, .. }) => {
                // The first run, 2 hours and 2 seconds old, leaves the window 2 s before 22 h.
                assert_eq!(retry_after, Duration::from_secs(22 * 3600 - 2));
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

/// Claims the oldest pending run and stores a checkpoint whose progress document counts
/// `prompt` and `completion` tokens and `cost_usd`, as the analysis's reporter writes it.
async fn spend(h: &Harness, prompt: u64, completion: u64, cost_usd: f64) -> Job {
    let job = h.claim("w").await.expect("a pending run");
    h.clock.advance(ChronoDuration::seconds(1));
    let mut progress: RunProgress = serde_json::from_value(job.progress.clone()).unwrap();
    progress.usage = Usage { calls: 1, tokens: TokenUsage { prompt, completion }, cost_usd };
    let write = Write {
        fence: job.fence().unwrap(),
        progress: serde_json::to_value(&progress).unwrap(),
        checkpoints: [("Invest Analyst".to_string(), serde_json::json!({}))].into_iter().collect(),
    };
    assert!(h.queue.write(&[write]).await.unwrap()[0].is_some());
    job
}

/// Completes the oldest pending run with `result` after a second of work.
async fn complete(h: &Harness, result: serde_json::Value) {
    let job = h.claim("w").await.expect("a pending run");
    h.clock.advance(ChronoDuration::seconds(1));
    h.finish(&job, Outcome::Completed(result)).await;
}

/// The history's filters combine and return exactly the runs that match, the user's only; the
/// keyset cursor pages through them newest first, and a run started between two pages shifts
/// nothing; tags are the owner's, checked, and filter the history; bad filters are named.
async fn history_search(h: Harness) {
    let svc = service(&h, 100);
    let q = |pairs: &[(&str, &str)]| domain::RunsQuery::parse(pairs.iter().copied()).unwrap();
    let ids = |page: &domain::RunsPage| page.runs.iter().map(|r| r.run_id).collect::<Vec<_>>();
    let with = |symbol: &str, rating: &str, confidence: f64, summary: &str| {
        let mut r = result(symbol);
        r["rating"] = rating.into();
        r["confidence"] = confidence.into();
        r["summary"] = summary.into();
        r["reports"] = serde_json::json!([{"analyst": "risk", "stance": "neutral", "confidence": 0.5,
            "keyFigures": [], "report": "Volatility 50% above its mean."}]);
        let _: AnalysisResult = serde_json::from_value(r.clone()).expect("a result");
        r
    };
    let buy = svc.start("hana", &request("aapl"), None).await.unwrap().run_id;
    complete(&h, with("AAPL", "Buy", 0.8, "Strong momentum in services.")).await;
    h.clock.advance(ChronoDuration::minutes(1));
    let sell = svc.start("hana", &request("msft"), None).await.unwrap().run_id;
    complete(&h, with("MSFT", "Sell", 0.6, "Cloud slowdown.")).await;
    h.clock.advance(ChronoDuration::minutes(1));
    svc.start("ivan", &request("aapl"), None).await.unwrap();
    complete(&h, with("AAPL", "Buy", 0.9, "Strong momentum elsewhere.")).await;
    let failed = svc.start("hana", &request("aapl"), None).await.unwrap().run_id;
    let job = h.claim("w").await.unwrap();
    h.finish(&job, Outcome::Failed("boom".into())).await;
    // Two runs created in the same millisecond: the cursor tells them apart by their row.
    let deep = StartRequest { depth: Some("standard".into()), ..request("nvda") };
    let nvda = svc.start("hana", &deep, None).await.unwrap().run_id;
    let nvda2 = svc.start("hana", &request("nvda"), None).await.unwrap().run_id;

    let all = svc.list("hana", &q(&[])).await.unwrap();
    assert_eq!(ids(&all), vec![nvda2, nvda, failed, sell, buy]);
    assert_eq!((all.total, all.next.as_deref()), (5, None));
    let first = &all.runs[4];
    assert_eq!((first.rating, first.confidence, first.symbol.as_str()), (Some(domain::Rating::Buy), Some(0.8), "AAPL"));
    assert_eq!(first.as_of, chrono::NaiveDate::from_ymd_opt(2023, 9, 21));

    for (pairs, expected) in [
        (vec![("symbol", "aapl")], vec![failed, buy]),
        (vec![("rating", "buy")], vec![buy]),
        (vec![("rating", "Buy"), ("symbol", "MSFT")], vec![]),
        (vec![("status", "failed")], vec![failed]),
        (vec![("status", "pending"), ("depth", "standard")], vec![nvda]),
        (vec![("depth", "quick"), ("symbol", "NVDA")], vec![nvda2]),
        (vec![("modelId", "offline"), ("rating", "Sell")], vec![sell]),
        (vec![("q", "MOMENTUM services")], vec![buy]),
        (vec![("q", "momentum cloud")], vec![]),
        (vec![("q", "volatility")], vec![sell, buy]),
        (vec![("q", "50%")], vec![sell, buy]),
        // `%` and `_` are themselves, not wildcards.
        (vec![("q", "5_%")], vec![]),
        (vec![("asOfFrom", "2023-09-21"), ("asOfTo", "2023-09-21")], vec![sell, buy]),
        (vec![("asOfTo", "2023-09-20")], vec![]),
    ] {
        let page = svc.list("hana", &q(&pairs)).await.unwrap();
        assert_eq!(ids(&page), expected, "{pairs:?}");
        assert_eq!(page.total, expected.len() as u64, "{pairs:?}");
    }
    let today = h.clock_now().date_naive();
    let (yesterday, tomorrow) = (today.pred_opt().unwrap().to_string(), today.succ_opt().unwrap().to_string());
    assert_eq!(svc.list("hana", &q(&[("from", &today.to_string())])).await.unwrap().total, 5);
    assert_eq!(svc.list("hana", &q(&[("to", &yesterday)])).await.unwrap().total, 0);
    assert_eq!(svc.list("hana", &q(&[("from", &tomorrow)])).await.unwrap().total, 0);

    // Tags: the owner's, checked, shown and filtering.
    assert_eq!(
        svc.set_tags("hana", sell, &["Weekly".into(), "earnings week".into()]).await.unwrap(),
        ["weekly", "earnings week"]
    );
    assert!(matches!(svc.set_tags("ivan", sell, &["mine".into()]).await, Err(Error::NotFound)));
    assert!(
        matches!(svc.set_tags("hana", sell, &["<b>".into()]).await, Err(Error::Invalid(e)) if e[0].field == "tags[0]")
    );
    svc.set_tags("hana", buy, &["weekly".into()]).await.unwrap();
    svc.set_tags("hana", buy, &["monthly".into()]).await.unwrap();
    let weekly = svc.list("hana", &q(&[("tag", "WEEKLY")])).await.unwrap();
    assert_eq!(ids(&weekly), vec![sell]);
    assert_eq!(weekly.runs[0].tags, ["weekly", "earnings week"]);
    assert_eq!(ids(&svc.list("hana", &q(&[("tag", "monthly"), ("symbol", "AAPL")])).await.unwrap()), vec![buy]);
    assert_eq!(svc.list("ivan", &q(&[("tag", "weekly")])).await.unwrap().total, 0);
    assert_eq!(svc.tags("hana", buy).await.unwrap(), ["monthly"]);

    // Keyset pages of two: a run started between pages changes none of the later ones.
    let two = |cursor: Option<&str>| {
        let mut pairs = vec![("perPage", "2")];
        if let Some(c) = cursor {
            pairs.push(("cursor", c));
        }
        q(&pairs)
    };
    let p1 = svc.list("hana", &two(None)).await.unwrap();
    assert_eq!(ids(&p1), vec![nvda2, nvda]);
    h.clock.advance(ChronoDuration::seconds(1));
    let newer = svc.start("hana", &request("ibm"), None).await.unwrap().run_id;
    let p2 = svc.list("hana", &two(p1.next.as_deref())).await.unwrap();
    assert_eq!(ids(&p2), vec![failed, sell]);
    let p3 = svc.list("hana", &two(p2.next.as_deref())).await.unwrap();
    assert_eq!((ids(&p3), p3.next), (vec![buy], None));
    assert_eq!(p3.total, 6, "the count is of every match");
    assert_eq!(ids(&svc.list("hana", &two(None)).await.unwrap()), vec![newer, nvda2]);
    // Offset pages stay for page numbers.
    assert_eq!(ids(&svc.list("hana", &q(&[("perPage", "2"), ("page", "3")])).await.unwrap()), vec![sell, buy]);
}

jobs::both_backends!(
    retry,
    start_settles_depth_and_budget,
    per_user_limit,
    idempotency,
    stats_of_finished_runs,
    daily_usage,
    history_search
);
