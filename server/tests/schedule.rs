//! Schedules over HTTP against the real binary: made, read, paused, resumed, edited and deleted
//! over REST and with the page's forms, bad ones named field by field; and on PostgreSQL, a
//! schedule every 5 s with two server processes starting one batch per tick, then — both
//! processes stopped for 20 s and started again — exactly one catch-up batch.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Timelike, Utc};
use common::{Server, visitor};
use jobs::testing::TestDb;
use serde_json::{Value, json};

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

fn fields(p: &Value) -> BTreeSet<String> {
    p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_string()).collect()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap_or_else(|| panic!("a time: {v}")).parse().unwrap()
}

#[tokio::test]
async fn schedules_are_made_paused_edited_and_deleted() {
    let server = Server::start(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let c = visitor(&server).await;
    let api = |p: &str| server.url(p);

    let (status, p) = send(c.post(api("/api/schedules")).json(&json!({}))).await;
    assert_eq!((status, fields(&p)), (400, ["cron", "name", "symbols"].map(String::from).into()));
    let bad = json!({"name": "", "symbols": ["AAPL", "TSLA"], "cron": "*/5 * * * * *", "timezone": "Mars/Olympus"});
    let (status, p) = send(c.post(api("/api/schedules")).json(&bad)).await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(fields(&p), ["name", "symbols", "timezone"].map(String::from).into(), "{p}");
    let fast = json!({"name": "Fast", "symbols": ["AAPL"], "cron": "*/5 * * * * *"});
    let (status, p) = send(c.post(api("/api/schedules")).json(&fast)).await;
    assert_eq!(status, 400, "{p}");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("5 s apart: the shortest interval here is 300 s"));
    let seven = json!({"name": "Seven", "symbols": ["AAPL"], "cron": "0 0 9 * * MON 2027"});
    assert_eq!(send(c.post(api("/api/schedules")).json(&seven)).await.0, 400);

    let body = json!({"name": "Morning tech", "symbols": ["aapl", "MSFT", "AAPL"], "cron": "0 9 * * MON-FRI",
                      "timezone": "America/New_York", "analysts": ["invest", "technical"]});
    let resp = c.post(api("/api/schedules")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let id = created["scheduleId"].as_str().unwrap().to_string();
    assert_eq!(created["request"]["symbols"], json!(["AAPL", "MSFT"]));
    assert_eq!(created["timezone"], "America/New_York");
    // 09:00 in New York is 13:00 or 14:00 UTC, on a weekday, within a few days.
    let next = time(&created["nextFireAt"]);
    assert!(matches!(next.hour(), 13 | 14) && next.minute() == 0, "{next}");
    assert!(next.weekday().number_from_monday() <= 5, "{next}");
    assert!(next > Utc::now() && next < Utc::now() + chrono::Duration::days(4), "{next}");

    let (status, paused) = send(c.patch(api(&format!("/api/schedules/{id}"))).json(&json!({"paused": true}))).await;
    assert_eq!(status, 200);
    assert_eq!(paused["paused"], true);
    assert!(paused.get("nextFireAt").is_none(), "a paused schedule has no next tick: {paused}");
    let (_, resumed) = send(c.patch(api(&format!("/api/schedules/{id}"))).json(&json!({"paused": false}))).await;
    assert_eq!(resumed["nextFireAt"], created["nextFireAt"]);
    let (status, p) = send(c.patch(api(&format!("/api/schedules/{id}"))).json(&json!({"cron": "61 * * * *"}))).await;
    assert_eq!((status, fields(&p)), (400, ["cron".to_string()].into()));
    let (status, edited) =
        send(c.patch(api(&format!("/api/schedules/{id}"))).json(&json!({"cron": "30 16 * * *", "timezone": "UTC"})))
            .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!((time(&edited["nextFireAt"]).hour(), time(&edited["nextFireAt"]).minute()), (16, 30));
    assert_eq!(edited["name"], "Morning tech", "what was not sent stays");

    let stranger = visitor(&server).await;
    assert_eq!(stranger.get(api(&format!("/api/schedules/{id}"))).send().await.unwrap().status(), 404);
    assert_eq!(stranger.delete(api(&format!("/api/schedules/{id}"))).send().await.unwrap().status(), 404);
    let list: Value = c.get(api("/api/schedules")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["schedules"].as_array().unwrap().len(), 1);

    // At most 20 a person: the 21st is refused until one is deleted.
    for n in 2..=20 {
        let more = json!({"name": format!("Watchlist {n}"), "symbols": ["AAPL"], "cron": "0 9 * * *"});
        assert_eq!(send(c.post(api("/api/schedules")).json(&more)).await.0, 201, "schedule {n}");
    }
    let one_more = json!({"name": "One more", "symbols": ["AAPL"], "cron": "0 9 * * *"});
    let (status, p) = send(c.post(api("/api/schedules")).json(&one_more)).await;
    assert_eq!((status, fields(&p)), (400, ["name".to_string()].into()), "{p}");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("already have 20 schedules"), "{p}");
    assert_eq!(send(c.post(api("/api/schedules")).json(&one_more)).await.0, 400, "nothing was made");
    let list: Value = c.get(api("/api/schedules")).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = list["schedules"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 20, "{names:?}");
    assert_eq!((names[0], names[19]), ("Morning tech", "Watchlist 20"), "oldest first");
    assert_eq!(stranger.post(api("/api/schedules")).json(&one_more).send().await.unwrap().status(), 201, "per person");
    assert_eq!(c.delete(api(&format!("/api/schedules/{id}"))).send().await.unwrap().status(), 204);
    assert_eq!(send(c.post(api("/api/schedules")).json(&one_more)).await.0, 201, "room again");
    assert_eq!(c.get(api(&format!("/api/schedules/{id}"))).send().await.unwrap().status(), 404);
    assert_eq!(c.get(api("/api/schedules/nope")).send().await.unwrap().status(), 400);
}

/// The page's forms, posted as a browser without scripts posts them.
#[tokio::test]
async fn the_page_makes_pauses_and_deletes_schedules_without_scripts() {
    let server = Server::start(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let c = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(c.get(server.url("/schedules")).send().await.unwrap().status(), 200);
    let post = |path: &str, body: &str| {
        c.post(server.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html")
            .body(body.to_string())
            .send()
    };
    // Refused: the form again, with what was typed and why.
    let resp = post("/schedules", "name=Weekly&symbols=AAPL%2C+TSLA&cron=0+9+*+*+MON&timezone=UTC").await.unwrap();
    assert_eq!(resp.status(), 400);
    let page = resp.text().await.unwrap();
    assert!(page.contains("TSLA: no market data"), "why");
    assert!(page.contains("value=\"AAPL, TSLA\""), "what was typed");
    let resp = post(
        "/schedules",
        "name=Weekly&symbols=AAPL%2C+NVDA&cron=0+9+*+*+MON&timezone=Europe%2FLondon&analysts=invest",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/schedules");
    let list: Value = c.get(server.url("/api/schedules")).send().await.unwrap().json().await.unwrap();
    let id = list["schedules"][0]["scheduleId"].as_str().unwrap().to_string();
    assert_eq!(list["schedules"][0]["request"]["analysts"], json!(["invest"]));
    let page = c.get(server.url("/schedules")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Weekly") && page.contains("AAPL, NVDA") && page.contains("Next: "), "listed");

    assert_eq!(post(&format!("/schedules/{id}/pause"), "").await.unwrap().status(), 303);
    let page = c.get(server.url("/schedules")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-paused=\"true\"") && page.contains(">Resume<"), "paused");
    let resp =
        post(&format!("/schedules/{id}"), "name=Weekly+UK&symbols=MSFT&cron=0+8+*+*+MON&timezone=Europe%2FLondon")
            .await
            .unwrap();
    assert_eq!(resp.status(), 303);
    let one: Value = c.get(server.url(&format!("/api/schedules/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!((one["name"].as_str(), one["cron"].as_str()), (Some("Weekly UK"), Some("0 8 * * MON")));
    assert_eq!(one["paused"], true, "an edit leaves it paused");
    assert_eq!(post(&format!("/schedules/{id}/delete"), "").await.unwrap().status(), 303);
    let page = c.get(server.url("/schedules")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("No schedules yet."));
}

/// The schedule's ticks (newest first) and every batch of the user's, read in that order
/// backwards: a batch is started after its tick is recorded, so every batch read has its tick
/// among the ticks read after it.
async fn fires_and_batches(c: &reqwest::Client, server: &Server, id: &str) -> (Vec<Value>, BTreeSet<String>) {
    let batches: Value = c.get(server.url("/api/trading/batches")).send().await.unwrap().json().await.unwrap();
    let ids =
        batches["batches"].as_array().unwrap().iter().map(|b| b["batchId"].as_str().unwrap().to_string()).collect();
    let schedule: Value =
        c.get(server.url(&format!("/api/schedules/{id}"))).send().await.unwrap().json().await.unwrap();
    (schedule["lastFires"].as_array().unwrap().clone(), ids)
}

/// Every batch has its tick, and every tick but one just taken has its batch.
fn one_batch_per_tick(fires: &[Value], batches: &BTreeSet<String>) -> bool {
    let fired: BTreeSet<String> = fires.iter().map(|f| f["batchId"].as_str().unwrap().to_string()).collect();
    assert!(batches.is_subset(&fired), "a batch without a tick: {batches:?} vs {fired:?}");
    fired.len() == batches.len()
}

/// Two processes share a PostgreSQL database and both run the scheduler: a schedule every 5 s
/// starts exactly one batch per tick (the ticks 5 s apart, one batch each, no batch without a
/// tick). Both stop for 20 s; started again, they fire the latest missed tick once, saying how
/// many it stood for, and go on.
#[tokio::test]
async fn one_batch_per_tick_across_two_processes_and_one_catch_up_on_postgres() {
    let db = TestDb::postgres().await;
    let env = [("MIN_SCHEDULE_INTERVAL_SECS", "1"), ("SIMULATED_LATENCY_MS", "0"), ("WORKERS", "2")];
    let a = Server::start_on(&db.url, &["serve"], &env).await;
    let b = Server::start_on(&db.url, &["serve"], &env).await;
    let c = visitor(&a).await;
    let body = json!({"name": "Every five", "symbols": ["AAPL"], "cron": "*/5 * * * * *", "analysts": ["invest"]});
    let (status, created) = send(c.post(a.url("/api/schedules")).json(&body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["scheduleId"].as_str().unwrap().to_string();

    let begun = Instant::now();
    let fires = loop {
        let (fires, batches) = fires_and_batches(&c, &b, &id).await;
        if one_batch_per_tick(&fires, &batches) && fires.len() >= 3 {
            break fires;
        }
        assert!(begun.elapsed() < Duration::from_secs(40), "three ticks never fired: {fires:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let ticks: Vec<DateTime<Utc>> = fires.iter().map(|f| time(&f["tickAt"])).collect();
    for w in ticks.windows(2) {
        assert_eq!(w[0] - w[1], chrono::Duration::seconds(5), "one tick every 5 s, none twice: {ticks:?}");
    }
    for f in &fires {
        assert_eq!(f["missed"], 0, "{f}");
        assert!(f.get("error").is_none(), "{f}");
    }

    // Both stop; nothing runs for 20 s.
    for mut s in [a, b] {
        s.child.kill().await.unwrap();
    }
    // A tick may have been taken between the last read and the kill: the catch-up is the first
    // tick after the kill.
    let last_before = Utc::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let a = Server::start_on(&db.url, &["serve"], &env).await;
    let b = Server::start_on(&db.url, &["serve"], &env).await;
    let begun = Instant::now();
    let fires = loop {
        let (fires, batches) = fires_and_batches(&c, &a, &id).await;
        if time(&fires[0]["tickAt"]) > last_before && one_batch_per_tick(&fires, &batches) {
            break fires;
        }
        assert!(begun.elapsed() < Duration::from_secs(20), "no tick after the restart: {fires:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let after: Vec<&Value> = fires.iter().filter(|f| time(&f["tickAt"]) > last_before).collect();
    assert_eq!(after.len(), 1, "one catch-up tick, not one per missed tick: {after:?}");
    let catch_up = after[0];
    let missed = catch_up["missed"].as_u64().unwrap();
    assert!((3..=8).contains(&missed), "it stood for the ticks of the 20 s: {catch_up}");
    // And it goes on, a tick at a time.
    let begun = Instant::now();
    loop {
        let (fires, _) = fires_and_batches(&c, &b, &id).await;
        let newer: Vec<&Value> = fires.iter().filter(|f| time(&f["tickAt"]) > time(&catch_up["tickAt"])).collect();
        if let Some(next) = newer.last() {
            assert_eq!(next["missed"], 0, "{next}");
            assert_eq!(time(&next["tickAt"]) - time(&catch_up["tickAt"]), chrono::Duration::seconds(5));
            break;
        }
        assert!(begun.elapsed() < Duration::from_secs(15), "no tick after the catch-up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = c.get(b.url("/schedules")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("caught up: {missed} earlier ticks were missed")), "the page says so");
}
