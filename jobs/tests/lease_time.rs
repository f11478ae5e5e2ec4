//! On PostgreSQL, leases are measured by the database's clock: hosts whose clocks disagree by
//! an hour still agree on which leases are alive. Each "host" here is a store with its own
//! connection pool and a wall clock that is off, as a process on a badly synchronised machine
//! would be; the run's other timestamps still come from that clock.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use jobs::rescuer::{RescueReport, Rescuer, RescuerConfig};
use jobs::testing::{TestDb, new_job};
use jobs::{Clock, Events};

/// The wall clock of a host that is off by the duration it holds, leaving leases to the database as the real
/// [`jobs::SystemClock`] does.
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

/// A host an hour behind claims and heartbeats; a host ten minutes ahead looks for expired
/// leases and finds none — with process clocks it would see the lease as expired for 70
/// minutes and requeue a job whose worker is alive. A lease that really ran out is still
/// found.
#[tokio::test]
async fn leases_follow_the_database_clock_not_the_hosts() {
    let db = TestDb::postgres().await;
    let behind = db.store(Arc::new(Skewed(-Duration::hours(1)))).await;
    let ahead = db.store(Arc::new(Skewed(Duration::minutes(10)))).await;

    behind.insert(&new_job("u1"), 3).await.unwrap();
    let job = behind.claim("behind:1", Duration::seconds(30)).await.unwrap().expect("claimed");
    let expires = job.lease_expires_at.expect("a lease");
    let db_now = database_now(&db).await;
    assert!(
        expires > db_now + Duration::seconds(25) && expires <= db_now + Duration::seconds(30),
        "the lease ends 30 s after the database's now ({db_now}), not the host's: {expires}"
    );
    assert!(job.started_at.unwrap() < db_now - Duration::minutes(59), "other times are still the host's");

    assert!(ahead.expired_leases(10).await.unwrap().is_empty(), "a host ahead sees a live lease");
    let rescuer = Rescuer::new(ahead.clone(), Events::new(), RescuerConfig::default());
    assert_eq!(rescuer.run_once().await.unwrap(), RescueReport::default());

    let fence = job.fence().unwrap();
    behind.heartbeat(&fence, Duration::seconds(60)).await.unwrap();
    let after = behind.get(job.run_id).await.unwrap().unwrap();
    assert!(after.lease_expires_at.unwrap() > db_now + Duration::seconds(55), "the heartbeat extends by the database");
    assert!(after.heartbeat_at.unwrap() >= db_now, "and stamps the database's time");

    // A lease that has run out by the database's clock is found, even by the host behind.
    behind.heartbeat(&fence, Duration::zero()).await.unwrap();
    let expired = behind.expired_leases(10).await.unwrap();
    assert_eq!(expired.iter().map(|j| j.run_id).collect::<Vec<_>>(), vec![job.run_id]);
    let report = Rescuer::new(behind.clone(), Events::new(), RescuerConfig::default()).run_once().await.unwrap();
    assert_eq!(report.requeued, 1);
}
