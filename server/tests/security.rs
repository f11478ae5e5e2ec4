//! Safety on a public address, against the real binary: cross-site writes refused before
//! anything happens (no run, no cookie), security headers on every answer, and a global cap
//! on queued runs.

mod common;

use common::{Server, client, visitor};
use jobs::testing::TestDb;
use serde_json::{Value, json};

async fn problem(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}

async fn runs(c: &reqwest::Client, s: &Server) -> u64 {
    let page: Value = c.get(s.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    page["total"].as_u64().unwrap()
}

#[tokio::test]
async fn cross_site_writes_are_refused_and_same_origin_ones_pass() {
    let server = Server::start(
        TestDb::sqlite(),
        &[("SIMULATED_LATENCY_MS", "60000"), ("ALLOWED_ORIGINS", "https://app.example.com")],
    )
    .await;
    let c = visitor(&server).await;
    // A first visit for an identity.
    assert_eq!(c.get(server.url("/")).send().await.unwrap().status(), 200);
    let host = server.base.trim_start_matches("http://").to_string();
    let body = json!({"symbol": "AAPL", "analysts": ["risk"]});

    for (name, value) in [
        ("origin", "https://evil.example".to_string()),
        ("origin", format!("http://sub.{host}")),
        ("origin", "null".to_string()),
        ("sec-fetch-site", "cross-site".to_string()),
        ("sec-fetch-site", "same-site".to_string()),
    ] {
        let resp = c.post(server.url("/api/trading/run")).header(name, &value).json(&body).send().await.unwrap();
        assert!(resp.headers().get("set-cookie").is_none(), "a refused request sets no cookie ({name}: {value})");
        let p = problem(resp, 403).await;
        assert_eq!(p["type"], "/problems/cross-site-request", "{name}: {value}");
    }
    // Server functions and every other unsafe method are covered the same way.
    let resp = c
        .post(server.url("/api/start_run"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("request[symbol]=AAPL")
        .send()
        .await
        .unwrap();
    problem(resp, 403).await;
    assert_eq!(runs(&c, &server).await, 0, "nothing was started");

    let same = c
        .post(server.url("/api/trading/run"))
        .header("origin", format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 202);
    let allowed = c
        .post(server.url("/api/trading/run"))
        .header("origin", "https://app.example.com")
        .json(&json!({"symbol": "MSFT", "analysts": ["risk"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 202);
    // A script without browser headers still works.
    let script = c.post(server.url("/api/trading/run")).json(&json!({"symbol": "NVDA"})).send().await.unwrap();
    assert_eq!(script.status(), 202);
    assert_eq!(runs(&c, &server).await, 3);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let server = Server::start(TestDb::sqlite(), &[]).await;
    let c = visitor(&server).await;
    for path in ["/", "/history", "/api/trading/models", "/api/trading/progress/nope", "/healthz", "/no-such-page"] {
        let resp = c.get(server.url(path)).send().await.unwrap();
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert!(h["permissions-policy"].to_str().unwrap().contains("camera=()"), "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'"), "{path}: {csp}");
        assert!(h.get("strict-transport-security").is_none(), "no HSTS over plain HTTP");
    }
    let https = Server::start(TestDb::sqlite(), &[("COOKIE_SECURE", "true")]).await;
    let resp = c.get(https.url("/")).send().await.unwrap();
    assert!(resp.headers()["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
}

/// Past MAX_QUEUED_RUNS waiting runs (from anyone), a new run is a 503 with Retry-After.
#[tokio::test]
async fn the_queue_has_a_global_cap() {
    let server = Server::start(TestDb::sqlite(), &[("MAX_QUEUED_RUNS", "2"), ("WORKERS", "0")]).await;
    let mut clients = Vec::new();
    for symbol in ["AAPL", "MSFT"] {
        let c = visitor(&server).await;
        let resp = c.post(server.url("/api/trading/run")).json(&json!({"symbol": symbol})).send().await.unwrap();
        assert_eq!(resp.status(), 202);
        clients.push(c);
    }
    let late = visitor(&server).await;
    let resp = late.post(server.url("/api/trading/run")).json(&json!({"symbol": "NVDA"})).send().await.unwrap();
    assert_eq!(resp.headers()["retry-after"], "30");
    let p = problem(resp, 503).await;
    assert_eq!(p["type"], "/problems/queue-full");
    assert!(p["detail"].as_str().unwrap().contains("2 analyses are already waiting"), "{p}");
    // Cancelling one frees a place.
    let first: Value = clients[0].get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    let id = first["runs"][0]["runId"].as_str().unwrap();
    assert_eq!(clients[0].post(server.url(&format!("/api/trading/cancel/{id}"))).send().await.unwrap().status(), 200);
    let resp = late.post(server.url("/api/trading/run")).json(&json!({"symbol": "NVDA"})).send().await.unwrap();
    assert_eq!(resp.status(), 202);
}

/// An identity is issued on a page load only: never on an API call, a static file, metrics,
/// or a script's fetch of a page; and without one, nothing can be started.
#[tokio::test]
async fn identities_come_from_page_loads_only() {
    let server = Server::start(TestDb::sqlite(), &[]).await;
    let c = client();
    for path in ["/api/trading/models", "/api/trading/runs", "/api/nope", "/metrics", "/healthz", "/favicon.ico"] {
        let resp = c.get(server.url(path)).send().await.unwrap();
        assert!(resp.headers().get("set-cookie").is_none(), "{path} set a cookie");
    }
    let embedded = c
        .get(server.url("/"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "no-cors")
        .header("sec-fetch-dest", "image")
        .send()
        .await
        .unwrap();
    assert!(embedded.headers().get("set-cookie").is_none(), "another site's embed mints no identity");

    let resp = c.post(server.url("/api/trading/run")).json(&json!({"symbol": "AAPL"})).send().await.unwrap();
    assert!(resp.headers().get("set-cookie").is_none());
    let p = problem(resp, 401).await;
    assert_eq!(p["type"], "/problems/unauthenticated");
    problem(c.post(server.url("/api/trading/cancel/0b6c4a3e-8f1d-4c52-9a57-2f0d8e9b1c7a")).send().await.unwrap(), 401)
        .await;

    // A navigation, even from a link on another site, gives one, and then the API works.
    let page = c
        .get(server.url("/history"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    assert!(page.headers()["set-cookie"].to_str().unwrap().starts_with("ta_session="));
    let resp = c.post(server.url("/api/trading/run")).json(&json!({"symbol": "AAPL"})).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(runs(&c, &server).await, 1);
}

/// Behind a trusted proxy that says the client used HTTPS, the cookie is `Secure` and HSTS is
/// sent, with no setting; the same header from anyone else changes nothing.
#[tokio::test]
async fn https_is_believed_from_trusted_proxies_only() {
    let proxied = Server::start(TestDb::sqlite(), &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let direct = Server::start(TestDb::sqlite(), &[]).await;
    let page = |server: &Server, https: bool| {
        let req = client().get(server.url("/"));
        if https { req.header("x-forwarded-proto", "https") } else { req }.send()
    };
    let resp = page(&proxied, true).await.unwrap();
    // Secure is one of the cookie's attributes (the cookie crate writes Path and Max-Age after it).
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.split("; ").skip(1).any(|a| a == "Secure"), "{set_cookie}");
    assert!(resp.headers()["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
    for resp in [page(&proxied, false).await.unwrap(), page(&direct, true).await.unwrap()] {
        assert!(!resp.headers()["set-cookie"].to_str().unwrap().contains("Secure"));
        assert!(resp.headers().get("strict-transport-security").is_none());
    }
}

/// Rotating `SESSION_SECRET` with the old one in `SESSION_SECRET_PREVIOUS` keeps every history:
/// old cookies verify, the next page load signs them again with the new key (an API call does
/// not), and once re-signed they no longer need the old key.
#[tokio::test]
async fn rotated_session_secrets_keep_identities() {
    let db = TestDb::sqlite();
    let old = "o".repeat(32);
    let new = "n".repeat(32);
    let c = client();
    {
        let a = Server::start_on(&db.url, &["serve"], &[("WORKERS", "0"), ("SESSION_SECRET", &old)]).await;
        assert_eq!(c.get(a.url("/")).send().await.unwrap().status(), 200);
        let resp = c.post(a.url("/api/trading/run")).json(&json!({"symbol": "AAPL"})).send().await.unwrap();
        assert_eq!(resp.status(), 202);
    }
    let env =
        [("WORKERS", "0"), ("SESSION_SECRET", new.as_str()), ("SESSION_SECRET_PREVIOUS", &format!("x{old}, {old}"))];
    let b = Server::start_on(&db.url, &["serve"], &env).await;
    // The old cookie still names the same identity, and an API call issues no cookie.
    let resp = c.get(b.url("/api/trading/runs")).send().await.unwrap();
    assert!(resp.headers().get("set-cookie").is_none());
    assert_eq!(resp.json::<Value>().await.unwrap()["total"], 1);
    // Without the old key, the old cookie is nobody.
    let c2 = client();
    let cookie = |resp: &reqwest::Response| {
        resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
    };
    let a_cookie = {
        let a = Server::start_on(&db.url, &["serve"], &[("WORKERS", "0"), ("SESSION_SECRET", &old)]).await;
        cookie(&c2.get(a.url("/")).send().await.unwrap())
    };
    let only_new = Server::start_on(&db.url, &["serve"], &[("WORKERS", "0"), ("SESSION_SECRET", &new)]).await;
    let resp = client().get(only_new.url("/api/trading/runs")).header("cookie", &a_cookie).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // A page load signs it again with the new key, which then suffices.
    let resp = c.get(b.url("/")).send().await.unwrap();
    let renewed = cookie(&resp);
    let resp = client().get(only_new.url("/api/trading/runs")).header("cookie", &renewed).send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["total"], 1);
}
