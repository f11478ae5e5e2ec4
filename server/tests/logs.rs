//! The log of real runs with `LOG_FORMAT=json`: the server binary's stderr, parsed line by line.
//! A run that completes and one whose model refuses its key each leave their events —
//! Started, Progress at every step boundary, Completed or Failed — with fields matching what
//! the runs' progress bodies say; requests carry their id; no secret is in any line.

mod common;

use std::process::Stdio;
use std::time::Duration;

use agents::testing::FakeLlm;
use common::{command, wait_until_done};
use jobs::testing::TestDb;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const SESSION_SECRET: &str = "session-secret-0123456789-abcdefghij-KLMNOP";
const API_KEY: &str = "sk-test-api-key-9f8e7d6c5b4a";

fn events<'a>(lines: &'a [Value], message: &str, run_id: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["fields"]["message"] == message && l["fields"]["runId"] == run_id)
        .map(|l| &l["fields"])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_runs_events_and_no_secret() {
    let db = TestDb::sqlite();
    let fake = FakeLlm::start().await;
    let catalog = common::fake_models(&fake, &[("fake", "ok"), ("broken", "unauthorized")]);
    let env = [
        ("MODEL_CATALOG", catalog.as_str()),
        ("FAKE_API_KEY", API_KEY),
        ("SESSION_SECRET", SESSION_SECRET),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info,tower_http=debug"),
        ("SIMULATED_LATENCY_MS", "0"),
    ];
    let mut cmd = command(&db.url, &["serve", "--addr", "127.0.0.1:0"], &env);
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start the server");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = stdout.next_line().await.unwrap().expect("the listening line");
    let base = line.strip_prefix("listening on ").unwrap().trim().to_string();
    let stderr = child.stderr.take().unwrap();
    let collected = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut all = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            all.push(l);
        }
        all
    });
    let server = common::Server { base, child, db: None };

    let c = common::visitor(&server).await;
    let start = |model: &'static str| {
        let c = c.clone();
        let url = server.url("/api/trading/run");
        async move {
            let resp = c
                .post(url)
                .json(&json!({"symbol": "AAPL", "modelId": model, "analysts": ["invest", "risk"]}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
            let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
            (resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string(), id)
        }
    };
    let (ok_id, request_id) = start("fake").await;
    let (ok, _) = wait_until_done(&c, &server, &ok_id, Duration::from_secs(60)).await;
    assert_eq!(ok["status"], "completed");
    let (bad_id, _) = start("broken").await;
    let (bad, _) = wait_until_done(&c, &server, &bad_id, Duration::from_secs(60)).await;
    assert_eq!(bad["status"], "failed");

    // Stop the server so its stderr ends.
    common::terminate(&server.child);
    let mut child = server.child;
    tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("stops on SIGTERM").unwrap();
    let raw = collected.await.unwrap();
    let lines: Vec<Value> =
        raw.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();

    let started = events(&lines, "Started", &ok_id);
    assert_eq!(started.len(), 1, "one attempt");
    assert_eq!((started[0]["symbol"].as_str(), started[0]["modelId"].as_str()), (Some("AAPL"), Some("fake")));
    assert_eq!(started[0]["attempt"], 1);

    let progress = events(&lines, "Progress", &ok_id);
    let steps = ["Data Collection", "Invest Analyst", "Risk Analyst", "Final Assessment"];
    assert_eq!(progress.len(), 2 * steps.len(), "a start and an end per step, no ticks: {progress:?}");
    for step in steps {
        assert_eq!(progress.iter().filter(|p| p["step"] == step).count(), 2, "{step}");
    }
    let percents: Vec<u64> = progress.iter().map(|p| p["progress"].as_u64().unwrap()).collect();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert_eq!(percents.last(), Some(&100));

    let completed = events(&lines, "Completed", &ok_id);
    assert_eq!(completed.len(), 1);
    let done = completed[0];
    assert_eq!(done["llmCalls"], 3, "two analysts and the final assessment");
    assert_eq!(done["llmCalls"], ok["llmCalls"]);
    assert_eq!(done["tokens"], ok["tokens"]);
    assert!((done["cost"].as_f64().unwrap() - ok["costUsd"].as_f64().unwrap()).abs() < 1e-9);
    assert!(ok["costUsd"].as_f64().unwrap() > 0.0);
    let logged = done["durationMs"].as_i64().unwrap();
    let stored = ok["duration"].as_i64().unwrap();
    assert!((logged - stored).abs() < 250, "durationMs {logged}, the run says {stored}");
    assert!(events(&lines, "Failed", &ok_id).is_empty());

    let failed = events(&lines, "Failed", &bad_id);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["error"], bad["error"], "the error the user sees");
    assert!(events(&lines, "Completed", &bad_id).is_empty());
    assert_eq!(events(&lines, "Started", &bad_id).len(), 1);

    // The POST's lines carry the id its answer named.
    assert!(
        lines.iter().any(|l| l["span"]["requestId"] == request_id.as_str()),
        "no line carries request id {request_id}"
    );
    for line in &raw {
        assert!(!line.contains(SESSION_SECRET), "the session secret leaked: {line}");
        assert!(!line.contains(API_KEY), "the API key leaked: {line}");
    }
}

/// A path segment longer than a file name may be (255 bytes) is a quiet `404` — the not-found
/// page, or the API's problem — and is never logged whole: no line holds it, and none is an
/// error. The request is still in the log, under its path cut short.
#[tokio::test]
async fn overlong_path_segments_are_quiet_404s() {
    let (server, logs) = common::Server::start_logged(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let c = common::visitor(&server).await;
    let long = "a".repeat(300);
    let huge = "b".repeat(20_000);
    // (A malformed run or backtest id is a 400 problem naming it, whatever its length.)
    for (path, status, api) in [
        (format!("/{long}"), 404, false),
        (format!("/{huge}"), 404, false),
        (format!("/runs/{long}"), 404, false),
        (format!("/pkg/{long}.js"), 404, false),
        (format!("/backtests/{huge}/cells.csv"), 400, true),
        (format!("/api/trading/progress/{long}"), 400, true),
        (format!("/api/{huge}"), 404, true),
    ] {
        let resp = c.get(server.url(&path)).header("x-request-id", "long-path").send().await.unwrap();
        let what = &path[..path.len().min(30)];
        assert_eq!(resp.status(), status, "{what}");
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        if api {
            assert_eq!(kind, "application/problem+json", "{what}");
        } else {
            assert!(kind.starts_with("text/html"), "{what}: {kind}");
        }
    }
    let lines = logs.settle(&server, "after-long-paths").await;
    assert_eq!(common::Logs::errors(&lines), Vec::<&String>::new(), "no error logged");
    let logged: Vec<&String> = lines.iter().filter(|l| l.contains("long-path")).collect();
    assert!(!logged.is_empty(), "the requests are in the log");
    for line in &lines {
        let start: String = line.chars().take(300).collect();
        assert!(!line.contains(&long[..256]), "a path logged whole: {start}…");
        assert!(line.len() < 4096, "a line of {} bytes: {start}…", line.len());
    }
}

/// A client's `X-Request-Id` is kept — echoed in the answer and carried by the request's log
/// lines — only when it is short (at most 64 characters) and plain (letters, digits, `-`, `_`,
/// `.`, `:`); any other gets a fresh UUID in its place, and is neither echoed nor logged.
#[tokio::test]
async fn request_ids_are_kept_only_when_short_and_plain() {
    let (server, logs) = common::Server::start_logged(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let c = reqwest::Client::new();
    let answered = |id: reqwest::header::HeaderValue| {
        let req = c.get(server.url("/api/trading/models")).header("x-request-id", id);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.headers()["x-request-id"].to_str().unwrap().to_string()
        }
    };
    let plain = format!("req-1.2:{}", "Z".repeat(56));
    assert_eq!(plain.len(), 64);
    assert_eq!(answered(reqwest::header::HeaderValue::from_str(&plain).unwrap()).await, plain);
    let too_long = format!("{plain}x");
    let hostile = [
        too_long.clone(),
        "x".repeat(10_000),
        "two words".to_string(),
        "<script>alert(1)</script>".to_string(),
        "id\"} {\"level\":\"ERROR".to_string(),
        "%0d%0aSet-Cookie:x".to_string(),
    ];
    for id in &hostile {
        let got = answered(reqwest::header::HeaderValue::from_str(id).unwrap()).await;
        assert_ne!(&got, id);
        assert!(uuid::Uuid::parse_str(&got).is_ok(), "{id:.40}: a fresh UUID, not {got}");
    }
    let non_ascii = reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap();
    assert!(uuid::Uuid::parse_str(&answered(non_ascii).await).is_ok());

    let lines = logs.settle(&server, "after-request-ids").await;
    assert!(lines.iter().any(|l| l.contains(&plain)), "a plain id is in the log");
    for id in &hostile {
        assert!(!lines.iter().any(|l| l.contains(id.as_str())), "{id:.40} was logged");
    }
}
