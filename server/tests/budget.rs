//! The per-identity daily budget (`DAILY_TOKENS_PER_USER`, `DAILY_COST_USD_PER_USER`) through
//! the real binary: a run that would go over what is left of it ends `failed` keeping its
//! finished steps, and once it is spent no start of any kind creates a run, while other
//! identities go on.

mod common;

use std::time::Duration;

use agents::testing::FakeLlm;
use common::{Server, fake_catalog, fake_models, steps, stopped_before_research_manager, visitor, wait_until_done};
use jobs::testing::TestDb;
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};

async fn start(c: &reqwest::Client, server: &Server, body: Value) -> reqwest::Response {
    c.post(server.url("/api/trading/run")).json(&body).send().await.unwrap()
}

async fn runs_of(c: &reqwest::Client, server: &Server) -> u64 {
    let runs: Value = c.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    runs["total"].as_u64().unwrap()
}

/// A refused start: 429, problem+json of type daily-budget naming what was spent, and a
/// `Retry-After` of when the first spending run leaves the 24-hour window.
async fn over_budget(resp: reqwest::Response, spent: &str) {
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((23 * 3600..=24 * 3600).contains(&retry), "until the run leaves the window: {retry}");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["type"], "/problems/daily-budget");
    assert_eq!(p["status"], 429);
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.starts_with("Your analyses have used their daily budget: "), "{detail}");
    assert!(detail.contains(spent), "{detail}");
    assert!(detail.contains("in 24 hours"), "{detail}");
}

/// With 1,500 tokens a day and no budget of its own, a `standard` run stops where the
/// per-run budget test's run (`maxTokens: 1500`) stops, with a message naming the daily
/// budget and the steps that finished kept.
#[tokio::test]
async fn a_run_over_the_daily_budget_fails_and_keeps_finished_steps() {
    let fake = FakeLlm::start().await;
    let catalog = fake_catalog(&std::env::temp_dir(), &fake.base_url("ok"));
    let server = Server::start(
        TestDb::sqlite(),
        &[("MODEL_CATALOG", catalog.to_str().unwrap()), ("FAKE_API_KEY", "sk-test"), ("DAILY_TOKENS_PER_USER", "1500")],
    )
    .await;
    let c = visitor(&server).await;
    let resp =
        start(&c, &server, json!({"symbol": "AAPL", "modelId": "fake", "analysts": ["risk"], "depth": "standard"}))
            .await;
    assert_eq!(resp.status(), 202);
    let run_id = resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string();
    let (done, _) = wait_until_done(&c, &server, &run_id, Duration::from_secs(60)).await;
    let _ = std::fs::remove_file(&catalog);
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.starts_with("daily budget exceeded: "), "{error}");
    assert!(error.contains(" of 1500 left of the daily budget; Research Manager would go over it"), "{error}");
    assert!(error.ends_with("Finished steps are kept."), "{error}");
    stopped_before_research_manager(&done);
    let tokens = done["tokens"].as_u64().unwrap();
    assert!(tokens > 0 && tokens <= 1500, "{done}");
    assert!(fake.calls().iter().all(|c| c.step != "Research Manager"));
}

/// Cost a day, on PostgreSQL: a user under it starts; the run that spends it ends failed
/// naming the daily budget; then starts over REST, through the server function behind the
/// form and through the form posted natively, and retries, are refused with the same words
/// and create nothing, while another identity starts as before.
#[tokio::test]
async fn a_spent_daily_budget_refuses_new_runs_of_that_identity_only() {
    let fake = FakeLlm::start().await;
    let catalog = fake_models(&fake, &[("fake", "ok")]);
    let db = TestDb::postgres().await;
    let store = common::Records::open(&db).await;
    let server = Server::start(
        db,
        &[("MODEL_CATALOG", catalog.as_str()), ("FAKE_API_KEY", "sk-test"), ("DAILY_COST_USD_PER_USER", "0.01")],
    )
    .await;
    let total = || {
        let store = &store;
        async move { store.counts().await.iter().map(|(_, n)| n).sum::<u64>() }
    };
    let a = visitor(&server).await;
    let resp = start(&a, &server, json!({"symbol": "AAPL", "modelId": "fake", "analysts": ["risk"]})).await;
    assert_eq!(resp.status(), 202, "nothing spent yet");
    let run_id = resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string();
    let (done, _) = wait_until_done(&a, &server, &run_id, Duration::from_secs(60)).await;
    let _ = std::fs::remove_file(&catalog);
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.starts_with("daily budget exceeded: $"), "{error}");
    assert!(error.contains(" of $0.0100 left of the daily budget; Final Assessment would go over it"), "{error}");
    assert_eq!(done["currentStep"], "Failed: Final Assessment");
    let s = steps(&done);
    assert_eq!(s[1], ("Risk Analyst".to_string(), "completed".to_string()));
    assert_eq!(s[2], ("Final Assessment".to_string(), "failed".to_string()));
    let cost = done["costUsd"].as_f64().unwrap();
    assert!(cost >= 0.01, "the analyst's call spent the budget: {done}");
    let spent = format!("${cost:.4} spent of your $0.0100 a day");

    assert_eq!(total().await, 1);
    over_budget(start(&a, &server, json!({"symbol": "MSFT"})).await, &spent).await;
    let sf = a
        .post(server.url(app::api::StartRun::PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("request[symbol]=MSFT")
        .send()
        .await
        .unwrap();
    over_budget(sf, &spent).await;
    over_budget(a.post(server.url(&format!("/api/trading/retry/{run_id}"))).send().await.unwrap(), &spent).await;
    // The form posted natively comes back as the page, with the same words.
    let page = a
        .post(server.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("symbol=MSFT&model=offline&analysts=risk")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("Your analyses have used their daily budget: {spent}")), "{html}");
    assert_eq!(runs_of(&a, &server).await, 1);
    assert_eq!(total().await, 1, "a refused start creates no run");

    let b = visitor(&server).await;
    let resp = start(&b, &server, json!({"symbol": "MSFT"})).await;
    assert_eq!(resp.status(), 202, "another identity is not affected");
    assert_eq!(total().await, 2);
}

/// Two runs of one identity running at once share what is left of the daily budget: each
/// reads its owner's spending afresh before every model step, so together they stop near the
/// limit instead of each spending up to all of it. Alone, a run of this kind spends three
/// calls (analyst, bull, bear) under 1,500 tokens; side by side, the run that checks second
/// sees the other's analyst and stops before its debate.
#[tokio::test]
async fn runs_running_at_once_share_the_daily_budget() {
    let fake = FakeLlm::start().await;
    let catalog = fake_models(&fake, &[("fake", "delay-300")]);
    let server = Server::start(
        TestDb::sqlite(),
        &[("MODEL_CATALOG", catalog.as_str()), ("FAKE_API_KEY", "sk-test"), ("DAILY_TOKENS_PER_USER", "1500")],
    )
    .await;
    let c = visitor(&server).await;
    let body = json!({"symbol": "AAPL", "modelId": "fake", "analysts": ["risk"], "depth": "standard"});
    let (a, b) = tokio::join!(start(&c, &server, body.clone()), start(&c, &server, body));
    let mut ids = Vec::new();
    for resp in [a, b] {
        assert_eq!(resp.status(), 202);
        ids.push(resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string());
    }
    let mut done = Vec::new();
    for id in &ids {
        done.push(wait_until_done(&c, &server, id, Duration::from_secs(60)).await.0);
    }
    let _ = std::fs::remove_file(&catalog);
    let mut total = 0;
    let mut largest_call = 0;
    for d in &done {
        assert_eq!(d["status"], "failed", "{d}");
        assert!(d["error"].as_str().unwrap().starts_with("daily budget exceeded: "), "{d}");
        let (tokens, calls) = (d["tokens"].as_u64().unwrap(), d["llmCalls"].as_u64().unwrap());
        total += tokens;
        largest_call = largest_call.max(tokens.div_ceil(calls.max(1)));
    }
    let before_debate =
        done.iter().filter(|d| d["error"].as_str().unwrap().contains("; Bull Researcher would go over it")).count();
    assert!(before_debate >= 1, "one run saw the other's spending: {done:?}");
    // At most the other run's calls in flight go past the limit: one debate round.
    assert!(total <= 1500 + 2 * largest_call, "{total} tokens spent together: {done:?}");
}
