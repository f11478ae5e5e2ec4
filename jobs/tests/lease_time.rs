//! On PostgreSQL, time is the database's: hosts whose clocks disagree by an hour still agree
//! on which leases are alive and which deadlines have passed. Each "host" here is a store with
//! its own connection pool and a wall clock that is off, as a process on a badly synchronised
//! machine would be.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use jobs::rescuer::{RescueReport, Rescuer, RescuerConfig};
use jobs::testing::{SCRIPTED, ScriptedHandler, TestDb, new_job};
use jobs::{Clock, Events, Handlers, Insert};

/// The wall clock of a host that is off by the duration it holds, leaving time to the database
/// as the real [`jobs::SystemClock`] does.
struct Skewed(Duration);

impl Clock for Skewed {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }

    fn lease_time(&self) -> Option<DateTime<Utc>> {
        None
    }
}

async fn database_now(db: &TestDb) -> DateTime<Utc> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query_scalar("select now()").fetch_one(&mut conn).await.expect("now()")
}

fn rescuer(store: Arc<dyn jobs::JobStore>, skew: Duration) -> Rescuer {
    let handlers = Handlers::new().register(SCRIPTED, Arc::new(ScriptedHandler::new()));
    Rescuer::new(store, Arc::new(Skewed(skew)), Events::new(), handlers, RescuerConfig::default())
}

/// A host an hour behind claims and heartbeats; a host ten minutes ahead looks for expired
/// leases and overdue jobs and finds none — with process clocks it would see the lease as
/// expired for 70 minutes and requeue a job whose worker is alive, or end it as late. A lease
/// that really ran out is still found.
#[tokio::test]
async fn leases_and_deadlines_follow_the_database_clock_not_the_hosts() {
    let db = TestDb::postgres().await;
    let behind = db.store(Arc::new(Skewed(-Duration::hours(1)))).await;
    let ahead = db.store(Arc::new(Skewed(Duration::minutes(10)))).await;
    let kinds = [SCRIPTED.to_string()];

    behind.insert(&Insert::one(new_job("u1"))).await.unwrap();
    let job = behind.claim("behind:1", Duration::seconds(30), 1, &kinds).await.unwrap().pop().expect("claimed");
    let expires = job.lease_expires_at.expect("a lease");
    let db_now = database_now(&db).await;
    assert!(
        expires > db_now + Duration::seconds(25) && expires <= db_now + Duration::seconds(30),
        "the lease ends 30 s after the database's now ({db_now}), not the host's: {expires}"
    );
    assert!((job.started_at.unwrap() - db_now).num_seconds().abs() < 5, "the start is the database's time too");

    assert!(ahead.stuck(Duration::seconds(5), 10).await.unwrap().is_empty(), "a host ahead sees a live lease");
    assert_eq!(rescuer(ahead.clone(), Duration::minutes(10)).run_once().await.unwrap(), RescueReport::default());

    let fence = job.fence().unwrap();
    behind.control(std::slice::from_ref(&fence), Some(Duration::seconds(60))).await.unwrap();
    let after = behind.get(job.job_id).await.unwrap().unwrap();
    assert!(after.lease_expires_at.unwrap() > db_now + Duration::seconds(55), "the heartbeat extends by the database");
    assert!(after.heartbeat_at.unwrap() >= db_now, "and stamps the database's time");

    // A lease that has run out by the database's clock is found, even by the host behind.
    behind.control(&[fence], Some(Duration::zero())).await.unwrap();
    let stuck = behind.stuck(Duration::seconds(5), 10).await.unwrap();
    assert_eq!(stuck.iter().map(|(j, _)| j.job_id).collect::<Vec<_>>(), vec![job.job_id]);
    let report = rescuer(behind.clone(), -Duration::hours(1)).run_once().await.unwrap();
    assert_eq!(report.requeued, 1);
}
