//! A run's log (`GET /api/trading/runs/{runId}/log`), against the real server binary on SQLite
//! and PostgreSQL with a fake provider: the prices read, every model call with its tokens, cost
//! and first-output latency, a 429's `Retry-After` honoured and said, the end; the same lines
//! in `tracing` with the run id; the models' pace on `/api/trading/stats`; cancellation; who
//! may read it.

mod common;

use std::time::Duration;

use agents::testing::{Behaviour, FakeLlm};
use common::{Logs, Server, fake_models, start_run, visitor, wait_until_done};
use jobs::testing::TestDb;
use serde_json::{Value, json};

fn at(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("RFC 3339")
}

async fn get_json(c: &reqwest::Client, url: String) -> (u16, Value) {
    let resp = c.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn a_runs_log_says_what_it_read_called_waited_for_and_spent(db: TestDb) {
    let fake = FakeLlm::start().await;
    let catalog = fake_models(&fake, &[("fake", "ok")]);
    // The risk analyst's first call is refused with a 429 asking for 2 s.
    fake.queue("You are the Risk Analyst", Behaviour::Status(429, Some(2)));
    let (server, logs): (Server, Logs) =
        Server::start_logged(db, &[("MODEL_CATALOG", catalog.as_str()), ("FAKE_API_KEY", "sk-test")]).await;
    let c = visitor(&server).await;
    let run_id =
        start_run(&c, &server, json!({"symbol": "AAPL", "modelId": "fake", "analysts": ["risk"], "depth": "quick"}))
            .await;
    let (done, _) = wait_until_done(&c, &server, &run_id, Duration::from_secs(60)).await;
    let _ = std::fs::remove_file(&catalog);
    assert_eq!(done["status"], "completed", "{done}");

    let (status, log) = get_json(&c, server.url(&format!("/api/trading/runs/{run_id}/log"))).await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["runId"], run_id.as_str());
    let entries = log["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"ended"), "{kinds:?}");
    assert_eq!(entries[0]["attempt"], 1);
    assert!(!kinds.contains(&"resumed"), "a first attempt takes nothing over: {kinds:?}");
    for pair in entries.windows(2) {
        assert!(at(&pair[0]["at"]) <= at(&pair[1]["at"]), "in the order they happened: {pair:?}");
    }

    // The prices read: the symbol's and the index's, from the bundled data.
    let data: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "data").collect();
    let symbols: Vec<&str> = data.iter().map(|e| e["symbol"].as_str().unwrap()).collect();
    assert_eq!(symbols, ["AAPL", "^GSPC"]);
    for d in &data {
        assert_eq!(d["step"], "Data Collection");
        assert_eq!(d["source"], "bundled");
        assert!(d["rows"].as_u64().unwrap() > 200, "{d}");
        assert!(d["first"].as_str().unwrap() < d["last"].as_str().unwrap(), "{d}");
    }

    // The 429: one retry, after the 2 s the provider asked for.
    let retries: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "retry").collect();
    assert_eq!(retries.len(), 1, "{retries:?}");
    let retry = retries[0];
    assert_eq!(retry["step"], "Risk Analyst");
    assert_eq!(retry["model"], "fake");
    assert_eq!((retry["status"].as_u64(), retry["retryAfterMs"].as_u64()), (Some(429), Some(2_000)));
    assert_eq!(
        (retry["retry"].as_u64(), retry["of"].as_u64(), retry["waitMs"].as_u64()),
        (Some(1), Some(3), Some(2_000))
    );

    // Each answered call, with its tokens priced at the catalog's prices; the risk analyst's
    // answer came after the wait.
    let calls: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "call").collect();
    let steps: Vec<&str> = calls.iter().map(|e| e["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["Risk Analyst", "Final Assessment"]);
    let (mut tokens, mut cost) = (0, 0.0);
    for call in &calls {
        assert_eq!(call["model"], "fake");
        let (tin, tout) = (call["tokensIn"].as_u64().unwrap(), call["tokensOut"].as_u64().unwrap());
        assert!(tin > 0 && tout > 0, "{call}");
        let priced = (tin as f64 * 1000.0 + tout as f64 * 3000.0) / 1e6;
        assert!((call["costUsd"].as_f64().unwrap() - priced).abs() < 1e-9, "{call}");
        let (first, latency) = (call["firstOutputMs"].as_u64().unwrap(), call["latencyMs"].as_u64().unwrap());
        assert!(first <= latency, "the first text comes before the answer's end: {call}");
        tokens += tin + tout;
        cost += priced;
    }
    let waited = at(&calls[0]["at"]) - at(&retry["at"]);
    assert!(waited.num_milliseconds() >= 2_000, "the retry waited 2 s: {waited}");

    // The end: what the result says it cost.
    let ended = entries.last().unwrap();
    assert_eq!(ended["status"], "completed");
    assert_eq!(ended["calls"], done["result"]["llmCalls"]);
    assert_eq!(ended["calls"], 2);
    assert_eq!(ended["tokens"].as_u64().unwrap(), tokens);
    assert!((ended["costUsd"].as_f64().unwrap() - cost).abs() < 1e-9, "{ended}");

    // The same events in `tracing`, with the run id.
    let lines = logs.settle(&server, "after-the-run").await;
    let said: Vec<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["runId"] == run_id.as_str() && l["fields"]["kind"] == "retry")
        .map(|l| l["fields"]["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(said, ["fake: rate limited by the provider (HTTP 429, Retry-After 2 s); retry 1 of 3 after 2 s"]);
    assert!(lines.iter().all(|l| !l.contains("sk-test")), "no key in the log");

    // The models' pace on the operators' stats (from this machine).
    let (status, stats) = get_json(&c, server.url("/api/trading/stats")).await;
    assert_eq!(status, 200, "{stats}");
    let fake_pace = stats["models"].as_array().unwrap().iter().find(|m| m["model"] == "fake").cloned().unwrap();
    assert_eq!(fake_pace["calls"], 2, "{fake_pace}");
    let mean_first = calls.iter().map(|c| c["firstOutputMs"].as_f64().unwrap()).sum::<f64>() / 2.0;
    assert!((fake_pace["firstOutputMs"].as_f64().unwrap() - mean_first).abs() < 1e-6, "{fake_pace}");

    // Only who may read the run reads its log; a share link does.
    let other = visitor(&server).await;
    let (status, problem) = get_json(&other, server.url(&format!("/api/trading/runs/{run_id}/log"))).await;
    assert_eq!(status, 404, "{problem}");
    let (status, _) = get_json(&c, server.url("/api/trading/runs/not-a-run/log")).await;
    assert_eq!(status, 400);
    let share: Value =
        c.post(server.url(&format!("/api/trading/runs/{run_id}/shares"))).send().await.unwrap().json().await.unwrap();
    let api = share["apiUrl"].as_str().unwrap();
    let (status, shared) = get_json(&other, server.url(&format!("{api}/log"))).await;
    assert_eq!(status, 200);
    assert_eq!(shared, log);

    // The run page shows it, folded.
    let page = c.get(server.url(&format!("/runs/{run_id}"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-testid=\"run-log\""), "the page has the log");
    assert!(page.contains("retry 1 of 3 after 2 s"), "the page says the retry");
}

#[tokio::test]
async fn a_runs_log_says_what_it_read_called_waited_for_and_spent_on_sqlite() {
    a_runs_log_says_what_it_read_called_waited_for_and_spent(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_runs_log_says_what_it_read_called_waited_for_and_spent_on_postgres() {
    a_runs_log_says_what_it_read_called_waited_for_and_spent(TestDb::postgres().await).await;
}

/// A cancelled run's log says it was cancelled, once, however often Cancel is pressed.
#[tokio::test]
async fn a_cancelled_runs_log_says_so() {
    let fake = FakeLlm::start().await;
    let catalog = fake_models(&fake, &[("slow", "delay-30000")]);
    let server = Server::start(TestDb::sqlite(), &[("MODEL_CATALOG", catalog.as_str()), ("FAKE_API_KEY", "k")]).await;
    let c = visitor(&server).await;
    let resp = c
        .post(server.url("/api/trading/run"))
        .json(&json!({"symbol": "AAPL", "modelId": "slow", "analysts": ["risk"], "depth": "quick"}))
        .send()
        .await
        .unwrap();
    let run_id = resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string();
    // Wait until the model has been asked, so the run is running when it is cancelled.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fake.calls().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the model was never called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..2 {
        let resp = c.post(server.url(&format!("/api/trading/cancel/{run_id}"))).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }
    let (done, _) = wait_until_done(&c, &server, &run_id, Duration::from_secs(30)).await;
    let _ = std::fs::remove_file(&catalog);
    assert_eq!(done["status"], "cancelled");
    let (_, log) = get_json(&c, server.url(&format!("/api/trading/runs/{run_id}/log"))).await;
    let kinds: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "cancelled").count(), 1, "{kinds:?}");
    assert!(!kinds.contains(&"call"), "the call never answered: {kinds:?}");
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
}
