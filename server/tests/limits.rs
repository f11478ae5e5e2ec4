//! Rate limits on starting runs, against the real binary: per identity, per client address,
//! and the client address taken from `X-Forwarded-For` only when a trusted proxy sent it.

mod common;

use common::{Server, visitor};
use jobs::testing::TestDb;
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};

async fn rate_limited(resp: reqwest::Response) -> u64 {
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "/problems/rate-limited");
    assert_eq!(body["status"], 429);
    retry
}

fn body() -> Value {
    json!({"symbol": "AAPL", "analysts": ["risk"]})
}

/// Two runs a minute per identity: the third start is a 429 telling when to come back, the
/// server functions and retries count against the same allowance, and another identity from
/// the same address is not affected.
#[tokio::test]
async fn each_identity_starts_runs_at_its_own_pace() {
    let server = Server::start(
        TestDb::sqlite(),
        &[("SIMULATED_LATENCY_MS", "60000"), ("MAX_ACTIVE_JOBS_PER_USER", "100"), ("RUNS_PER_MINUTE_PER_USER", "2")],
    )
    .await;
    let a = visitor(&server).await;
    for _ in 0..2 {
        let resp = a.post(server.url("/api/trading/run")).json(&body()).send().await.unwrap();
        assert_eq!(resp.status(), 202);
    }
    let resp = a.post(server.url("/api/trading/run")).json(&body()).send().await.unwrap();
    let retry = rate_limited(resp).await;
    assert!((29..=30).contains(&retry), "one run every 30 s: {retry}");
    let total: Value = a.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(total["total"], 2, "the refused start made no run");

    // The server function behind the form, at the URL Leptos gave it, is the same allowance.
    let sf = a
        .post(server.url(app::api::StartRun::PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("request[symbol]=AAPL")
        .send()
        .await
        .unwrap();
    rate_limited(sf).await;

    // Another identity starts, and spends its own allowance through server functions and
    // retries just the same.
    let b = visitor(&server).await;
    for path in [app::api::StartRun::PATH.to_string(), "/api/trading/retry/not-a-run".to_string()] {
        let resp = b
            .post(server.url(&path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("request[symbol]=MSFT")
            .send()
            .await
            .unwrap();
        assert_ne!(resp.status(), 429, "{path}");
    }
    let resp = b.post(server.url(app::api::RetryRun::PATH)).form(&[("run_id", "x")]).send().await.unwrap();
    rate_limited(resp).await;
    // Reading is never limited.
    for _ in 0..10 {
        assert_eq!(b.get(server.url("/api/trading/runs")).send().await.unwrap().status(), 200);
    }
}

/// Per address: behind a trusted proxy each forwarded client has its own allowance; from a
/// peer that is not trusted, `X-Forwarded-For` changes nothing, so it cannot be used to escape.
#[tokio::test]
async fn addresses_come_from_trusted_proxies_only() {
    let env =
        [("SIMULATED_LATENCY_MS", "60000"), ("MAX_ACTIVE_JOBS_PER_USER", "100"), ("RUNS_PER_MINUTE_PER_ADDRESS", "2")];
    let proxied =
        Server::start(TestDb::sqlite(), &[env.as_slice(), &[("TRUSTED_PROXIES", "127.0.0.0/8")]].concat()).await;
    let c = visitor(&proxied).await;
    let start = |server: &Server, forwarded: &str| {
        c.post(server.url("/api/trading/run")).header("x-forwarded-for", forwarded).json(&body()).send()
    };
    for _ in 0..2 {
        assert_eq!(start(&proxied, "198.51.100.1").await.unwrap().status(), 202);
    }
    rate_limited(start(&proxied, "198.51.100.1").await.unwrap()).await;
    // A forged entry to the left of the proxy's own is not the client.
    rate_limited(start(&proxied, "203.0.113.50, 198.51.100.1").await.unwrap()).await;
    assert_eq!(start(&proxied, "198.51.100.2").await.unwrap().status(), 202);

    let direct = Server::start(TestDb::sqlite(), &env).await;
    let c = visitor(&direct).await;
    let start = |forwarded: &str| {
        c.post(direct.url("/api/trading/run")).header("x-forwarded-for", forwarded).json(&body()).send()
    };
    assert_eq!(start("198.51.100.1").await.unwrap().status(), 202);
    assert_eq!(start("198.51.100.2").await.unwrap().status(), 202);
    rate_limited(start("198.51.100.3").await.unwrap()).await;
}

/// A browser posting forms natively over the limit gets pages, not JSON: the new-analysis form
/// again with what was typed and why (429, `Retry-After`), and the Retry form the run's page
/// saying why, with a link to the page without the notice. A backtest start spends the same
/// allowance.
#[tokio::test]
async fn forms_over_the_limit_answer_with_pages_and_backtests_count() {
    let server = Server::start(
        TestDb::sqlite(),
        &[("SIMULATED_LATENCY_MS", "60000"), ("MAX_ACTIVE_JOBS_PER_USER", "100"), ("RUNS_PER_MINUTE_PER_USER", "1")],
    )
    .await;
    let a = visitor(&server).await;
    let form = |path: &str, body: &'static str| {
        a.post(server.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .body(body)
    };
    let first = form("/", "symbol=NVDA&model=offline&analysts=risk").send().await.unwrap();
    // Followed from its 303 to the new run's page.
    assert_eq!(first.status(), 200);
    let run_page = first.url().path().to_string();
    assert!(run_page.starts_with("/runs/"), "{run_page}");

    let again = form("/", "symbol=TSLA&model=offline&analysts=risk").send().await.unwrap();
    assert_eq!(again.status(), 429);
    assert!(again.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let retry: u64 = again.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry), "{retry}");
    let html = again.text().await.unwrap();
    assert!(html.contains("Runs are being started too quickly from here. Try again in"), "{html}");
    assert!(html.contains(r#"value="TSLA""#), "what was typed is kept: {html}");

    let retried = form(&format!("{run_page}/retry"), "").send().await.unwrap();
    assert_eq!(retried.status(), 429);
    assert!(retried.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(retried.headers().contains_key("retry-after"));
    assert!(retried.headers().contains_key("content-security-policy"), "the page has the site's headers");
    let html = retried.text().await.unwrap();
    assert!(html.contains("<strong>Too many new runs</strong>"), "{html}");
    assert!(html.contains(&format!(r#"<a href="{run_page}">Dismiss</a>"#)), "{html}");
    assert!(html.contains(r#"data-component="RunLive"#), "the run's page, with the refusal on it: {html}");
    let runs: Value = a.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(runs["total"], 1, "refused forms made no run");

    // Another identity's backtest takes its one start of the minute; its next run waits.
    let b = visitor(&server).await;
    let backtest = json!({"symbols": ["AAPL"], "from": "2019-01-02", "to": "2019-01-31", "everyDays": 5});
    let resp = b.post(server.url("/api/trading/backtests")).json(&backtest).send().await.unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    rate_limited(b.post(server.url("/api/trading/run")).json(&body()).send().await.unwrap()).await;
    rate_limited(b.post(server.url("/api/trading/backtests")).json(&backtest).send().await.unwrap()).await;
}
