//! Hostile and malformed requests against the real binary: bodies, headers, paths, cookies,
//! tokens, share links, server-function bodies, oversized and slow requests, unicode,
//! duplicate keys and concurrent floods. Whatever arrives, no answer is a 5xx, every 4xx of
//! the API (`/api/…`) is a problem document, and the runs that existed before are exactly as
//! they were afterwards. (Pages answer HTML: a bad form gets the form again, an unknown page
//! the not-found page; for them only the status is checked.)

mod common;

use std::time::Duration;

use common::{Server, client, visitor};
use jobs::testing::TestDb;
use leptos::server_fn::ServerFn;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// Every answer seen, checked as it arrives.
#[derive(Default)]
struct Tally {
    answers: usize,
}

impl Tally {
    /// Checks an answer whose status must be exactly `status`.
    async fn expect(&mut self, what: &str, api: bool, resp: Response, status: u16) {
        assert_eq!(resp.status(), status, "{what}");
        self.check(what, api, resp).await;
    }

    async fn check(&mut self, what: &str, api: bool, resp: Response) {
        self.answers += 1;
        let status = resp.status();
        assert!(status.as_u16() < 500, "{what}: {status} {:?}", resp.text().await);
        if status.is_client_error() && api {
            let kind = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
            let body = resp.text().await.unwrap();
            assert_eq!(kind.as_deref(), Some("application/problem+json"), "{what}: {status} {body}");
            let problem: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
            assert_eq!(problem["status"], status.as_u16(), "{what}: {body}");
            assert!(problem["type"].as_str().is_some_and(|t| t.starts_with("/problems/")), "{what}: {body}");
        }
    }
}

type Row = (String, String, String, i64, i64, i64, Option<String>);

async fn rows(url: &str) -> Vec<Row> {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let rows = sqlx::query_as(
        "select run_id, user_id, status, version, updated_at, cancel_requested, steps \
         from trading_agent_jobs order by run_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

/// A raw HTTP/1.1 exchange, for what a well-behaved client library refuses to send.
async fn raw(server: &Server, request: &[u8]) -> String {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer (a 413, say) and close before it has read all of it.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests_break_nothing() {
    // No workers: the victim's runs stay exactly where they are unless a request moves them.
    let server = Server::start(
        TestDb::sqlite(),
        // The rate limits on, but high enough that the requests reach what they aim at; the
        // flood meets the per-user limit of active runs instead.
        &[("WORKERS", "0"), ("RUNS_PER_MINUTE_PER_ADDRESS", "1000"), ("RUNS_PER_MINUTE_PER_USER", "1000")],
    )
    .await;
    let db_url = server.db.as_ref().unwrap().url.clone();

    // The victim: a pending run, a cancelled one, a share link and a token.
    let victim = visitor(&server).await;
    let mut victim_runs = Vec::new();
    for symbol in ["AAPL", "MSFT"] {
        let r: Value = victim
            .post(server.url("/api/trading/run"))
            .json(&json!({"symbol": symbol, "analysts": ["risk"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        victim_runs.push(r["runId"].as_str().unwrap().to_string());
    }
    let cancelled = &victim_runs[1];
    assert_eq!(
        victim.post(server.url(&format!("/api/trading/cancel/{cancelled}"))).send().await.unwrap().status(),
        200
    );
    let run = victim_runs[0].clone();
    let share: Value =
        victim.post(server.url(&format!("/api/trading/runs/{run}/shares"))).send().await.unwrap().json().await.unwrap();
    let share_id = share["id"].as_str().unwrap().to_string();
    let share_url = share["apiUrl"].as_str().unwrap().to_string();
    let html = victim
        .post(server.url("/settings/tokens"))
        .form(&[("name", "victim")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token_id = html.split("data-token=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    let before = rows(&db_url).await;
    assert_eq!(before.len(), 2);

    let attacker = visitor(&server).await;
    let attacker_cookie = {
        let page = client().get(server.url("/")).send().await.unwrap();
        page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
    };
    let anonymous = client();
    let mut t = Tally::default();
    let start = server.url("/api/trading/run");

    // Bodies.
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("not json", b"symbol=AAPL".to_vec()),
        ("truncated", br#"{"symbol": "AA"#.to_vec()),
        ("array", b"[1,2,3]".to_vec()),
        ("string", br#""AAPL""#.to_vec()),
        ("null", b"null".to_vec()),
        ("number", b"1e999".to_vec()),
        ("wrong types", br#"{"symbol": 42, "analysts": "risk"}"#.to_vec()),
        ("nested deep", format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()),
        ("duplicate keys", br#"{"symbol": "AAPL", "symbol": "MSFT"}"#.to_vec()),
        ("duplicate analysts", br#"{"symbol": "AAPL", "analysts": ["risk", "risk", "risk"]}"#.to_vec()),
        ("unknown analyst", br#"{"symbol": "AAPL", "analysts": ["oracle"]}"#.to_vec()),
        ("unknown model", br#"{"symbol": "AAPL", "modelId": "../../etc/passwd"}"#.to_vec()),
        ("bad date", br#"{"symbol": "AAPL", "asOf": "2020-02-30"}"#.to_vec()),
        ("future date", br#"{"symbol": "AAPL", "asOf": "9999-12-31"}"#.to_vec()),
        ("ancient date", br#"{"symbol": "AAPL", "asOf": "0001-01-01"}"#.to_vec()),
        ("huge depth", br#"{"symbol": "AAPL", "depth": "abyssal"}"#.to_vec()),
        ("negative budget", br#"{"symbol": "AAPL", "maxCostUsd": -1, "maxTokens": -5}"#.to_vec()),
        ("nan-ish budget", br#"{"symbol": "AAPL", "maxCostUsd": "NaN"}"#.to_vec()),
        ("unicode symbol", "{\"symbol\": \"ＡＡＰＬ\"}".as_bytes().to_vec()),
        ("rtl and zero width", "{\"symbol\": \"A\u{202e}A\u{200b}PL\"}".as_bytes().to_vec()),
        ("emoji", "{\"symbol\": \"📈\"}".as_bytes().to_vec()),
        ("nul byte", b"{\"symbol\": \"AA\\u0000PL\"}".to_vec()),
        ("lone surrogate", br#"{"symbol": "\ud800"}"#.to_vec()),
        ("invalid utf-8", b"{\"symbol\": \"\xff\xfe\"}".to_vec()),
        ("long symbol", format!("{{\"symbol\": \"{}\"}}", "A".repeat(10_000)).into_bytes()),
        ("path symbol", br#"{"symbol": "../../../data/market/AAPL"}"#.to_vec()),
        ("sql symbol", br#"{"symbol": "AAPL'; drop table trading_agent_jobs; --"}"#.to_vec()),
        (
            "many analysts",
            format!("{{\"symbol\": \"AAPL\", \"analysts\": [{}]}}", vec!["\"risk\""; 5000].join(",")).into_bytes(),
        ),
    ];
    for (what, body) in bodies {
        let resp =
            attacker.post(&start).header("content-type", "application/json").body(body).send().await.expect(what);
        t.check(what, true, resp).await;
    }
    for kind in
        ["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json; charset=utf-16", ""]
    {
        let resp =
            attacker.post(&start).header("content-type", kind).body(r#"{"symbol":"AAPL"}"#).send().await.unwrap();
        t.check(&format!("content-type {kind:?}"), true, resp).await;
    }

    // Paths and methods.
    let paths = [
        "/api/trading/progress/not-a-uuid",
        "/api/trading/progress/00000000-0000-0000-0000-000000000000",
        "/api/trading/progress/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/trading/progress/%00",
        "/api/trading/progress/%E2%80%AE",
        "/api/trading/events/not-a-uuid",
        "/api/trading/runs?page=0",
        "/api/trading/runs?page=-1&perPage=100000",
        "/api/trading/runs?status=hacked",
        "/api/trading/runs?page=99999999999999999999",
        "/api/trading/nope",
        "/api/trading/runs/not-a-uuid/shares",
        "/api/trading/share/",
        "/api/trading/share/ts_",
        "/api/trading/share/ts_' or '1'='1",
        &format!("/api/trading/share/{}", "ts_".repeat(2000)),
    ];
    for path in paths {
        t.check(path, true, attacker.get(server.url(path)).send().await.unwrap()).await;
    }
    for (method, path) in [
        (Method::PUT, "/api/trading/run"),
        (Method::DELETE, "/api/trading/run"),
        (Method::PATCH, &format!("/api/trading/cancel/{run}") as &str),
        (Method::GET, "/api/trading/cancel/x"),
        (Method::POST, "/api/trading/progress/x"),
        (Method::from_bytes(b"BREW").unwrap(), "/api/trading/run"),
    ] {
        t.check(
            &format!("{method} {path}"),
            true,
            attacker.request(method.clone(), server.url(path)).send().await.unwrap(),
        )
        .await;
    }
    // (A client resolves `..` before sending: this one arrives as `/etc/passwd`, a page.)
    for path in [
        "/api/../../etc/passwd",
        "/no-such-page",
        "/runs/not-a-uuid",
        "/share/nope",
        "/settings/../../etc/passwd",
        "/%ff%fe",
    ] {
        t.check(path, false, attacker.get(server.url(path)).send().await.unwrap()).await;
    }

    // The victim's things, by the attacker (another identity: as if they did not exist, 404)
    // and by nobody (no identity: 401). The victim reads them first, to show the requests
    // themselves are good; the victim's own writes are shown to work after the attack.
    let reads = [
        format!("/api/trading/progress/{run}"),
        format!("/api/trading/events/{run}"),
        format!("/api/trading/runs/{run}/shares"),
    ];
    for path in &reads {
        let resp = victim.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "the victim reads {path}");
    }
    for (c, status) in [(&attacker, 404), (&anonymous, 401)] {
        for path in &reads {
            t.expect(&format!("GET {path}"), true, c.get(server.url(path)).send().await.unwrap(), status).await;
        }
        for (method, path) in [
            (Method::POST, format!("/api/trading/cancel/{run}")),
            (Method::POST, format!("/api/trading/retry/{cancelled}")),
            (Method::POST, format!("/api/trading/runs/{run}/shares")),
            (Method::DELETE, format!("/api/trading/shares/{share_id}")),
        ] {
            let resp = c.request(method.clone(), server.url(&path)).send().await.unwrap();
            t.expect(&format!("{method} {path}"), true, resp, status).await;
        }
        for path in [
            format!("/runs/{run}/cancel"),
            format!("/runs/{cancelled}/retry"),
            format!("/runs/{run}/share"),
            format!("/runs/{run}/shares/{share_id}/revoke"),
            format!("/settings/tokens/{token_id}/revoke"),
        ] {
            t.expect(&path, true, c.post(server.url(&path)).send().await.unwrap(), status).await;
        }
    }

    // Cookies: forged, stale, huge, duplicated, garbage.
    let forged = format!("ta_session={}.{}", "0".repeat(32), "A".repeat(43));
    for cookie in [
        forged.as_str(),
        "ta_session=",
        "ta_session=.",
        "ta_session=nothex.sig",
        "ta_session=../../x",
        "ta_session=a; ta_session=b; ta_session=c",
        "=;=;=;;;",
        &format!("ta_session={}", "x".repeat(8000)),
    ] {
        let resp =
            client().post(&start).header("cookie", cookie).json(&json!({"symbol": "AAPL"})).send().await.unwrap();
        t.expect(&format!("cookie {}", &cookie[..cookie.len().min(40)]), true, resp, 401).await;
    }

    // Tokens and other headers.
    for auth in [
        "Bearer",
        "Bearer ",
        "Bearer ta_",
        "Bearer ta_0000000000000000000000000000000000000000000000000000000000000000",
        "Bearer ts_not-a-token",
        "bearer   ta_x   ",
        "Basic Og==",
        "Negotiate xyz",
        &format!("Bearer ta_{}", "a".repeat(10_000)),
    ] {
        let resp =
            client().post(&start).header("authorization", auth).json(&json!({"symbol": "AAPL"})).send().await.unwrap();
        // A bad bearer token, or a scheme that is not ours (so no identity): either way a 401.
        t.expect(&format!("authorization {}", &auth[..auth.len().min(30)]), true, resp, 401).await;
    }
    // Another site's writes are refused, with the attacker's own cookie (which the same
    // request without the foreign origin uses to start runs: the flood below).
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("origin", "http://[::1"),
        ("origin", &server.base.replace("http://", "https://") as &str),
        ("sec-fetch-site", "cross-site"),
    ] {
        let resp = attacker.post(&start).header(name, value).json(&json!({"symbol": "AAPL"})).send().await.unwrap();
        t.expect(&format!("{name}: {value}"), true, resp, 403).await;
    }
    for (name, value) in [
        ("idempotency-key", ""),
        ("if-none-match", "\"\u{0}\""),
        ("x-forwarded-for", "1.2.3.4, garbage, ::::"),
        ("x-forwarded-proto", "gopher"),
        ("content-length", "5"),
    ] {
        let Ok(v) = reqwest::header::HeaderValue::from_str(value) else { continue };
        let resp = attacker.post(&start).header(name, v).json(&json!({"symbol": "AAPL"})).send().await.unwrap();
        t.check(&format!("{name}: {value}"), true, resp).await;
    }
    let resp = attacker
        .post(&start)
        .header("idempotency-key", reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap())
        .json(&json!({"symbol": "AAPL"}))
        .send()
        .await
        .unwrap();
    t.check("non-ascii idempotency key", true, resp).await;

    // Server functions, at the URLs Leptos gave them.
    let functions = [
        app::api::StartRun::PATH,
        app::api::CancelRun::PATH,
        app::api::RetryRun::PATH,
        app::api::RunProgress::PATH,
        app::api::ListRuns::PATH,
    ];
    for path in functions {
        for (what, kind, body) in [
            ("empty", "application/x-www-form-urlencoded", String::new()),
            ("garbage", "application/x-www-form-urlencoded", "%%%&&&===".to_string()),
            ("wrong field", "application/x-www-form-urlencoded", "request[symbol][x][y]=1".to_string()),
            ("victim's run", "application/x-www-form-urlencoded", format!("run_id={run}")),
            ("json", "application/json", r#"{"run_id": 5}"#.to_string()),
        ] {
            let resp = attacker.post(server.url(path)).header("content-type", kind).body(body).send().await.unwrap();
            t.check(&format!("{path} {what}"), true, resp).await;
        }
    }
    // Native forms with junk.
    for (path, body) in [
        ("/", "symbol=%FF&analysts=%00&asOf=x"),
        ("/", &"a=".repeat(50_000) as &str),
        ("/settings/tokens", "name=%00%01"),
    ] {
        let resp = attacker
            .post(server.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        t.check(&format!("form {path}"), false, resp).await;
    }

    // Slow and broken requests, at the socket: a body that never finishes, a header section
    // cut short, and a request line that is not HTTP. The server answers others meanwhile.
    let addr = server.base.trim_start_matches("http://").to_string();
    let oversized = format!("{{\"symbol\": \"AAPL\", \"pad\": \"{}\"}}", "x".repeat(200_000));
    let cookie = attacker_cookie.clone();
    let answer = raw(
        &server,
        format!(
            "POST /api/trading/run HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{oversized}",
            oversized.len()
        )
        .as_bytes(),
    )
    .await;
    t.answers += 1;
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(300)]);
    assert!(answer.to_ascii_lowercase().contains("content-type: application/problem+json"), "{answer}");
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /api/trading/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"sym").await.unwrap();
    let mut cut = tokio::net::TcpStream::connect(&addr).await.unwrap();
    cut.write_all(b"GET /api/trading/models HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    t.check("while slow clients wait", true, attacker.get(server.url("/api/trading/models")).send().await.unwrap())
        .await;
    drop((slow, cut));
    for request in [
        &b"HELLO\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /api/trading/run HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /api/trading/run HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n",
    ] {
        let answer = raw(&server, request).await;
        t.answers += 1;
        assert!(!answer.starts_with("HTTP/1.1 5"), "{:?}: {answer}", String::from_utf8_lossy(request));
    }

    // Floods: many starts and many cross-site posts at once from one identity.
    let floods = (0..40).map(|i| {
        let c = attacker.clone();
        let start = start.clone();
        async move {
            let req = c.post(&start).json(&json!({"symbol": "NVDA", "analysts": ["risk"]}));
            if i % 2 == 0 { req.header("origin", "https://evil.example") } else { req }.send().await.unwrap()
        }
    });
    let answers = futures::future::join_all(floods).await;
    let (mut limited, mut refused) = (0, 0);
    for (i, resp) in answers.into_iter().enumerate() {
        let status = resp.status().as_u16();
        limited += usize::from(status == 429);
        refused += usize::from(status == 403);
        if i % 2 == 0 {
            t.expect("cross-site flood", true, resp, 403).await;
        } else {
            assert!(matches!(status, 202 | 429), "flood: {status}");
            t.check("flood", true, resp).await;
        }
    }
    assert!(limited > 0, "the flood met a limit");
    assert_eq!(refused, 20, "every cross-site post of the flood was refused");

    assert!(t.answers >= 80, "{} hostile requests", t.answers);
    // The server is still well, and the victim's runs are exactly as they were.
    assert_eq!(victim.get(server.url("/readyz")).send().await.unwrap().status(), 200);
    let after = rows(&db_url).await;
    let after: Vec<&Row> = after.iter().filter(|r| before.iter().any(|b| b.0 == r.0)).collect();
    assert_eq!(after, before.iter().collect::<Vec<_>>());
    let listed: Value = victim.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["total"], 2);
    assert_eq!(anonymous.get(server.url(&share_url)).send().await.unwrap().status(), 200, "the share link still works");

    // After all that, the victim's runs are still theirs alone: unreadable by the attacker and
    // by nobody, readable, cancellable and shareable by the victim — whose writes, refused to
    // the others above, succeed.
    for path in &reads {
        assert_eq!(attacker.get(server.url(path)).send().await.unwrap().status(), 404, "{path}");
        assert_eq!(anonymous.get(server.url(path)).send().await.unwrap().status(), 401, "{path}");
    }
    let progress: Value = victim.get(server.url(&reads[0])).send().await.unwrap().json().await.unwrap();
    assert_eq!((progress["runId"].as_str(), progress["status"].as_str()), (Some(run.as_str()), Some("pending")));
    let resp = victim.delete(server.url(&format!("/api/trading/shares/{share_id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 204, "the victim revokes the link");
    let resp = victim.post(server.url(&format!("/api/trading/cancel/{run}"))).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the victim cancels the queued run");
    let resp = victim.post(server.url(&format!("/api/trading/retry/{cancelled}"))).send().await.unwrap();
    assert_eq!(resp.status(), 202, "the victim retries the cancelled run");
    let resp = victim.post(server.url(&format!("/settings/tokens/{token_id}/revoke"))).send().await.unwrap();
    assert_eq!(resp.url().path(), "/settings", "the victim revokes the token");
}

/// A server function's body over the 64 KiB limit is the same `413` problem as the REST API's,
/// whether its length is declared or it arrives in chunks, and nothing is logged as an error:
/// it is the client's mistake. The same call with a small body starts the run.
#[tokio::test]
async fn oversized_server_function_bodies_are_413_problems() {
    let (server, logs) = Server::start_logged(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let c = visitor(&server).await;
    let url = server.url(app::api::StartRun::PATH);
    let form = "application/x-www-form-urlencoded";
    let small = c.post(&url).header("content-type", form).body("request[symbol]=AAPL").send().await.unwrap();
    assert_eq!(small.status(), 200, "{:?}", small.text().await);

    let big = format!("request[symbol]=AAPL&pad={}", "x".repeat(100 * 1024));
    let declared = c.post(&url).header("content-type", form).body(big.clone()).send().await.unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big.as_bytes().chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let chunked = c
        .post(&url)
        .header("content-type", form)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    for (what, resp) in [("declared length", declared), ("chunked", chunked)] {
        assert_eq!(resp.status(), 413, "{what}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "{what}");
        // The rest of the body was not read: the client must not send another request down
        // this connection (it did, now and then, and met the server closing it).
        assert_eq!(resp.headers()["connection"], "close", "{what}");
        let problem: Value = resp.json().await.unwrap();
        assert_eq!((problem["status"].as_u64(), problem["type"].as_str()), (Some(413), Some("/problems/too-large")));
    }
    let listed: Value = c.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["total"], 1, "only the small call started a run");
    let lines = logs.settle(&server, "after-oversized").await;
    assert_eq!(common::Logs::errors(&lines), Vec::<&String>::new(), "no error logged");
}

/// Connections that never finish their request head are closed once `HEADER_READ_TIMEOUT_SECS`
/// has passed: one that sends nothing, one that stops in the middle of a header, one that
/// trickles a header byte by byte. The deadline allows ten times the timeout, for a slow
/// machine; the server is never quicker than the timeout. A whole request on a fresh
/// connection is still answered. A worker's metrics listener closes half a header too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_their_headers_are_closed() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let server = Server::start(TestDb::sqlite(), &[("WORKERS", "0"), ("HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let opened = std::time::Instant::now();
    let idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /api/trading/models HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut trickle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    trickle.write_all(b"GET /api/trading/models HTTP/1.1\r\nHost: x\r\nX-Trickle: ").await.unwrap();

    // Each is closed: its read ends (or the peer resets it) before the deadline.
    let deadline = tokio::time::Instant::now() + 10 * TIMEOUT;
    let closed = |mut stream: tokio::net::TcpStream| async move {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed()),
                // Whatever the server says before it closes (a 408, say), it is not a 2xx.
                Ok(Ok(n)) => assert!(!String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 2")),
            }
        }
    };
    // One more header byte every 100 ms: the head keeps growing, and the timeout still ends it.
    let trickling = async move {
        let (mut reader, mut writer) = trickle.into_split();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return Some(opened.elapsed()),
                    Ok(n) => assert!(!String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 2")),
                },
                _ = tick.tick() => if writer.write_all(b"x").await.is_err() {
                    return Some(opened.elapsed());
                },
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    };
    let (idle, half, trickled) = tokio::join!(closed(idle), closed(half), trickling);
    for (what, after) in [("idle", idle), ("half a header", half), ("trickled header", trickled)] {
        let after = after.unwrap_or_else(|| panic!("{what}: still open after {:?}", 10 * TIMEOUT));
        assert!(after >= TIMEOUT, "{what}: closed after {after:?}, before the timeout");
    }
    let resp = client().get(server.url("/api/trading/models")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // A worker's metrics listener is held to the same timeout.
    let db_url = server.db.as_ref().unwrap().url.clone();
    let args = ["worker", "--workers", "1", "--metrics-addr", "127.0.0.1:0"];
    let mut worker = common::command(&db_url, &args, &[("HEADER_READ_TIMEOUT_SECS", "1")]).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(worker.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
    let line = line.expect("the worker printed its metrics address within 60 s").unwrap().unwrap();
    let metrics = line.strip_prefix("metrics on http://").expect("the metrics line").trim().to_string();
    let opened = std::time::Instant::now();
    let mut half = tokio::net::TcpStream::connect(&metrics).await.unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(10 * TIMEOUT, half.read(&mut buf)).await;
    let read = read.unwrap_or_else(|_| panic!("the metrics listener kept half a header for {:?}", 10 * TIMEOUT));
    assert!(matches!(read, Ok(0) | Err(_)), "closed, not answered: {read:?}");
    assert!(opened.elapsed() >= TIMEOUT, "closed after {:?}, before the timeout", opened.elapsed());
}
