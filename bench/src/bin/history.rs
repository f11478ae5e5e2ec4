//! The history at scale: one user's 100,000 runs among 1,000,000, on each backend,
//! and what a page of it costs through the API (`GET /api/trading/runs`) and as the `/runs`
//! page, with each filter and against the plain newest-first list.
//!
//! For each backend: a fresh database; the release server runs one real analysis per symbol
//! and depth (the offline model, no simulated latency) as the measured user, through an API
//! token; the history is then written in bulk as copies of those runs (see `history/seed.rs`);
//! and a web process without workers (`WORKERS=0`) serves it while one or more clients send
//! each request, one after the other, timing the whole answer.
//!
//! cargo build --release -p server -p bench &&
//! target/release/history [--backend sqlite|postgres|both] [--user-runs 100000] [--total-runs 1000000]
//!   [--archived 100000] [--requests 200] [--warmup 5] [--case-secs 40] [--concurrency 1] [--keep]
//!   [--server PATH] [--baseline PATH] [--cases 0,1,…]

#[path = "history/seed.rs"]
mod seed;
#[allow(dead_code)]
#[path = "../served.rs"]
mod served;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::history::Cursor;
use jobs::testing::TestDb;
use jobs::{Database, Pools, SystemClock};
use reqwest::header::AUTHORIZATION;
use seed::Plan;
use serde_json::{Value, json};
use served::{Backend, Served};

/// A word in the text of every real run (the offline model's reports name the analysts' view
/// of the price).
const COMMON_WORD: &str = "price";

struct Settings {
    requests: usize,
    warmup: usize,
    case_budget: Duration,
    concurrency: usize,
    /// Leave the database behind (to look at its plans).
    keep: bool,
    /// Another server binary to measure first on the same database (the API alone).
    baseline: Option<std::path::PathBuf>,
}

/// A client that speaks as the measured user.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    bearer: String,
}

impl Client {
    async fn get(&self, path: &str) -> reqwest::Response {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(AUTHORIZATION, &self.bearer)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp
    }

    async fn json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("a JSON body")
    }
}

/// An API token of the measured user, stored as the settings page stores one.
async fn token(database: &Database) -> String {
    let secret = format!("{}{}", application::access::TOKEN_PREFIX, uuid::Uuid::new_v4().simple());
    let token = domain::ApiToken {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: "bench".into(),
        created_at: Utc::now(),
    };
    application::store::Store::new(database.pools.clone())
        .insert_token(seed::USER, &token, &application::access::hash(&secret))
        .await
        .expect("store the token");
    format!("Bearer {secret}")
}

/// One number from the database.
async fn scalar(database: &Database, sql: &str, args: &[&str]) -> i64 {
    macro_rules! on {
        ($pool:expr) => {
            args.iter()
                .fold(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())), |q, a| q.bind(a.to_string()))
                .fetch_one($pool)
                .await
        };
    }
    match &database.pools {
        Pools::Sqlite { reader, .. } => on!(reader),
        Pools::Postgres(pool) => on!(pool),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// One real run of the measured user per symbol and depth, run to completion by a server with
/// workers; their row ids, by symbol then depth.
async fn real_runs(database: &Database, url: &str) -> Vec<i64> {
    let env = [
        ("SIMULATED_LATENCY_MS", "0".to_string()),
        ("WORKERS", "2".to_string()),
        ("MAX_ACTIVE_JOBS_PER_USER", "100".to_string()),
        ("RUNS_PER_MINUTE_PER_ADDRESS", "0".to_string()),
        ("RUNS_PER_MINUTE_PER_USER", "0".to_string()),
    ];
    let server = Served::start_on(&served::server_binary(), url, &env).await;
    let client = Client { http: reqwest::Client::new(), base: server.base.clone(), bearer: token(database).await };
    let mut runs = Vec::new();
    for symbol in seed::SYMBOLS {
        for depth in seed::DEPTHS {
            let body =
                json!({"symbol": symbol, "depth": depth, "analysts": ["invest", "risk", "sentiment", "technical"]});
            let resp = client
                .http
                .post(format!("{}/api/trading/run", client.base))
                .header(AUTHORIZATION, &client.bearer)
                .json(&body)
                .send()
                .await
                .expect("start a run");
            assert_eq!(resp.status(), reqwest::StatusCode::ACCEPTED, "start {body}");
            let started: Value = resp.json().await.expect("the start body");
            runs.push(started["runId"].as_str().expect("runId").to_string());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    for run in &runs {
        loop {
            let progress = client.json(&format!("/api/trading/progress/{run}")).await;
            if served::is_terminal(&progress) {
                assert_eq!(progress["status"], "completed", "{progress}");
                break;
            }
            assert!(Instant::now() < deadline, "the real runs did not finish within 5 minutes");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    server.stop().await;
    let mut ids = Vec::new();
    for run in &runs {
        ids.push(scalar(database, "select id from queue_jobs where cast(job_id as text) = $1", &[run]).await);
        let text =
            "select count(*) from queue_jobs where cast(job_id as text) = $1 and lower(cast(output as text)) like ";
        let with = |w: &str| format!("{text}'%{w}%'");
        assert_eq!(scalar(database, &with(seed::RARE_WORD), &[run]).await, 0, "'{}' is in a real run", seed::RARE_WORD);
        assert_eq!(scalar(database, &with(COMMON_WORD), &[run]).await, 1, "'{COMMON_WORD}' is not in a real run");
    }
    ids
}

/// p50, p99 and max in ms of one request, and how many were sent.
#[derive(Debug, Clone, Copy)]
struct Timing {
    p50: f64,
    p99: f64,
    max: f64,
    n: usize,
}

/// Sends `path` `settings.requests` times (fewer if the case's time runs out, at least 3)
/// from `settings.concurrency` clients, after a warm-up (shorter for slow cases), each request timed to its last byte.
async fn time(client: &Client, path: &str, settings: &Settings) -> Timing {
    let warming = Instant::now();
    for _ in 0..settings.warmup {
        client.get(path).await.bytes().await.expect("a body");
        if warming.elapsed() > settings.case_budget / 4 {
            break;
        }
    }
    let sent = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + settings.case_budget;
    let mut tasks = Vec::new();
    for _ in 0..settings.concurrency {
        let (client, path, sent, requests) = (client.clone(), path.to_string(), sent.clone(), settings.requests);
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            loop {
                let i = sent.fetch_add(1, Ordering::Relaxed);
                if i >= requests || (i >= 3 && Instant::now() > deadline) {
                    return times;
                }
                let start = Instant::now();
                client.get(&path).await.bytes().await.expect("a body");
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await.expect("a client"));
    }
    let n = times.len();
    let (p50, p99, max) = bench::quantiles(times);
    Timing { p50, p99, max, n }
}

fn day(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).expect("a time").date_naive().to_string()
}

/// What is measured: a name and a query string.
fn cases(plan: &Plan) -> Vec<(String, String)> {
    let from = plan.created_ms(plan.total / 2);
    let (from, to) = (day(from), day(from + 29 * 86_400_000));
    let half = plan.user_run(plan.user_runs / 2);
    let cursor = Cursor { created_ms: plan.created_ms(half), id: plan.row_id(half) }.encode();
    let rare = seed::RARE_WORD;
    [
        ("none (newest first)", String::new()),
        ("`symbol`", "symbol=NVDA".into()),
        ("`rating`", "rating=Sell".into()),
        ("`status` (completed, 98 %)", "status=completed".into()),
        ("`status` (failed, 2 %)", "status=failed".into()),
        ("`modelId` (25 %)", format!("modelId={}", seed::OTHER_MODEL)),
        ("`depth` (deep, 10 %)", "depth=deep".into()),
        ("`from`/`to` (30 days)", format!("from={from}&to={to}")),
        ("`asOfFrom`/`asOfTo` (a year)", "asOfFrom=2019-01-01&asOfTo=2019-12-31".into()),
        ("`tag` (5 %)", format!("tag={}", seed::TAG)),
        ("`q`, a word in every run", format!("q={COMMON_WORD}")),
        ("`q`, a word in 1 % of runs", format!("q={rare}")),
        ("`symbol`+`rating`+`depth`+`asOfFrom`", "symbol=NVDA&rating=Buy&depth=standard&asOfFrom=2018-01-01".into()),
        ("`symbol`+`q` (rare)", format!("symbol=NVDA&q={rare}")),
        ("`cursor` halfway", format!("cursor={cursor}")),
        ("`page` halfway (offset)", format!("page={}", plan.user_runs / 2 / 20)),
    ]
    .into_iter()
    .map(|(name, query)| (name.to_string(), query))
    .collect()
}

/// Checks that the seeded history reads back through the API as real runs do.
async fn check(client: &Client, plan: &Plan) {
    let page = client.json("/api/trading/runs?perPage=1").await;
    assert_eq!(page["total"], plan.user_runs, "{page}");
    let first = &page["runs"][0];
    let run = first["runId"].as_str().expect("a run");
    let progress = client.json(&format!("/api/trading/progress/{run}")).await;
    assert_eq!(progress["status"], first["status"], "{progress}");
    if first["status"] == "completed" {
        assert_eq!(progress["result"]["rating"], first["rating"], "{progress}");
        assert_eq!(progress["result"]["symbol"], first["symbol"], "{progress}");
    }
    let html = client.get("/runs").await.text().await.expect("the page");
    assert!(html.contains(&format!("data-run=\"{run}\"")), "the /runs page does not list {run}");
}

async fn database_size(database: &Database, url: &str) -> f64 {
    let bytes = match &database.pools {
        Pools::Sqlite { .. } => {
            let path = url.trim_start_matches("sqlite://");
            ["", "-wal"].iter().map(|s| std::fs::metadata(format!("{path}{s}")).map(|m| m.len()).unwrap_or(0)).sum()
        }
        Pools::Postgres(_) => scalar(database, "select pg_database_size(current_database())", &[]).await as u64,
    };
    bytes as f64 / 1e9
}

/// A web process without workers on the seeded database, checked, and a client of the user.
async fn serve(binary: &std::path::Path, database: &Database, url: &str, plan: &Plan) -> (Served, Client) {
    let server = Served::start_on(binary, url, &[("WORKERS", "0".to_string())]).await;
    let client = Client { http: reqwest::Client::new(), base: server.base.clone(), bearer: token(database).await };
    check(&client, plan).await;
    (server, client)
}

/// Times every case through the API and, with `pages`, as the `/runs` page; one table row each.
async fn table(client: &Client, plan: &Plan, settings: &Settings, pages: bool) {
    if pages {
        println!("| filter | matches | API p50 | API p99 | API max | page p50 | page p99 | page max | requests |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        println!("| filter | matches | API p50 | API p99 | API max | requests |");
        println!("|---|---:|---:|---:|---:|---:|");
    }
    let mut plain = None;
    let chosen: Vec<usize> = bench::list("--cases", &[]);
    for (i, (name, query)) in cases(plan).into_iter().enumerate() {
        if !chosen.is_empty() && !chosen.contains(&i) {
            continue;
        }
        let sep = if query.is_empty() { "" } else { "?" };
        let total = client.json(&format!("/api/trading/runs{sep}{query}")).await["total"].as_u64().expect("a total");
        let api = time(client, &format!("/api/trading/runs{sep}{query}"), settings).await;
        let base = *plain.get_or_insert(api.p50);
        let row =
            format!("| {name} | {total} | {:.1} ({:.1}×) | {:.1} | {:.1} |", api.p50, api.p50 / base, api.p99, api.max);
        if pages {
            let page = time(client, &format!("/runs{sep}{query}"), settings).await;
            println!("{row} {:.1} | {:.1} | {:.1} | {}/{} |", page.p50, page.p99, page.max, api.n, page.n);
        } else {
            println!("{row} {} |", api.n);
        }
    }
}

async fn measure(backend: Backend, plan: &Plan, settings: &Settings) {
    let db = match backend {
        Backend::Sqlite => TestDb::sqlite(),
        Backend::Postgres => TestDb::postgres().await,
    };
    let database = Database::connect(&db.url, Arc::new(SystemClock)).await.expect("open the database");
    application::store::migrate(&database).await.expect("migrate");
    eprintln!("{}: the real runs …", backend.label());
    let templates = real_runs(&database, &db.url).await;
    eprintln!("{}: seeding {} runs …", backend.label(), plan.total);
    let seconds = seed::seed(&db.url, backend, plan, &templates).await;
    let size = database_size(&database, &db.url).await;
    println!();
    println!(
        "### {}: {} runs ({} of `{}`, {} archived), seeded in {seconds:.0} s, {size:.1} GB",
        backend.label(),
        plan.total,
        plan.user_runs,
        seed::USER,
        plan.archived
    );
    println!();
    println!(
        "{} client(s), {} requests a case (fewer past {} s), after {} warm-up; milliseconds.",
        settings.concurrency,
        settings.requests,
        settings.case_budget.as_secs(),
        settings.warmup
    );
    if let Some(baseline) = &settings.baseline {
        println!();
        println!("Before (`{}`), the API alone:", baseline.display());
        println!();
        let server = serve(baseline, &database, &db.url, plan).await;
        table(&server.1, plan, settings, false).await;
        server.0.stop().await;
        println!();
        println!("After (`{}`):", served::server_binary().display());
    }
    println!();
    let server = serve(&served::server_binary(), &database, &db.url, plan).await;
    table(&server.1, plan, settings, true).await;
    server.0.stop().await;
    drop(database);
    if settings.keep {
        eprintln!("{}: kept {}", backend.label(), db.url);
        std::mem::forget(db);
    }
}

#[tokio::main]
async fn main() {
    let backends = match bench::arg("--backend", "both".to_string()).as_str() {
        "both" => vec![Backend::Sqlite, Backend::Postgres],
        one => vec![Backend::parse(one)],
    };
    let total = bench::arg("--total-runs", 1_000_000u64);
    let user_runs = bench::arg("--user-runs", 100_000u64);
    let archived = bench::arg("--archived", total / 10);
    assert!(user_runs <= total && archived <= total, "--user-runs and --archived are parts of --total-runs");
    // A run every 30 s: 1,000,000 runs make almost a year.
    let plan = Plan::new(total, user_runs, archived, 30_000);
    let settings = Settings {
        requests: bench::arg("--requests", 200usize),
        warmup: bench::arg("--warmup", 5usize),
        case_budget: Duration::from_secs(bench::arg("--case-secs", 40u64)),
        concurrency: bench::arg("--concurrency", 1usize),
        keep: std::env::args().any(|a| a == "--keep"),
        baseline: Some(bench::arg("--baseline", String::new())).filter(|b| !b.is_empty()).map(Into::into),
    };
    println!("history benchmark; {}", bench::machine());
    for backend in backends {
        measure(backend, &plan, &settings).await;
    }
}
