//! Batches over HTTP against the real binary: eight symbols under a limit of three active runs
//! (never more than three running, all eight completed, each an ordinary run of the history),
//! bad batches named field by field, cancelling a batch, and a batch started from the
//! new-analysis form.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{Server, visitor};
use jobs::testing::TestDb;
use serde_json::{Value, json};

const EIGHT: [&str; 8] = ["AAPL", "AMZN", "GOOG", "META", "NFLX", "NVDA", "IBM", "MSFT"];

async fn post(c: &reqwest::Client, server: &Server, path: &str, body: Value) -> (u16, Value) {
    let resp = c.post(server.url(path)).json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn get(c: &reqwest::Client, server: &Server, path: &str) -> Value {
    let resp = c.get(server.url(path)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// Polls the batch until it is no longer running; the most runs seen running at once.
async fn wait_for_batch(c: &reqwest::Client, server: &Server, id: &str, limit: Duration) -> (Value, u64) {
    let start = Instant::now();
    let mut most = 0;
    loop {
        let body = get(c, server, &format!("/api/trading/batches/{id}")).await;
        let running = body["runs"].as_array().unwrap().iter().filter(|r| r["status"] == "running").count() as u64;
        assert_eq!(body["totals"]["running"], running, "{body}");
        most = most.max(running);
        if body["status"] != "running" {
            return (body, most);
        }
        assert!(start.elapsed() < limit, "batch still running: {}", body["totals"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post_form(c: &reqwest::Client, server: &Server, body: &str) -> reqwest::Response {
    let form = c.post(server.url("/")).header("content-type", "application/x-www-form-urlencoded");
    form.body(body.to_string()).send().await.unwrap()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap_or_else(|| panic!("a time: {v}")).parse().unwrap()
}

/// The most runs that were running at one moment, from when each started and ended.
fn most_at_once(spans: &[(DateTime<Utc>, DateTime<Utc>)]) -> usize {
    spans.iter().map(|(t, _)| spans.iter().filter(|(s, e)| s <= t && t < e).count()).max().unwrap_or(0)
}

#[tokio::test]
async fn eight_symbols_under_a_limit_of_three_sqlite() {
    eight_symbols_under_a_limit_of_three(TestDb::sqlite()).await;
}

#[tokio::test]
async fn eight_symbols_under_a_limit_of_three_postgres() {
    eight_symbols_under_a_limit_of_three(TestDb::postgres().await).await;
}

/// A batch of eight with a limit of three active runs and eight workers: never more than
/// three of its runs run at once (seen while polling, and from the runs' own start and end
/// times), yet three do; all eight complete in the order given, rated; each is a run of the
/// history carrying its batch; the totals add up; the ETag gives 304s, the CSV keeps the
/// table's order, and someone else gets a 404.
async fn eight_symbols_under_a_limit_of_three(db: TestDb) {
    let server =
        Server::start(db, &[("SIMULATED_LATENCY_MS", "150"), ("WORKERS", "8"), ("MAX_ACTIVE_JOBS_PER_USER", "3")])
            .await;
    let c = visitor(&server).await;
    let resp = c
        .post(server.url("/api/trading/batches"))
        .json(&json!({"symbols": EIGHT, "analysts": ["invest", "technical"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let started: Value = resp.json().await.unwrap();
    let id = started["batchId"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/trading/batches/{id}"));
    let run_ids: Vec<String> =
        started["runs"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    assert_eq!(run_ids.len(), 8);
    // A run of its own is still the user's to start: the batch's runs wait under their own cap.
    let (status, alone) = post(&c, &server, "/api/trading/run", json!({"symbol": "AAPL", "analysts": ["risk"]})).await;
    assert_eq!(status, 202, "{alone}");

    let (body, most_polled) = wait_for_batch(&c, &server, &id, Duration::from_secs(120)).await;
    assert!(most_polled <= 3, "{most_polled} running at once");
    assert_eq!(body["status"], "completed");
    let runs = body["runs"].as_array().unwrap();
    let symbols: Vec<&str> = runs.iter().map(|r| r["symbol"].as_str().unwrap()).collect();
    assert_eq!(symbols, EIGHT, "in the order given");
    let mut spans = Vec::new();
    let mut cost = 0.0;
    for (run, id_given) in runs.iter().zip(&run_ids) {
        assert_eq!(run["runId"].as_str().unwrap(), id_given);
        assert_eq!(run["status"], "completed", "{run}");
        let progress = get(&c, &server, &format!("/api/trading/progress/{id_given}")).await;
        assert_eq!(progress["batchId"], id.as_str());
        assert_eq!(run["rating"], progress["result"]["rating"]);
        assert_eq!(run["confidence"], progress["result"]["confidence"]);
        cost += run["costUsd"].as_f64().unwrap();
        spans.push((time(&progress["startedAt"]), time(&progress["completedAt"])));
    }
    let most = most_at_once(&spans);
    assert_eq!(most, 3, "at most three at once, and three did run together: {spans:?}");
    // The runs started in the order of the symbols.
    let starts: Vec<_> = spans.iter().map(|(s, _)| *s).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    let totals = &body["totals"];
    assert_eq!((totals["runs"].as_u64(), totals["completed"].as_u64()), (Some(8), Some(8)));
    assert_eq!((totals["pending"].as_u64(), totals["failed"].as_u64()), (Some(0), Some(0)));
    assert!((totals["costUsd"].as_f64().unwrap() - cost).abs() < 1e-9);

    // Runs of the history like any other: the eight and the one started alone.
    let history = get(&c, &server, "/api/trading/runs?perPage=50").await;
    assert_eq!(history["total"], 9, "{history}");
    let listed = get(&c, &server, "/api/trading/batches").await;
    assert_eq!(listed["batches"][0]["batchId"], id.as_str());
    assert_eq!(listed["batches"][0]["symbols"].as_array().unwrap().len(), 8);

    let resp = c.get(server.url(&format!("/api/trading/batches/{id}"))).send().await.unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    assert!(resp.headers().get("retry-after").is_none(), "a finished batch is not polled again");
    let again = c.get(server.url(&format!("/api/trading/batches/{id}"))).header("if-none-match", &etag);
    assert_eq!(again.send().await.unwrap().status(), 304);

    // The download, most confident first, as the page's table with `?sort=-confidence`.
    let csv = c.get(server.url(&format!("/batches/{id}/runs.csv?sort=-confidence"))).send().await.unwrap();
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "symbol,run_id,status,percent,rating,confidence,cost_usd");
    assert_eq!(lines.len(), 9);
    let confidences: Vec<f64> = lines[1..].iter().map(|l| l.split(',').nth(5).unwrap().parse().unwrap()).collect();
    assert!(confidences.windows(2).all(|w| w[0] >= w[1]), "{confidences:?}");
    let bad = c.get(server.url(&format!("/batches/{id}/runs.csv?sort=mood"))).send().await.unwrap();
    assert_eq!(bad.status(), 400);

    let page = c.get(server.url(&format!("/batches/{id}?sort=rating"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert_eq!(html.matches("<tr data-run=").count(), 8);
    assert!(html.contains("Completed · 8 of 8 runs ended (100%)"), "the page's totals");
    assert!(!html.contains("http-equiv=\"refresh\""), "a finished batch's page stays put");

    let stranger = visitor(&server).await;
    let resp = stranger.get(server.url(&format!("/api/trading/batches/{id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = stranger.post(server.url(&format!("/api/trading/batches/{id}/cancel"))).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

/// Every problem of a bad batch is a 400 problem naming its field, all at once; bad ids are
/// 400s, unknown ones 404s.
#[tokio::test]
async fn bad_batches_are_400s_naming_the_fields() {
    let server = Server::start(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let c = visitor(&server).await;
    let fields = |p: &Value| -> Vec<String> {
        p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_string()).collect()
    };
    let (status, p) = post(&c, &server, "/api/trading/batches", json!({"symbols": []})).await;
    assert_eq!((status, fields(&p)), (400, vec!["symbols".to_string()]));
    let (status, p) =
        post(&c, &server, "/api/trading/batches", json!({"symbols": ["AAPL", "TSLA", "A B"], "modelId": "gpt-9"}))
            .await;
    assert_eq!(status, 400, "{p}");
    // The model's problem once, though every run would have it; each bad symbol named.
    assert_eq!(fields(&p), ["modelId", "symbols", "symbols"], "{p}");
    let messages: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert!(messages[1].starts_with("TSLA: no market data"), "{messages:?}");
    assert!(messages[2].starts_with("A B: "), "{messages:?}");
    let many: Vec<String> = (0..51).map(|i| format!("S{i}")).collect();
    let (status, p) = post(&c, &server, "/api/trading/batches", json!({ "symbols": many })).await;
    assert_eq!(status, 400);
    assert!(p["errors"][0]["message"].as_str().unwrap().starts_with("51 symbols"), "{p}");
    let (status, _) = post(&c, &server, "/api/trading/batches", json!({"symbols": "AAPL"})).await;
    assert_eq!(status, 400, "a body of the wrong shape");
    assert_eq!(get(&c, &server, "/api/trading/batches").await["batches"], json!([]), "nothing was stored");
    let resp = c.get(server.url("/api/trading/batches/not-an-id")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = c.get(server.url(&format!("/api/trading/batches/{}", uuid::Uuid::new_v4()))).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

/// Cancelling a batch with two runs running and three waiting: the waiting ones end
/// `cancelled` at once, the running ones once their workers stop them, and none other starts.
#[tokio::test]
async fn cancelling_a_batch_cancels_its_runs() {
    let server = Server::start(
        TestDb::sqlite(),
        &[("SIMULATED_LATENCY_MS", "60000"), ("WORKERS", "4"), ("MAX_ACTIVE_JOBS_PER_USER", "2")],
    )
    .await;
    let c = visitor(&server).await;
    let symbols = ["AAPL", "AMZN", "GOOG", "META", "NFLX"];
    let (status, started) = post(&c, &server, "/api/trading/batches", json!({ "symbols": symbols })).await;
    assert_eq!(status, 202, "{started}");
    let id = started["batchId"].as_str().unwrap().to_string();
    let begun = Instant::now();
    loop {
        let body = get(&c, &server, &format!("/api/trading/batches/{id}")).await;
        if body["totals"]["running"] == 2 {
            break;
        }
        assert!(begun.elapsed() < Duration::from_secs(30), "two runs never started: {}", body["totals"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, cancelled) = post(&c, &server, &format!("/api/trading/batches/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    // The three waiting end at once; a running one may already have been stopped by its
    // worker too by the time the answer is read.
    let runs = cancelled["runs"].as_array().unwrap();
    assert!(runs[2..].iter().all(|r| r["status"] == "cancelled"), "the waiting runs end at once: {runs:?}");
    assert!(runs[..2].iter().all(|r| r["status"] == "running" || r["status"] == "cancelled"), "{runs:?}");
    assert_eq!(cancelled["totals"]["pending"], 0, "{}", cancelled["totals"]);
    let (body, most) = wait_for_batch(&c, &server, &id, Duration::from_secs(30)).await;
    assert!(most <= 2);
    assert_eq!(body["status"], "cancelled");
    for run in body["runs"].as_array().unwrap() {
        assert_eq!(run["status"], "cancelled", "{run}");
    }
    let first = get(&c, &server, &format!("/api/trading/progress/{}", started["runs"][0].as_str().unwrap())).await;
    assert!(first["startedAt"].is_string(), "the first run had started: {first}");
    let last = get(&c, &server, &format!("/api/trading/progress/{}", started["runs"][4].as_str().unwrap())).await;
    assert!(last["startedAt"].is_null(), "the last never started: {last}");
}

/// The new-analysis form with a list of symbols starts a batch and leads to its page; a list
/// with a symbol the data lacks is the form again, naming it.
#[tokio::test]
async fn the_form_starts_a_batch_from_a_list_of_symbols() {
    let server = Server::start(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let c = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(c.get(server.url("/")).send().await.unwrap().status(), 200);
    let resp = post_form(&c, &server, "symbol=aapl%2C+msft%3B+nvda&model=offline&analysts=invest&depth=quick").await;
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let id = location.strip_prefix("/batches/").unwrap_or_else(|| panic!("to the batch's page: {location}"));
    let body = get(&c, &server, &format!("/api/trading/batches/{id}")).await;
    let symbols: Vec<&str> = body["runs"].as_array().unwrap().iter().map(|r| r["symbol"].as_str().unwrap()).collect();
    assert_eq!(symbols, ["AAPL", "MSFT", "NVDA"]);
    assert_eq!(body["request"]["analysts"], json!(["invest"]));
    let page = c.get(server.url(&location)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("http-equiv=\"refresh\""), "a running batch's page follows it");
    assert!(page.contains("Cancel batch"));

    let resp = post_form(&c, &server, "symbol=AAPL%2C+TSLA&model=offline&analysts=invest").await;
    assert_eq!(resp.status(), 400);
    let page = resp.text().await.unwrap();
    assert!(page.contains("TSLA: "), "the symbol field names the symbol");
    assert!(page.contains("AAPL, TSLA"), "what was typed is kept");
}
