//! The operators' stats after real runs — two completed and one failed through a fake
//! provider: the figures, charts' data, slow steps and failures match what the runs say; the
//! page draws its charts as SVG; only this machine, or a request with the admin token, may
//! read them.

mod common;

use std::time::Duration;

use agents::testing::FakeLlm;
use common::{Server, visitor, wait_until_done};
use jobs::testing::TestDb;
use serde_json::{Value, json};

const TOKEN: &str = "admin-token-for-tests-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_figures_match_the_runs_and_need_locality_or_the_token() {
    let fake = FakeLlm::start().await;
    let catalog = common::fake_models(&fake, &[("fake", "ok"), ("broken", "unauthorized")]);
    let env = [
        ("MODEL_CATALOG", catalog.as_str()),
        ("FAKE_API_KEY", "sk-test"),
        ("ADMIN_TOKEN", TOKEN),
        ("SIMULATED_LATENCY_MS", "0"),
        ("WORKERS", "1"),
    ];
    let server = Server::start(TestDb::sqlite(), &env).await;
    let c = visitor(&server).await;
    let mut done = Vec::new();
    for (symbol, model) in [("AAPL", "fake"), ("MSFT", "fake"), ("IBM", "broken")] {
        let resp = c
            .post(server.url("/api/trading/run"))
            .json(&json!({"symbol": symbol, "modelId": model, "analysts": ["invest", "risk"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let id = resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string();
        done.push(wait_until_done(&c, &server, &id, Duration::from_secs(60)).await.0);
    }
    assert_eq!(
        done.iter().map(|d| d["status"].as_str().unwrap()).collect::<Vec<_>>(),
        ["completed", "completed", "failed"]
    );

    let resp = c.get(server.url("/api/trading/stats")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "from this machine, no token needed");
    let s: Value = resp.json().await.unwrap();
    for window in ["lastHour", "lastDay"] {
        let f = &s[window];
        assert_eq!(
            (f["finished"].as_u64(), f["completed"].as_u64(), f["failed"].as_u64()),
            (Some(3), Some(2), Some(1))
        );
        assert!((f["failureRate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
        let mean = (done[0]["duration"].as_f64().unwrap() + done[1]["duration"].as_f64().unwrap()) / 2.0;
        assert_eq!(f["averageDurationMs"].as_f64().unwrap(), mean.round(), "the mean of the completed runs");
    }
    assert_eq!(s["lastHour"]["jobsPerHour"], 3.0);
    assert_eq!(s["lastDay"]["jobsPerHour"], 0.125);
    let hours = s["perHour"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    assert_eq!(hours.iter().map(|h| h["finished"].as_u64().unwrap()).sum::<u64>(), 3);
    assert_eq!(hours.iter().map(|h| h["failed"].as_u64().unwrap()).sum::<u64>(), 1);
    let p99: Vec<u64> = hours.iter().filter_map(|h| h["p99Ms"].as_u64()).collect();
    let longest = done[..2].iter().map(|d| d["duration"].as_u64().unwrap()).max().unwrap();
    assert!(p99.contains(&longest), "p99 of two runs is the longer: {p99:?} vs {longest}");
    assert_eq!((s["queue"]["pending"].as_u64(), s["queue"]["running"].as_u64()), (Some(0), Some(0)));
    let steps = s["slowestSteps"].as_array().unwrap();
    let data = steps.iter().find(|st| st["step"] == "Data Collection").expect("Data Collection is listed");
    assert_eq!(data["count"], 3, "completed in all three runs");
    let invest = steps.iter().find(|st| st["step"] == "Invest Analyst").expect("Invest Analyst is listed");
    assert_eq!(invest["count"], 2, "failed in the third");
    let failures = s["recentFailures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["runId"], done[2]["runId"]);
    assert_eq!(failures[0]["error"], done[2]["error"]);
    assert_eq!(s["activePollers"], 3, "all three were polled just now");
    let db = s["database"].as_array().unwrap();
    let claims = db.iter().find(|d| d["statement"] == "claim").expect("claims timed");
    assert!(claims["count"].as_u64().unwrap() >= 3);

    let page = c.get(server.url("/stats")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().get("set-cookie").is_none());
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert_eq!(html.matches("<svg").count(), 2, "runs per hour and duration percentiles");
    assert_eq!(html.matches("class=\"column failed\"").count(), 1, "one hour with a failure");
    assert!(
        html.contains(r#"Failure rate</th><td data-label="Last hour">33.3%</td><td data-label="Last day">33.3%</td>"#),
        "{html}"
    );
    let error = done[2]["error"].as_str().unwrap();
    // Text is escaped where it could open markup.
    let escaped = error.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    assert!(html.contains(&escaped), "the failure's error is on the page");

    // Through a proxy (or from elsewhere) only the token opens it.
    let forwarded = |req: reqwest::RequestBuilder| req.header("x-forwarded-for", "203.0.113.9");
    let resp = forwarded(c.get(server.url("/api/trading/stats"))).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = forwarded(c.get(server.url("/stats")).bearer_auth("wrong")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = forwarded(c.get(server.url("/api/trading/stats")).bearer_auth(TOKEN)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}
