//! The store's reading of schedule ticks, on both backends: the ticks taken whose batches were
//! never started come back with their own schedules (a tick of each of two schedules, one of
//! them started), and a schedules page reads each schedule's latest ticks, newest first.

mod common;

use std::sync::Arc;

use application::store::{FireRow, ScheduleRow, Store};
use jobs::ManualClock;
use jobs::testing::TestDb;

fn schedule(id: &str, now: i64) -> ScheduleRow {
    ScheduleRow {
        schedule_id: id.into(),
        user_id: "alice".into(),
        name: format!("Watchlist {id}"),
        cron: "0 9 * * *".into(),
        timezone: "UTC".into(),
        request: "{}".into(),
        paused: false,
        next_fire_at: Some(now),
        created_at: now,
        updated_at: now,
        webhook_disabled_at: None,
    }
}

fn fire(id: &str, tick_at: i64) -> FireRow {
    FireRow {
        schedule_id: id.into(),
        tick_at,
        fired_at: tick_at,
        batch_id: format!("batch-{id}-{tick_at}"),
        missed: 0,
        started: false,
        error: None,
    }
}

async fn unstarted_ticks_come_back_with_their_schedules(db: TestDb) {
    let clock = ManualClock::starting_now();
    let database = common::open(&db, Arc::new(clock.clone())).await;
    let store = Store::new(database.pools.clone());
    let now = chrono::Utc::now().timestamp_millis();
    for id in ["a", "b", "c"] {
        store.insert_schedule(&schedule(id, now)).await.unwrap();
    }
    // Three ticks of `a` (the last two never started), one of `b` (never started), none of `c`.
    let mut due = now;
    for (n, tick) in [now + 1_000, now + 2_000, now + 3_000].into_iter().enumerate() {
        assert!(store.take_tick(due, tick, &fire("a", tick)).await.unwrap());
        due = tick;
        if n == 0 {
            store.fire_started("a", tick, None).await.unwrap();
        }
    }
    assert!(store.take_tick(now, now + 5_000, &fire("b", now + 5_000)).await.unwrap());

    let since = chrono::DateTime::from_timestamp_millis(now).unwrap();
    let unstarted: Vec<(String, String, i64)> = store
        .unstarted_fires(since)
        .await
        .unwrap()
        .into_iter()
        .map(|(s, f)| (s.name, f.schedule_id, f.tick_at))
        .collect();
    assert_eq!(
        unstarted,
        [
            ("Watchlist a".to_string(), "a".to_string(), now + 2_000),
            ("Watchlist a".to_string(), "a".to_string(), now + 3_000),
            ("Watchlist b".to_string(), "b".to_string(), now + 5_000),
        ]
    );

    let latest: Vec<(String, i64)> = store
        .fires_of(&["a".to_string(), "b".to_string(), "c".to_string()], 2)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.schedule_id, f.tick_at))
        .collect();
    assert_eq!(
        latest,
        [("a".to_string(), now + 3_000), ("a".to_string(), now + 2_000), ("b".to_string(), now + 5_000)]
    );
}

#[tokio::test]
async fn unstarted_ticks_come_back_with_their_schedules_on_sqlite() {
    unstarted_ticks_come_back_with_their_schedules(TestDb::sqlite()).await;
}

#[tokio::test]
async fn unstarted_ticks_come_back_with_their_schedules_on_postgres() {
    unstarted_ticks_come_back_with_their_schedules(TestDb::postgres().await).await;
}
