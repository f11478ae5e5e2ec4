//! `/metrics` after real runs: a web process (`serve --workers 0`) and a worker process
//! (`worker --metrics-addr`) on one SQLite file, the model a fake provider with prices. Each
//! family is checked against what the runs' own progress bodies and this test's requests say,
//! so a counter in the wrong place, a missing path or a wrong label shows as a wrong number.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agents::testing::FakeLlm;
use common::{Server, command, visitor, wait_until_done};
use jobs::testing::TestDb;
use leptos::server_fn::ServerFn;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// One sample of the text format: name, labels, value.
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("label=value");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            Sample { name: name.to_string(), labels, value: value.parse().expect("a number") }
        })
        .collect()
}

/// The sum of a family's samples whose labels include `labels`; `None` when there is none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

async fn scrape(c: &reqwest::Client, url: &str) -> Vec<Sample> {
    let resp = c.get(url).send().await.expect("scrape");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("set-cookie").is_none(), "/metrics never sets a cookie");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    parse(&resp.text().await.expect("text"))
}

/// Three runs started three ways — REST, the native form and the Leptos server function —
/// one cancelled while queued, two run by a worker process started later. Every family of
/// both processes' `/metrics` is checked for values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_way_in_and_every_run() {
    let db = TestDb::sqlite();
    let fake = FakeLlm::start().await;
    fake.set_chunk_delay(Duration::from_millis(20));
    let catalog = common::fake_models(&fake, &[("fake", "ok")]);
    let env = [("MODEL_CATALOG", catalog.as_str()), ("FAKE_API_KEY", "sk-test"), ("SIMULATED_LATENCY_MS", "0")];
    let web = Server::start_on(&db.url, &["serve", "--workers", "0"], &env).await;
    let c = visitor(&web).await;
    let analysts = ["invest", "risk"];

    // 1. REST.
    let resp = c
        .post(web.url("/api/trading/run"))
        .json(&json!({"symbol": "AAPL", "modelId": "fake", "analysts": analysts}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let rest_id = resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string();
    // 2. The form, posted without scripts.
    let resp = c
        .post(web.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("symbol=MSFT&model=fake&analysts=invest&analysts=risk")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the 303 was followed to the run's page");
    let form_id = resp.url().path().strip_prefix("/runs/").expect("the run's page").to_string();
    // 3. The server function the page's island calls.
    let resp = c
        .post(web.url(app::api::StartRun::PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body("request[symbol]=NVDA&request[modelId]=fake&request[analysts][0]=invest")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let fn_id = resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string();
    let queued_at = Instant::now();
    let resp = c.post(web.url(&format!("/api/trading/cancel/{fn_id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 200, "a queued run is cancelled at once");

    // A stream held open on a queued run.
    let mut stream = c.get(web.url(&format!("/api/trading/events/{rest_id}"))).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    stream.chunk().await.unwrap().expect("the first event");

    let m = scrape(&c, &web.url("/metrics")).await;
    assert_eq!(get(&m, "trading_agents_runs_started_total", &[]), 3.0, "REST, form and server function");
    assert_eq!(get(&m, "trading_agents_cancels_total", &[]), 1.0);
    assert_eq!(get(&m, "trading_agents_runs_finished_total", &[("status", "cancelled")]), 1.0);
    assert_eq!(get(&m, "trading_agents_queue_depth", &[]), 2.0);
    assert_eq!(get(&m, "trading_agents_running_jobs", &[]), 0.0);
    assert_eq!(get(&m, "trading_agents_jobs", &[("status", "cancelled")]), 1.0);
    assert_eq!(get(&m, "trading_agents_open_streams", &[]), 1.0);
    assert_eq!(get(&m, "trading_agents_workers", &[]), 0.0);
    assert_eq!(
        get(
            &m,
            "trading_agents_db_statement_duration_seconds_count",
            &[("statement", "insert"), ("backend", "sqlite")]
        ),
        3.0
    );
    let route = [("route", "/api/trading/run"), ("method", "POST"), ("status", "202")];
    assert_eq!(get(&m, "trading_agents_http_request_duration_seconds_count", &route), 1.0);
    drop(stream);

    // The worker process, with its own /metrics.
    let mut cmd = command(&db.url, &["worker", "--workers", "1", "--metrics-addr", "127.0.0.1:0"], &env);
    let mut worker = cmd.spawn().expect("start a worker process");
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("the metrics line");
    let worker_metrics = format!("{}/metrics", line.strip_prefix("metrics on ").expect("metrics line").trim());
    let waited_at_least = queued_at.elapsed().as_secs_f64();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let (a, _) = wait_until_done(&c, &web, &rest_id, Duration::from_secs(60)).await;
    let (b, _) = wait_until_done(&c, &web, &form_id, Duration::from_secs(60)).await;
    assert_eq!((a["status"].as_str(), b["status"].as_str()), (Some("completed"), Some("completed")));

    // Exactly one full answer and one 304, counted by answer.
    let before = scrape(&c, &web.url("/metrics")).await;
    let url = web.url(&format!("/api/trading/progress/{rest_id}"));
    let full = c.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    let etag = full.headers()["etag"].to_str().unwrap().to_string();
    let again = c.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    let m = scrape(&c, &web.url("/metrics")).await;
    let polls = |s: &[Sample], code| get(s, "trading_agents_polls_total", &[("answer", code)]);
    assert_eq!(polls(&m, "200") - polls(&before, "200"), 1.0);
    assert_eq!(
        polls(&m, "304") - value(&before, "trading_agents_polls_total", &[("answer", "304")]).unwrap_or(0.0),
        1.0
    );
    assert_eq!(get(&m, "trading_agents_active_pollers", &[]), 2.0, "the two runs polled, not the cancelled one");
    assert_eq!(get(&m, "trading_agents_queue_depth", &[]), 0.0);
    assert_eq!(get(&m, "trading_agents_jobs", &[("status", "completed")]), 2.0);
    let progress_route = [("route", "/api/trading/progress/{run_id}"), ("status", "304")];
    assert_eq!(get(&m, "trading_agents_http_request_duration_seconds_count", &progress_route), 1.0);
    assert_eq!(get(&m, "trading_agents_open_streams", &[]), 0.0);

    // What the worker did.
    let w = scrape(&c, &worker_metrics).await;
    assert_eq!(get(&w, "trading_agents_workers", &[]), 1.0);
    assert_eq!(get(&w, "trading_agents_runs_finished_total", &[("status", "completed")]), 2.0);
    assert_eq!(value(&w, "trading_agents_runs_started_total", &[]), None, "workers start no runs");
    assert_eq!(get(&w, "trading_agents_queue_wait_seconds_count", &[]), 2.0);
    assert!(
        get(&w, "trading_agents_queue_wait_seconds_sum", &[]) >= 2.0 * waited_at_least,
        "both runs waited at least until the worker started"
    );
    assert_eq!(get(&w, "trading_agents_run_duration_seconds_count", &[("status", "completed")]), 2.0);
    let durations = (a["duration"].as_f64().unwrap() + b["duration"].as_f64().unwrap()) / 1000.0;
    let recorded = get(&w, "trading_agents_run_duration_seconds_sum", &[("status", "completed")]);
    // The histogram measures from the claim to after the final write, the runs from the claim to
    // the write itself: never less, and not seconds more.
    assert!(
        recorded >= durations - 0.002 && recorded < durations + 5.0,
        "run durations {recorded} s, the runs say {durations} s"
    );
    for step in ["Data Collection", "Invest Analyst", "Risk Analyst", "Final Assessment"] {
        assert_eq!(get(&w, "trading_agents_step_duration_seconds_count", &[("step", step)]), 2.0, "{step}");
    }
    assert_eq!(value(&w, "trading_agents_step_duration_seconds_count", &[("step", "Technical Analyst")]), None);
    // Two analysts and the final assessment per run, as the fake provider saw them.
    assert_eq!(fake.calls().len(), 6);
    // How soon each of those six steps' model began to write, and how fast it wrote: never
    // sooner than the provider's first chunk (20 ms apart here), never later than the step's end.
    let model_steps: f64 = [&a, &b]
        .iter()
        .flat_map(|r| r["steps"].as_array().unwrap().iter())
        .filter(|s| s["name"] != "Data Collection")
        .map(|s| s["durationMs"].as_f64().unwrap() / 1000.0)
        .sum();
    let fake_model = [("model", "fake")];
    assert_eq!(get(&w, "trading_agents_model_first_output_seconds_count", &fake_model), 6.0);
    let first = get(&w, "trading_agents_model_first_output_seconds_sum", &fake_model);
    assert!(first >= 6.0 * 0.02 && first <= model_steps, "first outputs after {first} s in steps of {model_steps} s");
    assert_eq!(get(&w, "trading_agents_model_output_tokens_per_second_count", &fake_model), 6.0);
    assert!(get(&w, "trading_agents_model_output_tokens_per_second_sum", &fake_model) > 0.0);
    assert_eq!(get(&w, "trading_agents_model_calls_total", &[("model", "fake")]), 6.0);
    let tokens = a["tokens"].as_f64().unwrap() + b["tokens"].as_f64().unwrap();
    assert!(tokens > 0.0);
    assert_eq!(get(&w, "trading_agents_model_tokens_total", &[("model", "fake")]), tokens);
    let cost = a["costUsd"].as_f64().unwrap() + b["costUsd"].as_f64().unwrap();
    assert!(cost > 0.0);
    let micro = get(&w, "trading_agents_model_cost_microusd_total", &[("model", "fake")]);
    assert!((micro - cost * 1e6).abs() <= 8.0, "cost {micro} µ$, the runs say {} µ$", cost * 1e6);
    // Every store operation is timed; the batched ones also say how many jobs each carried:
    // the two runs' claims and ends, and their writes. A run's writes merge what came while
    // the one before was at the database, so how many land depends on timing; each run's first
    // step is written at once, so there are at least two.
    assert!(get(&w, "trading_agents_db_statement_duration_seconds_count", &[("statement", "claim")]) >= 1.0);
    assert_eq!(get(&w, "trading_agents_db_batch_jobs_sum", &[("statement", "claim")]), 2.0);
    assert!(get(&w, "trading_agents_db_statement_duration_seconds_count", &[("statement", "finish")]) >= 1.0);
    assert_eq!(get(&w, "trading_agents_db_batch_jobs_sum", &[("statement", "finish")]), 2.0);
    assert!(get(&w, "trading_agents_db_statement_duration_seconds_count", &[("statement", "write")]) >= 1.0);
    assert!(get(&w, "trading_agents_db_batch_jobs_sum", &[("statement", "write")]) >= 2.0);
    assert_eq!(get(&w, "trading_agents_step_duration_seconds_count", &[]), 8.0, "each step's checkpoint");
    for zero in ["trading_agents_rescues_total", "trading_agents_timeouts_total", "trading_agents_retries_total"] {
        assert_eq!(value(&w, zero, &[]), None, "{zero}: nothing was rescued, timed out or retried");
    }

    // A retry is a start and a retry, through the web process.
    let resp = c.post(web.url(&format!("/api/trading/retry/{fn_id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let m = scrape(&c, &web.url("/metrics")).await;
    assert_eq!(get(&m, "trading_agents_runs_started_total", &[]), 4.0);
    assert_eq!(get(&m, "trading_agents_retries_total", &[]), 1.0);
    worker.start_kill().unwrap();
    drop(db);
}

/// With a second model for the managers (`deepModelId`), each model's calls, tokens and cost
/// count under that model: in a `standard` run of one round the Research Manager and the
/// portfolio manager (Final Assessment) are the deep model's two calls; the analyst, bull,
/// bear, trader and three risk analysts (seven) the run's model's.
#[tokio::test]
async fn model_usage_counts_under_the_model_that_answered() {
    let fake = FakeLlm::start().await;
    let catalog = common::fake_models(&fake, &[("fake", "ok"), ("fake-deep", "ok")]);
    let env = [("MODEL_CATALOG", catalog.as_str()), ("FAKE_API_KEY", "sk-test")];
    let server = Server::start(TestDb::sqlite(), &env).await;
    let c = visitor(&server).await;
    let resp = c
        .post(server.url("/api/trading/run"))
        .json(&json!({
            "symbol": "AAPL", "modelId": "fake", "deepModelId": "fake-deep", "analysts": ["risk"],
            "depth": "standard"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let run_id = resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string();
    let (done, _) = wait_until_done(&c, &server, &run_id, Duration::from_secs(60)).await;
    let _ = std::fs::remove_file(&catalog);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["llmCalls"], 9);

    let m = scrape(&c, &server.url("/metrics")).await;
    assert_eq!(get(&m, "trading_agents_model_calls_total", &[("model", "fake")]), 7.0);
    assert_eq!(get(&m, "trading_agents_model_calls_total", &[("model", "fake-deep")]), 2.0);
    let tokens = get(&m, "trading_agents_model_tokens_total", &[("model", "fake")])
        + get(&m, "trading_agents_model_tokens_total", &[("model", "fake-deep")]);
    assert_eq!(tokens, done["tokens"].as_f64().unwrap());
    let micro = get(&m, "trading_agents_model_cost_microusd_total", &[("model", "fake")])
        + get(&m, "trading_agents_model_cost_microusd_total", &[("model", "fake-deep")]);
    let cost = done["costUsd"].as_f64().unwrap();
    assert!((micro - cost * 1e6).abs() <= 8.0, "cost {micro} µ$, the run says {} µ$", cost * 1e6);
}

/// With `METRICS_TOKEN` set, the `/metrics` of a web and of a worker process answer only
/// scrapes that send it: without it, or with another token (a user's API token included), a
/// `401` problem with `WWW-Authenticate: Bearer`; with it, the text format.
#[tokio::test]
async fn a_metrics_token_keeps_metrics_to_the_scrapers_that_send_it() {
    let db = TestDb::sqlite();
    let env = [("METRICS_TOKEN", "scrape-secret")];
    let web = Server::start_on(&db.url, &["serve", "--workers", "0"], &env).await;
    let mut cmd = command(&db.url, &["worker", "--workers", "1", "--metrics-addr", "127.0.0.1:0"], &env);
    let mut worker = cmd.spawn().expect("start a worker process");
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("the metrics line");
    let worker_metrics = format!("{}/metrics", line.strip_prefix("metrics on ").expect("metrics line").trim());
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let c = reqwest::Client::new();
    for url in [web.url("/metrics"), worker_metrics] {
        for auth in [None, Some("Bearer wrong-secret"), Some("Basic c2NyYXBlLXNlY3JldA==")] {
            let mut req = c.get(&url);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{url} {auth:?}");
            assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"), "{url}");
            assert_eq!(resp.headers()["content-type"], "application/problem+json", "{url}");
            let body = resp.text().await.unwrap();
            assert!(!body.contains("trading_agents_"), "{url}: no metric leaks: {body}");
        }
        let samples = {
            let resp = c.get(&url).bearer_auth("scrape-secret").send().await.unwrap();
            assert_eq!(resp.status(), 200, "{url}");
            parse(&resp.text().await.unwrap())
        };
        assert!(value(&samples, "trading_agents_workers", &[]).is_some(), "{url}");
    }
    let _ = worker.start_kill();
}

/// The `method` label names the standard methods only: any other method a client invents is
/// counted as `other`, so a thousand long made-up methods add one series, not a thousand
/// (before, each added its own, and `/metrics` grew by every byte of them).
#[tokio::test]
async fn made_up_methods_share_one_label() {
    let server = Server::start(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let c = reqwest::Client::new();
    let before = c.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("M{i:02}{}", "X".repeat(1000)).as_bytes()).unwrap();
        let resp = c.request(method, server.url("/healthz")).send().await.unwrap();
        assert_eq!(resp.status(), 405);
    }
    let resp = c.request(reqwest::Method::PATCH, server.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let text = c.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("XXXXXXXX"), "a made-up method is a label");
    let samples = parse(&text);
    let count = "trading_agents_http_request_duration_seconds_count";
    assert_eq!(get(&samples, count, &[("method", "other"), ("status", "405")]), 50.0);
    assert_eq!(get(&samples, count, &[("method", "PATCH"), ("status", "405")]), 1.0);
    assert!(text.len() < before.len() + 20_000, "/metrics grew from {} to {} bytes", before.len(), text.len());
}
