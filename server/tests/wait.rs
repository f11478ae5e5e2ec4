//! Waiting starts (`POST /api/trading/run` with `Prefer: wait=N`) through the real binary on
//! SQLite and PostgreSQL: a run that ends in time answers `200` with its final progress and
//! `Preference-Applied`; one that does not, the usual `202` once the wait is over; a process
//! told to stop answers a held request at once, with its `202`.

mod common;

use std::time::{Duration, Instant};

use common::{Server, terminate, visitor};
use jobs::testing::TestDb;
use serde_json::{Value, json};

/// Each model step takes this long (the offline model's simulated latency).
const STEP_MS: u64 = 1_200;

async fn start(
    c: &reqwest::Client,
    server: &Server,
    prefer: &str,
) -> (u16, reqwest::header::HeaderMap, Value, Duration) {
    let asked = Instant::now();
    let resp = c
        .post(server.url("/api/trading/run"))
        .header("Prefer", prefer)
        .json(&json!({"symbol": "AAPL", "analysts": ["risk"], "depth": "quick"}))
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.json().await.unwrap(), asked.elapsed())
}

async fn a_start_waits_for_its_run_when_asked(db: TestDb) {
    let latency = STEP_MS.to_string();
    let server = Server::start(db, &[("SIMULATED_LATENCY_MS", latency.as_str())]).await;
    let c = visitor(&server).await;

    // Ends in time: 200, the final progress, the preference said to be applied.
    let (status, headers, body, took) = start(&c, &server, "wait=30").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["preference-applied"], "wait=30");
    assert_eq!(body["status"], "completed", "{body}");
    let id = body["runId"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/api/trading/progress/{id}").as_str());
    assert!(body["result"]["rating"].is_string(), "{body}");
    assert!(took >= Duration::from_millis(2 * STEP_MS), "it waited for both model steps: {took:?}");
    let progress: Value =
        c.get(server.url(&format!("/api/trading/progress/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(progress, body, "the same document as a poll");
    assert!(headers.contains_key("etag"), "{headers:?}");

    // Not in time: the usual 202 after the wait, and the run goes on.
    let (status, headers, body, took) = start(&c, &server, "respond-async, wait=1").await;
    assert_eq!(status, 202, "{body}");
    assert!(headers.get("preference-applied").is_none());
    assert!(took >= Duration::from_secs(1) && took < Duration::from_millis(2 * STEP_MS), "{took:?}");
    let id = body["runId"].as_str().unwrap().to_string();
    let (done, _) = common::wait_until_done(&c, &server, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed");

    // A preference that cannot be honoured is ignored: no wait.
    for prefer in ["wait=0", "wait=soon", "handling=lenient"] {
        let (status, _, body, took) = start(&c, &server, prefer).await;
        assert_eq!(status, 202, "{prefer}: {body}");
        assert!(took < Duration::from_millis(STEP_MS), "{prefer}: {took:?}");
        let id = body["runId"].as_str().unwrap().to_string();
        common::wait_until_done(&c, &server, &id, Duration::from_secs(60)).await;
    }

    // Stopping: the held request is answered at once with its 202, not after its 60 s.
    let held = {
        let c = c.clone();
        let url = server.url("/api/trading/run");
        tokio::spawn(async move {
            let asked = Instant::now();
            let resp = c
                .post(url)
                .header("Prefer", "wait=60")
                .json(&json!({"symbol": "MSFT", "analysts": ["risk", "invest", "technical"], "depth": "standard"}))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), asked.elapsed())
        })
    };
    // Once the run it started exists, the request is being held.
    loop {
        let list: Value =
            c.get(server.url("/api/trading/runs?symbol=MSFT")).send().await.unwrap().json().await.unwrap();
        if list["total"] == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    terminate(&server.child);
    let (status, took) = held.await.unwrap();
    assert_eq!(status, 202);
    assert!(took < Duration::from_secs(10), "answered when the process began to stop: {took:?}");
}

#[tokio::test]
async fn a_start_waits_for_its_run_when_asked_sqlite() {
    a_start_waits_for_its_run_when_asked(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_start_waits_for_its_run_when_asked_postgres() {
    a_start_waits_for_its_run_when_asked(TestDb::postgres().await).await;
}
