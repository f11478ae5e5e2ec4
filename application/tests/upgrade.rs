//! A database made before runs moved onto the queue is upgraded in place, on both backends:
//! runs live and archived, with their steps, checkpoints, spending and results, and a backtest
//! with its cells, read back the same through the application, and the record operators query
//! (`trading_agent_jobs`) keeps its columns.

use std::path::Path;
use std::sync::Arc;

use application::run::{Run, job_id};
use domain::{AnalystKind, Depth, JobStatus, RunId, StepStatus};
use jobs::job::{Filter, Order};
use jobs::testing::TestDb;
use jobs::{Database, Pools, State, SystemClock};

const BEFORE: i64 = 20261207000000;

/// Applies the application's migrations made before the queue, as an older release did.
async fn old_schema(db: &Database, backend: &str) {
    let dir = std::env::temp_dir().join(format!("ta-old-migrations-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(backend);
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if version < BEFORE {
            std::fs::copy(&path, dir.join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
    match &db.pools {
        Pools::Sqlite { writer, .. } => migrator.run(writer).await.unwrap(),
        Pools::Postgres(pool) => migrator.run(pool).await.unwrap(),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

const STEPS: &str = r#"[{"name":"Data Collection","status":"completed","progress":100,"startedAt":"2026-11-30T10:00:00Z","completedAt":"2026-11-30T10:00:01Z","durationMs":1000},{"name":"Invest Analyst","status":"completed","progress":100,"durationMs":2000},{"name":"Final Assessment","status":"completed","progress":100,"durationMs":500}]"#;
const RUNNING_STEPS: &str = r#"[{"name":"Data Collection","status":"completed","progress":100},{"name":"Invest Analyst","status":"in-progress","progress":40},{"name":"Final Assessment","status":"pending","progress":0}]"#;
const RESULT: &str = r#"{"symbol":"AAPL","asOf":"2020-03-20","modelId":"offline","rating":"Buy","confidence":0.7,"summary":"Old.","keyRisks":[],"reports":[],"figures":[],"chart":[],"llmCalls":2,"tokens":{"prompt":30,"completion":20},"ruleBased":true}"#;

/// The rows an older release wrote: a completed deep run (a retry, with a budget), a running
/// one, an archived one, and a backtest with a finished and a pending cell.
fn old_rows(backend: &str, ids: &[RunId; 6]) -> Vec<String> {
    let [done, running, archived, backtest, cell_done, cell_pending] = ids.map(|i| i.to_string());
    let (t, f) = if backend == "sqlite" { ("1", "0") } else { ("true", "false") };
    let time = |ms: i64| if backend == "sqlite" { ms.to_string() } else { format!("to_timestamp({ms} / 1000.0)") };
    let (created, started, ended) = (time(1_764_496_800_000), time(1_764_496_801_000), time(1_764_496_804_000));
    let columns = "run_id, user_id, symbol, model_id, analysts, as_of, status, current_step, progress_percent, \
                   steps, checkpoints, result, error, priority, attempt, max_attempts, lease_owner, \
                   cancel_requested, version, retry_of, timeout_ms, llm_calls, prompt_tokens, completion_tokens, \
                   started_at, completed_at, created_at, updated_at, duration_ms, options, cost_usd, backtest_id";
    let row = |table: &str, id: &str, status: &str, steps: &str, result: &str, extra: &str| {
        format!(
            "insert into {table} ({columns}{extra_columns}) values ('{id}', 'alice', 'AAPL', 'offline', \
             '[\"invest\"]', '2020-03-20', '{status}', null, 100, '{steps}', '{{\"Data Collection\": {{\"bars\": 250}}}}', \
             {result}, null, 0, 1, 3, 'host:1:ab', {f}, 7, '{retry}', 600000, 2, 30, 20, {started}, {completed}, \
             {created}, {ended}, 3000, '{{\"depth\":\"deep\",\"rounds\":2,\"maxTokens\":9000}}', 0.25, null{extra})",
            extra_columns = if extra.is_empty() { "" } else { ", archived_at, id" },
            retry = running,
            completed = if status == "running" { "null".to_string() } else { ended.clone() },
        )
    };
    let result = format!("'{RESULT}'");
    vec![
        row("trading_agent_jobs", &done, "completed", STEPS, &result, ""),
        row("trading_agent_jobs", &running, "running", RUNNING_STEPS, "null", ""),
        row("trading_agent_jobs_archive", &archived, "completed", STEPS, &result, &format!(", {ended}, 100")),
        format!(
            "insert into trading_agent_backtests (backtest_id, user_id, spec, cells, max_running, created_at) \
             values ('{backtest}', 'alice', '{{\"symbols\":[\"AAPL\"],\"from\":\"2020-01-02\",\"to\":\"2020-03-02\",\
             \"everyDays\":20,\"horizons\":[5],\"modelId\":\"offline\",\"analysts\":[\"invest\"],\"bearish\":\"flat\"}}', \
             2, 2, {created})"
        ),
        format!(
            "insert into trading_agent_jobs (run_id, user_id, symbol, model_id, analysts, as_of, status, steps, \
             result, priority, timeout_ms, completed_at, created_at, updated_at, backtest_id, cancel_requested) \
             values ('{cell_done}', 'alice', 'AAPL', 'offline', '[\"invest\"]', '2020-01-02', 'completed', '{STEPS}', \
             {result}, -10, 600000, {ended}, {created}, {ended}, '{backtest}', {f})"
        ),
        format!(
            "insert into trading_agent_jobs (run_id, user_id, symbol, model_id, analysts, as_of, status, steps, \
             priority, timeout_ms, created_at, updated_at, backtest_id, cancel_requested) \
             values ('{cell_pending}', 'alice', 'AAPL', 'offline', '[\"invest\"]', '2020-02-03', 'pending', \
             '{RUNNING_STEPS}', -10, 600000, {created}, {created}, '{backtest}', {t})"
        ),
    ]
}

async fn execute(db: &Database, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match &db.pools {
        Pools::Sqlite { writer, .. } => sqlx::query(sql).execute(writer).await.map(drop),
        Pools::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
    }
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn upgrade(test_db: TestDb, backend: &str) {
    let db = Database::connect(&test_db.url, Arc::new(SystemClock)).await.unwrap();
    old_schema(&db, backend).await;
    let ids: [RunId; 6] = std::array::from_fn(|_| RunId::from_uuid(uuid::Uuid::new_v4()));
    for sql in old_rows(backend, &ids) {
        execute(&db, &sql).await;
    }
    let [done, running, archived, backtest, cell_done, cell_pending] = ids;

    application::store::migrate(&db).await.expect("the upgrade applies");
    let queue = db.queue();
    let run = |id: RunId| async move { Run::from_job(queue.get(job_id(id)).await.unwrap().expect("kept")).unwrap() };

    let d = run(done).await;
    assert_eq!((d.owner.as_str(), d.start.symbol.as_str(), d.start.model_id.as_str()), ("alice", "AAPL", "offline"));
    assert_eq!(d.start.analysts, vec![AnalystKind::Invest]);
    assert_eq!(d.start.as_of.map(|a| a.to_string()).as_deref(), Some("2020-03-20"));
    assert_eq!(
        (d.start.options.depth, d.start.options.rounds, d.start.options.max_tokens),
        (Depth::Deep, Some(2), Some(9000))
    );
    assert_eq!(d.retry_of, Some(running));
    assert_eq!((d.status, d.version, d.attempt), (JobStatus::Completed, 7, 1));
    assert_eq!(d.progress.steps.len(), 3);
    assert_eq!(d.progress.steps[1].duration_ms, Some(2000));
    assert_eq!((d.progress.usage.calls, d.progress.usage.tokens.total()), (2, 50));
    assert!((d.progress.usage.cost_usd - 0.25).abs() < 1e-9);
    assert_eq!(d.checkpoints["Data Collection"]["bars"], 250);
    assert_eq!(d.result.as_ref().map(|r| r.summary.as_str()), Some("Old."));
    assert_eq!(d.duration_ms(), Some(3000));
    assert_eq!(d.created_at.timestamp_millis(), 1_764_496_800_000);

    let r = run(running).await;
    assert_eq!((r.status, r.lease_owner.as_deref()), (JobStatus::Running, Some("host:1:ab")));
    assert_eq!(r.progress.steps[1].status, StepStatus::InProgress);
    let a = run(archived).await;
    assert!(a.archived);
    assert_eq!(a.status, JobStatus::Completed);

    // The backtest is the parent of its cells, waiting for the pending one.
    let parent = queue.get(jobs::JobId(backtest.as_uuid())).await.unwrap().expect("the backtest");
    assert_eq!((parent.kind.as_str(), parent.state, parent.child_limit), ("backtest", State::Waiting, Some(2)));
    let cells = Filter { parent: Some(Some(parent.job_id)), order: Order::Inserted, limit: 10, ..Filter::default() };
    let cells: Vec<Run> =
        queue.list(&cells).await.unwrap().jobs.into_iter().map(|j| Run::from_job(j).unwrap()).collect();
    assert_eq!(cells.iter().map(|c| c.run_id).collect::<Vec<_>>(), vec![cell_done, cell_pending]);
    assert_eq!(cells[1].status, JobStatus::Pending);
    assert!(cells.iter().all(|c| c.backtest_id.map(|b| b.as_uuid()) == Some(backtest.as_uuid())));

    // The record operators query: the run's columns, as they were.
    let record = "select symbol, status, cast(llm_calls as bigint), cast(prompt_tokens as bigint), \
                  cast(progress_percent as bigint) from trading_agent_jobs where run_id = $1";
    let row: (String, String, i64, i64, i64) = match &db.pools {
        Pools::Sqlite { reader, .. } => sqlx::query_as(record).bind(done.to_string()).fetch_one(reader).await.unwrap(),
        Pools::Postgres(pool) => sqlx::query_as(record).bind(done.as_uuid()).fetch_one(pool).await.unwrap(),
    };
    assert_eq!(row, ("AAPL".into(), "completed".into(), 2, 30, 100));

    // New jobs are numbered after every kept one, archived ones included (the janitor moves
    // rows into the archive with their numbers).
    let fresh = queue.insert(&jobs::Insert::one(jobs::testing::new_job("bob"))).await.unwrap();
    let jobs::InsertOutcome::Created(fresh) = fresh else { panic!("{fresh:?}") };
    assert!(fresh.id > 100, "numbered {} after the archived run's 100", fresh.id);
}

#[tokio::test]
async fn an_older_sqlite_database_is_upgraded_in_place() {
    upgrade(TestDb::sqlite(), "sqlite").await;
}

#[tokio::test]
async fn an_older_postgres_database_is_upgraded_in_place() {
    upgrade(TestDb::postgres().await, "postgres").await;
}
