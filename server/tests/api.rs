//! The REST API against the real server binary on a free port, on SQLite and on PostgreSQL:
//! a run from POST to a completed result, bad input, ownership, ETags, cancel and retry.

mod common;

use std::time::{Duration, Instant};

use common::{Server, client, visitor, wait_until_done};
use jobs::testing::TestDb;
use serde_json::{Value, json};

async fn post_run(c: &reqwest::Client, s: &Server, body: Value) -> reqwest::Response {
    c.post(s.url("/api/trading/run")).json(&body).send().await.expect("post")
}

/// POST → 202 with Location and Retry-After → progress moves → completed with a full result.
async fn run_to_completion(server: Server) {
    let c = client();
    let page = c.get(server.url("/")).send().await.unwrap();
    let set_cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let resp = post_run(
        &c,
        &server,
        json!({"symbol": "aapl", "modelId": "offline", "analysts": ["invest", "risk", "sentiment", "technical"]}),
    )
    .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["retry-after"], "2");
    assert!(resp.headers().get("set-cookie").is_none(), "API answers never set cookies");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "pending");
    let run_id = body["runId"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/trading/progress/{run_id}"));

    let (done, seen) = wait_until_done(&c, &server, &run_id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progress"], 100);
    assert_eq!(seen.last(), Some(&100));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress never goes back: {seen:?}");
    let steps: Vec<(&str, &str)> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("Data Collection", "completed"),
            ("Invest Analyst", "completed"),
            ("Risk Analyst", "completed"),
            ("Sentiment Analyst", "completed"),
            ("Technical Analyst", "completed"),
            ("Final Assessment", "completed"),
        ]
    );
    assert!(done["duration"].as_u64().unwrap() > 0);
    assert!(done["completedAt"].is_string() && done["startedAt"].is_string());
    assert_eq!(done["estimatedTimeRemaining"], Value::Null);

    let r = &done["result"];
    assert_eq!(r["symbol"], "AAPL");
    assert_eq!(r["asOf"], "2023-09-21", "the last date in the bundled data");
    assert!(["Buy", "Overweight", "Hold", "Underweight", "Sell"].contains(&r["rating"].as_str().unwrap()));
    let confidence = r["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence));
    assert_eq!(r["reports"].as_array().unwrap().len(), 4);
    assert_eq!(r["ruleBased"], true);
    for report in r["reports"].as_array().unwrap() {
        // The result says once that the offline model wrote it (`ruleBased`), the reports do not.
        assert!(!report["report"].as_str().unwrap().contains("Rule-based analysis"));
        assert!(["bullish", "neutral", "bearish"].contains(&report["stance"].as_str().unwrap()));
    }
    // The close on the as-of date, from the CSV.
    assert_eq!(r["chart"].as_array().unwrap().last().unwrap()["close"], 173.93);
    assert_eq!(r["figures"][0]["display"], "173.93");
    assert_eq!(r["llmCalls"], 5, "four analysts and the final assessment, one call each");
    assert_eq!(done["llmCalls"], 5);
    assert_eq!(r["ruleBased"], true);

    // The history lists it.
    let runs: Value = c.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(runs["total"], 1);
    assert_eq!(runs["runs"][0]["runId"], run_id.as_str());
    assert_eq!(runs["runs"][0]["rating"], r["rating"]);
}

#[tokio::test]
async fn a_run_completes_on_sqlite() {
    run_to_completion(Server::start(TestDb::sqlite(), &[]).await).await;
}

#[tokio::test]
async fn a_run_completes_on_postgres() {
    run_to_completion(Server::start(TestDb::postgres().await, &[]).await).await;
}

async fn problem(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}

fn fields(p: &Value) -> Vec<String> {
    p["errors"]
        .as_array()
        .map(|e| e.iter().map(|f| f["field"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Every kind of bad input gets a 4xx problem naming what is wrong, and nothing is stored.
#[tokio::test]
async fn bad_input_gets_problem_details_and_creates_nothing() {
    let server = Server::start(TestDb::sqlite(), &[]).await;
    let c = visitor(&server).await;
    let p = problem(post_run(&c, &server, json!({"symbol": "TSLA"})).await, 400).await;
    assert_eq!(fields(&p), ["symbol"]);
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("AAPL"), "lists what is available: {p}");
    let p = problem(post_run(&c, &server, json!({"symbol": "AAPL", "modelId": "gpt-9"})).await, 400).await;
    assert_eq!(fields(&p), ["modelId"]);
    let p = problem(post_run(&c, &server, json!({"symbol": "AAPL", "modelId": "gpt-4o-mini"})).await, 400).await;
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("OPENAI_API_KEY is not set"), "{p}");
    let p =
        problem(post_run(&c, &server, json!({"symbol": "AAPL", "analysts": ["invest", "astrology"]})).await, 400).await;
    assert_eq!(fields(&p), ["analysts"]);
    let p = problem(post_run(&c, &server, json!({"symbol": "AAPL", "analysts": []})).await, 400).await;
    assert_eq!(fields(&p), ["analysts"]);
    let p = problem(post_run(&c, &server, json!({"symbol": "AAPL", "asOf": "2030-01-01"})).await, 400).await;
    assert_eq!(fields(&p), ["asOf"]);
    let p = problem(post_run(&c, &server, json!({"symbol": "<script>", "modelId": 7})).await, 400).await;
    assert_eq!(p["type"], "/problems/malformed-json", "a number where a string belongs: {p}");
    let p = problem(post_run(&c, &server, json!({"symbol": "A B", "asOf": "yesterday"})).await, 400).await;
    assert_eq!(fields(&p), ["symbol", "asOf"]);
    let resp = c
        .post(server.url("/api/trading/run"))
        .header("content-type", "application/json")
        .body("{\"symbol\":")
        .send()
        .await
        .unwrap();
    problem(resp, 400).await;
    let resp = c
        .post(server.url("/api/trading/run"))
        .body("symbol=AAPL")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    problem(resp, 415).await;
    let resp = c
        .post(server.url("/api/trading/run"))
        .header("content-type", "application/json")
        .body(format!("{{\"symbol\":\"{}\"}}", "A".repeat(100_000)))
        .send()
        .await
        .unwrap();
    problem(resp, 413).await;
    let p = problem(c.get(server.url("/api/trading/progress/not-a-uuid")).send().await.unwrap(), 400).await;
    assert_eq!(fields(&p), ["runId"]);
    problem(c.get(server.url("/api/trading/progress/0b6c4a3e-8f1d-4c52-9a57-2f0d8e9b1c7a")).send().await.unwrap(), 404)
        .await;
    problem(c.post(server.url("/api/trading/cancel/0b6c4a3e-8f1d-4c52-9a57-2f0d8e9b1c7a")).send().await.unwrap(), 404)
        .await;
    problem(c.get(server.url("/api/trading/nope")).send().await.unwrap(), 404).await;
    problem(c.delete(server.url("/api/trading/run")).send().await.unwrap(), 405).await;
    let p = problem(c.get(server.url("/api/trading/runs?page=0")).send().await.unwrap(), 400).await;
    assert_eq!(fields(&p), ["page"]);
    let p = problem(c.get(server.url("/api/trading/runs?status=sleeping")).send().await.unwrap(), 400).await;
    assert_eq!(fields(&p), ["status"]);
    let runs: Value = c.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(runs["total"], 0, "no bad request left a run behind");
}

/// Another user's run is a 404, exactly like a missing one; the owner sees 304 when nothing
/// changed; cancel and retry work over HTTP.
#[tokio::test]
async fn ownership_etags_cancel_and_retry() {
    let server = Server::start(TestDb::sqlite(), &[("SIMULATED_LATENCY_MS", "60000")]).await;
    let (alice, mallory) = (visitor(&server).await, visitor(&server).await);
    let body: Value =
        post_run(&alice, &server, json!({"symbol": "MSFT", "analysts": ["risk"]})).await.json().await.unwrap();
    let id = body["runId"].as_str().unwrap().to_string();
    let progress = format!("/api/trading/progress/{id}");

    let theirs = problem(mallory.get(server.url(&progress)).send().await.unwrap(), 404).await;
    let missing = problem(
        mallory.get(server.url("/api/trading/progress/0b6c4a3e-8f1d-4c52-9a57-2f0d8e9b1c7a")).send().await.unwrap(),
        404,
    )
    .await;
    assert_eq!(theirs, missing, "indistinguishable from a run that does not exist");
    problem(mallory.post(server.url(&format!("/api/trading/cancel/{id}"))).send().await.unwrap(), 404).await;

    // Wait until the risk analyst is waiting on the (slow) model.
    let deadline = Instant::now() + Duration::from_secs(30);
    let etag = loop {
        let resp = alice.get(server.url(&progress)).send().await.unwrap();
        let etag = resp.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(resp.headers()["cache-control"], "no-cache, private");
        let b: Value = resp.json().await.unwrap();
        if b["steps"][1]["status"] == "in-progress" {
            assert!(b["estimatedTimeRemaining"].as_u64().unwrap() >= 1, "never 0 while running: {b}");
            break etag;
        }
        assert!(Instant::now() < deadline, "the risk analyst never started its model call: {b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let resp = alice.get(server.url(&progress)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);

    // The worker is inside the model call (a minute long): the cancel must not wait for it.
    let asked = Instant::now();
    let resp = alice.post(server.url(&format!("/api/trading/cancel/{id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 202, "the run was still going");
    let (done, _) = wait_until_done(&alice, &server, &id, Duration::from_secs(30)).await;
    let took = asked.elapsed();
    assert_eq!(done["status"], "cancelled");
    assert!(took <= jobs::CANCEL_WITHIN, "cancelled after {took:?}, promised within {:?}", jobs::CANCEL_WITHIN);
    let statuses: Vec<&str> = done["steps"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["completed", "skipped", "skipped"]);
    let resp = alice.get(server.url(&progress)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the ETag changed with the status");

    let resp = alice.post(server.url(&format!("/api/trading/retry/{id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let again: Value = resp.json().await.unwrap();
    let new_id = again["runId"].as_str().unwrap();
    assert_ne!(new_id, id);
    let p: Value =
        alice.get(server.url(&format!("/api/trading/progress/{new_id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(p["retryOf"], id.as_str());
    assert_eq!(p["symbol"], "MSFT");
    problem(alice.post(server.url(&format!("/api/trading/retry/{new_id}"))).send().await.unwrap(), 409).await;
}

/// The per-user limit answers 429 with Retry-After; idempotent repeats return the same run.
#[tokio::test]
async fn limit_and_idempotency_over_http() {
    let server =
        Server::start(TestDb::sqlite(), &[("SIMULATED_LATENCY_MS", "60000"), ("MAX_ACTIVE_JOBS_PER_USER", "2")]).await;
    let c = visitor(&server).await;
    let first = c
        .post(server.url("/api/trading/run"))
        .header("idempotency-key", "abc")
        .json(&json!({"symbol": "NVDA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let repeat = c
        .post(server.url("/api/trading/run"))
        .header("idempotency-key", "abc")
        .json(&json!({"symbol": "nvda"}))
        .send()
        .await
        .unwrap();
    assert_eq!(repeat.status(), 202);
    assert_eq!(repeat.headers()["idempotent-replayed"], "true");
    assert_eq!(repeat.json::<Value>().await.unwrap()["runId"], first["runId"]);
    let conflict = c
        .post(server.url("/api/trading/run"))
        .header("idempotency-key", "abc")
        .json(&json!({"symbol": "AMZN"}))
        .send()
        .await
        .unwrap();
    problem(conflict, 422).await;
    assert_eq!(post_run(&c, &server, json!({"symbol": "AMZN"})).await.status(), 202);
    let limited = post_run(&c, &server, json!({"symbol": "AMZN"})).await;
    assert_eq!(limited.headers()["retry-after"], "5");
    let p = problem(limited, 429).await;
    assert!(p["detail"].as_str().unwrap().contains("2 analyses"), "{p}");
}

/// Health, readiness and metrics answer; metrics count what happened.
#[tokio::test]
async fn health_and_metrics() {
    let server = Server::start(TestDb::sqlite(), &[]).await;
    let c = visitor(&server).await;
    assert_eq!(c.get(server.url("/healthz")).send().await.unwrap().text().await.unwrap(), "ok");
    assert_eq!(c.get(server.url("/readyz")).send().await.unwrap().text().await.unwrap(), "ready");
    let body: Value =
        post_run(&c, &server, json!({"symbol": "IBM", "analysts": ["technical"]})).await.json().await.unwrap();
    wait_until_done(&c, &server, body["runId"].as_str().unwrap(), Duration::from_secs(30)).await;
    let m = c.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("trading_agents_jobs{status=\"completed\"} 1"), "{m}");
    assert!(m.contains("trading_agents_runs_started_total 1"), "{m}");
    assert!(m.contains("trading_agents_workers 4"), "{m}");
    let models: Value = c.get(server.url("/api/trading/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(models[0]["id"], "offline");
    assert_eq!(models[0]["available"], true);
    let analysts: Value = c.get(server.url("/api/trading/analysts")).send().await.unwrap().json().await.unwrap();
    assert_eq!(analysts.as_array().unwrap().len(), 4);
}

/// 50 simultaneous starts by one user, spread over the connection pool: exactly the limit's
/// worth of runs are created; every other answer is 429 with Retry-After (PostgreSQL, where
/// the inserts really run in parallel).
#[tokio::test]
async fn fifty_concurrent_starts_create_exactly_the_limit_on_postgres() {
    let server = Server::start(TestDb::postgres().await, &[("SIMULATED_LATENCY_MS", "60000")]).await;
    let c = visitor(&server).await;
    // Get the session first, so all 50 belong to one user.
    assert_eq!(c.get(server.url("/api/trading/runs")).send().await.unwrap().status(), 200);
    let posts = (0..50).map(|_| {
        let c = c.clone();
        let url = server.url("/api/trading/run");
        async move { c.post(url).json(&json!({"symbol": "AAPL"})).send().await.unwrap() }
    });
    let responses = futures::future::join_all(posts).await;
    let created = responses.iter().filter(|r| r.status() == 202).count();
    let limited: Vec<_> = responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!((created, limited.len()), (3, 47));
    assert!(limited.iter().all(|r| r.headers().contains_key("retry-after")));
    let runs: Value = c.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(runs["total"], 3);
}
