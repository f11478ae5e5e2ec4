//! What the application keeps of a run goes when the janitor prunes the run from the archive,
//! on both backends: its streamed text, log, tags, outcome, share links, webhook deliveries and
//! the schedule tick that names it. A run only archived keeps all of it, and so does a run
//! pruned beside it but still live.

mod common;

use std::sync::Arc;

use application::store::DeliveryRow;
use application::store::Store;
use chrono::Duration;
use domain::{LogEntry, LogEvent, RunId, ShareLink};
use jobs::janitor::{Janitor, JanitorConfig};
use jobs::job::{Finish, Insert, NewJob, Outcome};
use jobs::testing::TestDb;
use jobs::{Database, JobStore, ManualClock, Pools};

/// Each table the application keeps per run, and its column naming the run.
const KEPT: [(&str, &str); 7] = [
    ("trading_agent_text", "run_id"),
    ("trading_agent_log", "run_id"),
    ("trading_agent_tags", "run_id"),
    ("trading_agent_outcomes", "run_id"),
    ("trading_agent_shares", "run_id"),
    ("trading_agent_webhook_deliveries", "subject"),
    ("trading_agent_schedule_fires", "batch_id"),
];

/// A run stored, claimed and completed now.
async fn completed_run(queue: &Arc<dyn JobStore>) -> RunId {
    let job = NewJob::new("analysis", "alice", serde_json::json!({}));
    let id = job.job_id;
    queue.insert(&Insert::one(job)).await.unwrap();
    let claimed = queue.claim("worker", Duration::seconds(30), 1, &["analysis".to_string()]).await.unwrap();
    let finish = Finish {
        fence: claimed[0].fence().unwrap(),
        outcome: Outcome::Completed(serde_json::json!({})),
        progress: serde_json::json!({}),
        checkpoints: Default::default(),
    };
    assert_eq!(queue.finish(&[finish]).await.unwrap(), [true]);
    application::run::run_id(id)
}

/// One row in each table the application keeps of `run`.
async fn keep_everything(db: &Database, store: &Store, run: RunId, n: usize) {
    let now = chrono::Utc::now();
    store.insert_text(run, "Final Assessment", 0, "Buy.", now).await.unwrap();
    store.append_log(run, &LogEntry { at: now, step: None, event: LogEvent::Cancelled {} }).await;
    store.set_tags("alice", run, &["earnings".to_string()]).await.unwrap();
    store.upsert_outcome("alice", run, &[], now).await.unwrap();
    let share = ShareLink { id: format!("share{n}"), run_id: run, created_at: now };
    store.insert_share("alice", &share, &format!("hash{n}")).await.unwrap();
    let delivery = DeliveryRow {
        webhook_id: format!("msg_{n}"),
        subject: run.to_string(),
        user_id: "alice".into(),
        event: "completed".into(),
        url: "https://example.com/hook".into(),
        body: "{}".into(),
        schedule_id: None,
        attempts: 1,
        next_attempt_at: None,
        last_status: Some(204),
        last_error: None,
        delivered_at: Some(now.timestamp_millis()),
        failed_at: None,
        created_at: now.timestamp_millis(),
    };
    store.record_deliveries(&[delivery]).await.unwrap();
    let fire = "insert into trading_agent_schedule_fires (schedule_id, tick_at, fired_at, batch_id, started)
                values ('watchlist', $1, $1, $2, 1)";
    match &db.pools {
        Pools::Sqlite { writer, .. } => {
            sqlx::query(fire).bind(n as i64).bind(run.to_string()).execute(writer).await.unwrap();
        }
        Pools::Postgres(pool) => {
            sqlx::query(fire).bind(n as i64).bind(run.to_string()).execute(pool).await.unwrap();
        }
    }
}

/// The tables that still hold rows of `run`.
async fn kept_of(db: &Database, run: RunId) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (table, column) in KEPT {
        let sql = format!("select count(*) from {table} where {column} = $1");
        let n: i64 = match &db.pools {
            Pools::Sqlite { reader, .. } => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(run.to_string()).fetch_one(reader).await.unwrap()
            }
            Pools::Postgres(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(run.to_string()).fetch_one(pool).await.unwrap()
            }
        };
        if n > 0 {
            out.push(table);
        }
    }
    out
}

async fn a_pruned_run_takes_its_rows_along(test_db: TestDb) {
    let clock = ManualClock::starting_now();
    let db = common::open(&test_db, Arc::new(clock.clone())).await;
    let queue = db.queue().clone();
    let store = Store::new(db.pools.clone());
    let config = JanitorConfig { retention_days: 30, archive_retention_days: Some(7), ..JanitorConfig::default() };
    let janitor = Janitor::new(queue.clone(), Arc::new(clock.clone()), config).unwrap();
    let everything: Vec<&str> = KEPT.iter().map(|(t, _)| *t).collect();

    let old = completed_run(&queue).await;
    keep_everything(&db, &store, old, 1).await;
    clock.advance(Duration::days(31));
    let recent = completed_run(&queue).await;
    keep_everything(&db, &store, recent, 2).await;
    let report = janitor.run_once().await.unwrap();
    assert_eq!((report.archived, report.pruned), (1, 0));
    assert_eq!(kept_of(&db, old).await, everything, "an archived run can still be read: all of it is kept");

    clock.advance(Duration::days(8));
    let report = janitor.run_once().await.unwrap();
    assert_eq!((report.archived, report.pruned), (0, 1));
    assert!(queue.get(application::run::job_id(old)).await.unwrap().is_none(), "the old run is gone");
    assert_eq!(kept_of(&db, old).await, Vec::<&str>::new(), "nothing of a pruned run is left");
    assert_eq!(kept_of(&db, recent).await, everything, "a live run keeps all of it");
}

#[tokio::test]
async fn a_pruned_run_takes_its_rows_along_on_sqlite() {
    a_pruned_run_takes_its_rows_along(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_pruned_run_takes_its_rows_along_on_postgres() {
    a_pruned_run_takes_its_rows_along(TestDb::postgres().await).await;
}
