//! The change feed across processes: two stores on one database stand for a web process (with
//! a listener and a progress cache) and a worker process writing progress.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use application::run::{KIND, RunProgress, job_id};
use application::{RunService, ServiceConfig};
use domain::StartRequest;
use jobs::job::{Fence, Write};
use jobs::testing::TestDb;
use jobs::{Events, JobStore, SystemClock};
use sqlx::Connection;

struct Processes {
    web: RunService,
    worker: Arc<dyn JobStore>,
    fence: Fence,
    run_id: domain::RunId,
}

async fn processes(db: &TestDb) -> Processes {
    let web_db = common::open(db, Arc::new(SystemClock)).await;
    let _listener = web_db.queue().listen(Events::new()).await.expect("listen");
    let web = RunService::new(&web_db, Events::new(), common::checks(), ServiceConfig::default()).unwrap();
    let worker = common::open(db, Arc::new(SystemClock)).await.queue().clone();
    let request = StartRequest { symbol: Some("AAPL".into()), ..StartRequest::default() };
    let run_id = web.start("alice", &request, None).await.unwrap().run_id;
    let claimed = worker
        .claim("worker-1", chrono::Duration::seconds(60), 1, &[KIND.to_string()])
        .await
        .unwrap()
        .pop()
        .expect("claimed");
    let fence = claimed.fence().unwrap();
    // Keep the listener task alive for the test's duration.
    std::mem::forget(_listener);
    Processes { web, worker, fence, run_id }
}

async fn write(p: &Processes, percent: u8) {
    let job = p.worker.get(job_id(p.run_id)).await.unwrap().unwrap();
    let mut progress: RunProgress = serde_json::from_value(job.progress).unwrap();
    progress.percent = percent;
    progress.current_step = Some(format!("{percent}"));
    let write = Write {
        fence: p.fence.clone(),
        progress: serde_json::to_value(progress).unwrap(),
        checkpoints: Default::default(),
    };
    assert!(p.worker.write(&[write]).await.unwrap()[0].is_some());
}

async fn db_version(p: &Processes) -> i64 {
    p.worker.get(job_id(p.run_id)).await.unwrap().unwrap().version
}

/// The web process's cached version catches up with the database within `limit`.
async fn catches_up(p: &Processes, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let want = db_version(p).await;
        if p.web.progress_body("alice", p.run_id).await.unwrap().version == want {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Another process's writes reach the cache, and a read served from memory is as fresh as
/// the database once the notification has arrived.
async fn other_processes_writes_invalidate(db: TestDb) {
    let p = processes(&db).await;
    let first = p.web.progress_body("alice", p.run_id).await.unwrap();
    let again = p.web.progress_body("alice", p.run_id).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "an unchanged run is served from memory");
    for percent in [10, 20, 30] {
        write(&p, percent).await;
        assert!(catches_up(&p, Duration::from_secs(5)).await, "the web process heard of version {percent}");
    }
    assert!(p.web.progress_body("bob", p.run_id).await.is_err(), "another identity gets no body from the cache");
}

#[tokio::test]
async fn other_processes_writes_invalidate_on_sqlite() {
    other_processes_writes_invalidate(TestDb::sqlite()).await;
}

#[tokio::test]
async fn other_processes_writes_invalidate_on_postgres() {
    other_processes_writes_invalidate(TestDb::postgres().await).await;
}

async fn listener_pids(admin: &mut sqlx::PgConnection, db: &str) -> Vec<i32> {
    sqlx::query_scalar("select pid from pg_stat_activity where datname = $1 and query ilike 'listen%'")
        .bind(db)
        .fetch_all(&mut *admin)
        .await
        .unwrap()
}

/// The listener's connection is killed and a write lands while it is away: its notification
/// is lost, yet once the listener is back the cache does not answer from before the write.
#[tokio::test]
async fn a_lost_notification_connection_resynchronises_without_stale_answers() {
    let db = TestDb::postgres().await;
    let p = processes(&db).await;
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let mut admin = sqlx::PgConnection::connect(&jobs::testing::postgres_admin_url()).await.unwrap();
    write(&p, 10).await;
    assert!(catches_up(&p, Duration::from_secs(5)).await);
    let cached = p.web.progress_body("alice", p.run_id).await.unwrap().version;

    let before = listener_pids(&mut admin, &name).await;
    assert_eq!(before.len(), 1, "one listening connection");
    sqlx::query("select pg_terminate_backend($1)").bind(before[0]).execute(&mut admin).await.unwrap();
    // At once, while the listener is away: this write's notification reaches nobody.
    write(&p, 20).await;
    let latest = db_version(&p).await;
    assert!(latest > cached);

    // Once the listener is back, the cache answers nothing from before those writes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = listener_pids(&mut admin, &name).await;
        if now.iter().any(|pid| !before.contains(pid)) && p.web.progress_cache().feed().is_live() {
            break;
        }
        assert!(Instant::now() < deadline, "the listener did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Back and live: still the latest, and later writes arrive again.
    assert_eq!(p.web.progress_body("alice", p.run_id).await.unwrap().version, latest);
    write(&p, 40).await;
    assert!(catches_up(&p, Duration::from_secs(5)).await, "notifications flow again after the reconnect");
}
