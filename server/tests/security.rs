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

/// Every answer — pages, the not-found page, a refused form's page, problems, JSON, health,
/// metrics, CSV — carries the security headers, and a Content-Security-Policy that says where
/// scripts may come from: a page's own policy (this site, or this response's nonce), or none
/// at all (`script-src 'none'`) for what is not a page, so an HTML answer is never left
/// without one.
#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let server = Server::start(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let c = visitor(&server).await;
    let no_run = uuid::Uuid::new_v4();
    let mut answers = Vec::new();
    for (path, status) in [
        ("/", 200),
        ("/runs", 200),
        ("/settings", 200),
        ("/backtests", 200),
        ("/stats", 200),
        ("/api/trading/models", 200),
        ("/api/openapi.json", 200),
        ("/api/trading/progress/nope", 400),
        ("/api/nope", 404),
        ("/healthz", 200),
        ("/metrics", 200),
        ("/no-such-page", 404),
        ("/share/nope", 404),
        (&format!("/backtests/{no_run}/cells.csv") as &str, 404),
    ] {
        answers.push((format!("GET {path}"), status, c.get(server.url(path)).send().await.unwrap()));
    }
    for (path, body, status) in [
        (format!("/runs/{no_run}/cancel"), String::new(), 404),
        ("/settings/tokens".to_string(), "name=".to_string(), 400),
        ("/".to_string(), format!("symbol={}", "A".repeat(100 * 1024)), 413),
    ] {
        let resp = c
            .post(server.url(&path))
            .header("accept", "text/html")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        answers.push((format!("POST {path}"), status, resp));
    }
    let resp = c.put(server.url("/api/trading/run")).send().await.unwrap();
    answers.push(("PUT /api/trading/run".into(), 405, resp));
    let mut unguarded = Vec::new();
    for (what, status, resp) in answers {
        assert_eq!(resp.status(), status, "{what}");
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        assert_eq!(h["referrer-policy"], "same-origin", "{what}");
        assert!(h["permissions-policy"].to_str().unwrap().contains("camera=()"), "{what}");
        assert!(h.get("strict-transport-security").is_none(), "no HSTS over plain HTTP");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'"), "{what}: {csp}");
        let kind = h.get("content-type").map(|t| t.to_str().unwrap().to_string()).unwrap_or_default();
        let scripts = csp.split(';').map(str::trim).find(|d| d.starts_with("script-src "));
        let guarded = match scripts {
            // A page of the app: this site's scripts and those with this response's nonce.
            Some(s) if kind.starts_with("text/html") => s == "script-src 'none'" || s.contains("'nonce-"),
            // What is not a page runs no script.
            Some(s) => s == "script-src 'none'",
            None => false,
        };
        if !guarded || scripts.is_some_and(|s| s.contains("'unsafe-inline'")) {
            unguarded.push(format!("{what} ({kind}): {csp}"));
        }
    }
    assert!(unguarded.is_empty(), "answers without a script policy:\n{}", unguarded.join("\n"));
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
        .get(server.url("/runs"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the runs page");
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

/// `GET /api/trading/runs` with just this `Cookie` header.
async fn runs_with(server: &Server, cookie: &str) -> reqwest::Response {
    client().get(server.url("/api/trading/runs")).header("cookie", cookie).send().await.unwrap()
}

/// The session cookie's `name=value` pair, from a page load's `Set-Cookie`.
fn session_pair(resp: &reqwest::Response) -> String {
    resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

/// An `Origin` is this server's own only when scheme, host and port all match how it is
/// served: `http://host:port` on a plain server (where `https://host:port`, another port or a
/// made-up scheme is another site), `https://host:port` on one served over HTTPS.
#[tokio::test]
async fn an_origin_is_ours_only_with_our_scheme_host_and_port() {
    for https in [false, true] {
        let env: &[(&str, &str)] =
            if https { &[("COOKIE_SECURE", "true"), ("WORKERS", "0")] } else { &[("WORKERS", "0")] };
        let server = Server::start(TestDb::sqlite(), env).await;
        let cookie = session_pair(&client().get(server.url("/")).send().await.unwrap());
        let host = server.base.trim_start_matches("http://").to_string();
        let port = host.rsplit_once(':').unwrap().1.to_string();
        let (ours, theirs) = if https { ("https", "http") } else { ("http", "https") };
        let post = |origin: String| {
            client()
                .post(server.url("/api/trading/run"))
                .header("cookie", &cookie)
                .header("origin", origin)
                .json(&json!({"symbol": "AAPL", "analysts": ["risk"]}))
                .send()
        };
        // First, the same request from our own origin is accepted.
        let resp = post(format!("{ours}://{host}")).await.unwrap();
        assert_eq!(resp.status(), 202, "https={https}: our own origin");
        for origin in [
            format!("{theirs}://{host}"),
            format!("foo://{host}"),
            format!("{ours}://{host}.evil.example"),
            format!("{ours}://127.0.0.1:{}", port.parse::<u16>().unwrap() + 1),
            format!("{ours}://user@{host}"),
            format!("{ours}://{host}/path"),
        ] {
            let resp = post(origin.clone()).await.unwrap();
            let p = problem(resp, 403).await;
            assert_eq!(p["type"], "/problems/cross-site-request", "https={https}: {origin}");
        }
        let listed: Value = runs_with(&server, &cookie).await.json().await.unwrap();
        assert_eq!(listed["total"], 1, "https={https}: only our own origin's request started a run");
    }
}

/// Served over HTTPS, the session cookie is `__Host-ta_session`: `Secure`, on `/`, with no
/// `Domain` — which a sibling subdomain cannot set or overwrite. A plain `ta_session` cookie
/// (which a sibling could have planted) is then nobody, even when its signature holds.
#[tokio::test]
async fn over_https_the_session_cookie_is_host_only() {
    let db = TestDb::sqlite();
    let secret = "s".repeat(32);
    let env = [("WORKERS", "0"), ("SESSION_SECRET", secret.as_str())];
    let plain = Server::start_on(&db.url, &["serve"], &env).await;
    let mut secure_env = env.to_vec();
    secure_env.push(("COOKIE_SECURE", "true"));
    let secure = Server::start_on(&db.url, &["serve"], &secure_env).await;

    let page = client().get(secure.url("/")).send().await.unwrap();
    let set_cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    let attributes: Vec<&str> = set_cookie.split("; ").collect();
    assert!(attributes[0].starts_with("__Host-ta_session="), "{set_cookie}");
    assert!(attributes.contains(&"Secure") && attributes.contains(&"Path=/"), "{set_cookie}");
    assert!(!set_cookie.to_ascii_lowercase().contains("domain="), "{set_cookie}");
    let host_cookie = attributes[0].to_string();
    assert_eq!(runs_with(&secure, &host_cookie).await.status(), 200, "the __Host- cookie is an identity");

    // The plain server's cookie, signed with the same secret, is no identity over HTTPS.
    let plain_cookie = session_pair(&client().get(plain.url("/")).send().await.unwrap());
    assert!(plain_cookie.starts_with("ta_session="), "{plain_cookie}");
    assert_eq!(runs_with(&plain, &plain_cookie).await.status(), 200, "over HTTP it is one");
    problem(runs_with(&secure, &plain_cookie).await, 401).await;
    // Beside the real one, a planted plain cookie changes nothing.
    let both = format!("{plain_cookie}; {host_cookie}");
    let resp = client().post(secure.url("/api/trading/run")).header("cookie", &both).json(&json!({"symbol": "AAPL"}));
    assert_eq!(resp.send().await.unwrap().status(), 202);
    let mine: Value = runs_with(&secure, &host_cookie).await.json().await.unwrap();
    assert_eq!(mine["total"], 1, "the run is the __Host- identity's");
    let theirs: Value = runs_with(&plain, &plain_cookie).await.json().await.unwrap();
    assert_eq!(theirs["total"], 0, "not the planted identity's");
}

/// When a request carries several session cookies, a valid one is the identity whatever its
/// place: an invalid or forged cookie sent first (as a sibling subdomain could set one) does
/// not log its holder out. A request with only invalid ones has no identity.
#[tokio::test]
async fn an_invalid_session_cookie_does_not_hide_a_valid_one() {
    let server = Server::start(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let owner = session_pair(&client().get(server.url("/")).send().await.unwrap());
    let resp = client().post(server.url("/api/trading/run")).header("cookie", &owner).json(&json!({"symbol": "AAPL"}));
    assert_eq!(resp.send().await.unwrap().status(), 202);
    let forged = format!("ta_session={}.{}", "0".repeat(32), "A".repeat(43));
    for cookies in [
        owner.clone(),
        format!("ta_session=garbage; {owner}"),
        format!("{forged}; {owner}"),
        format!("{owner}; {forged}"),
        format!("ta_session=; other=1; {owner}"),
    ] {
        let resp = runs_with(&server, &cookies).await;
        assert_eq!(resp.status(), 200, "{cookies}");
        let page: Value = resp.json().await.unwrap();
        assert_eq!(page["total"], 1, "{cookies}: the owner's run");
    }
    for cookies in [forged.clone(), format!("ta_session=garbage; {forged}")] {
        problem(runs_with(&server, &cookies).await, 401).await;
    }
}
