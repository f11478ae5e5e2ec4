//! Backtests over HTTP against the real binary: bad grids named field by field, a backtest
//! from start to scorecard (ETag, 304, the list), an interactive run beside it, cancelling,
//! and a server killed with SIGKILL mid-backtest that resumes without re-running a finished
//! cell.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::{Server, visitor};
use domain::JobStatus;
use jobs::testing::TestDb;
use serde_json::{Value, json};

async fn post(c: &reqwest::Client, server: &Server, path: &str, body: Value) -> (u16, Value, String) {
    let resp = c.post(server.url(path)).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let kind = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, resp.json().await.unwrap_or(Value::Null), kind)
}

fn fields(problem: &Value) -> BTreeSet<String> {
    problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_string()).collect()
}

/// Polls the backtest until it is no longer running.
async fn wait_for_backtest(c: &reqwest::Client, server: &Server, id: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let body: Value =
            c.get(server.url(&format!("/api/trading/backtests/{id}"))).send().await.unwrap().json().await.unwrap();
        if body["status"] != "running" {
            return body;
        }
        assert!(start.elapsed() < limit, "backtest still running: {}", body["progress"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every problem of a bad grid is a 400 problem naming its field, all at once.
#[tokio::test]
async fn bad_grids_are_400s_naming_the_fields() {
    let server = Server::start(TestDb::sqlite(), &[("MAX_BACKTEST_CELLS", "20"), ("WORKERS", "0")]).await;
    let c = visitor(&server).await;
    let cases = [
        // An unknown symbol, and no room for the 20-day horizon after the data's end.
        (
            json!({"symbols": ["TSLA", "NVDA"], "from": "2023-09-01", "to": "2023-09-21", "everyDays": 5}),
            vec!["horizons", "symbols"],
        ),
        // Dates that are not dates, an unknown model and depth.
        (
            json!({"symbols": ["AAPL"], "from": "soon", "modelId": "gpt-9", "depth": "abyssal"}),
            vec!["depth", "from", "modelId", "to"],
        ),
        // Before the data begins and after it ends (and far too many cells for 20).
        (json!({"symbols": ["MSFT"], "from": "1990-01-01", "to": "2015-01-01"}), vec!["everyDays", "from", "to"]),
        // 2 symbols × 13 dates = 26 cells, over the maximum of 20.
        (
            json!({"symbols": ["AAPL", "NVDA"], "from": "2019-01-01", "to": "2019-12-31", "everyDays": 20}),
            vec!["everyDays"],
        ),
        (
            json!({"symbols": [], "from": "2019-01-01", "to": "2019-12-31", "horizons": [0]}),
            vec!["horizons", "symbols"],
        ),
    ];
    for (body, expected) in cases {
        let (status, problem, kind) = post(&c, &server, "/api/trading/backtests", body.clone()).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(kind, "application/problem+json");
        let expected: BTreeSet<String> = expected.into_iter().map(String::from).collect();
        assert_eq!(fields(&problem), expected, "{body}: {problem}");
    }
    let (status, _, _) = post(&c, &server, "/api/trading/backtests", json!({"symbols": "AAPL"})).await;
    assert_eq!(status, 400, "a body of the wrong shape");
    let resp = c.get(server.url("/api/trading/backtests/not-an-id")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = c.get(server.url(&format!("/api/trading/backtests/{}", uuid::Uuid::new_v4()))).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

/// A small backtest runs to its scorecard: every cell completed with a rating and its forward
/// and benchmark returns, ratings counted per horizon, the strategy and baselines measured.
/// An interactive run started meanwhile is accepted (cells are outside the limit of 3) and
/// cells are not listed among the runs. The ETag gives 304s; someone else gets a 404.
#[tokio::test]
async fn a_backtest_runs_to_its_scorecard_sqlite() {
    runs_to_its_scorecard(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_backtest_runs_to_its_scorecard_postgres() {
    runs_to_its_scorecard(TestDb::postgres().await).await;
}

async fn runs_to_its_scorecard(db: TestDb) {
    let server = Server::start(db, &[("SIMULATED_LATENCY_MS", "0"), ("WORKERS", "4")]).await;
    let c = visitor(&server).await;
    let (status, started, _) = post(
        &c,
        &server,
        "/api/trading/backtests",
        json!({"symbols": ["AAPL", "NVDA"], "from": "2019-01-01", "to": "2019-03-01", "everyDays": 20,
               "analysts": ["invest", "technical"]}),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["cells"], 6);
    let id = started["backtestId"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let (status, run, _) =
            post(&c, &server, "/api/trading/run", json!({"symbol": "MSFT", "analysts": ["risk"]})).await;
        assert_eq!(status, 202, "{run}");
    }
    let body = wait_for_backtest(&c, &server, &id, Duration::from_secs(120)).await;
    assert_eq!(body["status"], "completed");
    assert_eq!(body["progress"], 100);
    let cells = body["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 6);
    let dates: Vec<&str> = cells.iter().take(3).map(|c| c["asOf"].as_str().unwrap()).collect();
    assert_eq!(dates, ["2019-01-02", "2019-01-31", "2019-03-01"]);
    for cell in cells {
        assert_eq!(cell["status"], "completed", "{cell}");
        assert!(cell["rating"].is_string(), "{cell}");
        // The forward returns are the bundled file's own: adjusted close h trading days after
        // the cell's day over its close.
        let closes = adjusted_closes(cell["symbol"].as_str().unwrap());
        let day = closes.iter().rposition(|(d, _)| d.as_str() <= cell["asOf"].as_str().unwrap()).unwrap();
        for h in [5usize, 20] {
            let expected = closes[day + h].1 / closes[day].1 - 1.0;
            let got = cell["forwardReturns"][h.to_string()].as_f64().unwrap();
            assert!((got - expected).abs() < 1e-9, "{h}-day return {got}, the file says {expected}: {cell}");
        }
        assert!(cell["benchmarkReturns"]["20"].is_f64(), "{cell}");
        let run = c
            .get(server.url(&format!("/api/trading/progress/{}", cell["runId"].as_str().unwrap())))
            .send()
            .await
            .unwrap();
        let run: Value = run.json().await.unwrap();
        assert_eq!(run["result"]["rating"], cell["rating"]);
        assert_eq!(run["result"]["asOf"], cell["asOf"]);
    }
    let card = &body["scorecard"];
    assert_eq!(card["benchmark"], json!({"kind": "index", "symbol": "^GSPC"}));
    for h in [5, 20] {
        let counted: u64 = card["byRating"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["horizon"] == h)
            .map(|s| s["count"].as_u64().unwrap())
            .sum();
        assert_eq!(counted, 6, "every cell is counted once per horizon");
    }
    // Each rating's mean return is the mean of its cells' returns.
    for stats in card["byRating"].as_array().unwrap() {
        let h = stats["horizon"].to_string();
        let returns: Vec<f64> = cells
            .iter()
            .filter(|c| c["rating"] == stats["rating"])
            .map(|c| c["forwardReturns"][&h].as_f64().unwrap())
            .collect();
        assert_eq!(stats["count"], returns.len(), "{stats}");
        if !returns.is_empty() {
            let mean = returns.iter().sum::<f64>() / returns.len() as f64;
            assert!((stats["meanReturn"].as_f64().unwrap() - mean).abs() < 1e-9, "{stats}: mean of {returns:?}");
        }
    }
    assert!(card["strategy"]["cumulativeReturn"].is_f64(), "{card}");
    for b in ["buyAndHold", "smaCrossover", "macd"] {
        assert!(card["baselines"][b]["sharpe"].is_f64(), "{b}: {card}");
    }

    // ETag and 304.
    let resp = c.get(server.url(&format!("/api/trading/backtests/{id}"))).send().await.unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let resp =
        c.get(server.url(&format!("/api/trading/backtests/{id}"))).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(resp.status(), 304);

    let list: Value = c.get(server.url("/api/trading/backtests")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["backtests"].as_array().unwrap().len(), 1);
    assert_eq!(list["backtests"][0]["backtestId"], id.as_str());
    let runs: Value = c.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(runs["total"], 3, "only the interactive runs are listed");

    let other = visitor(&server).await;
    let resp = other.get(server.url(&format!("/api/trading/backtests/{id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let list: Value = other.get(server.url("/api/trading/backtests")).send().await.unwrap().json().await.unwrap();
    assert!(list["backtests"].as_array().unwrap().is_empty());
}

/// Cancelling a backtest cancels its pending cells at once; it ends `cancelled`.
#[tokio::test]
async fn cancelling_cancels_pending_cells() {
    let server = Server::start(TestDb::sqlite(), &[("SIMULATED_LATENCY_MS", "200"), ("WORKERS", "1")]).await;
    let c = visitor(&server).await;
    let (status, started, _) = post(
        &c,
        &server,
        "/api/trading/backtests",
        json!({"symbols": ["AAPL"], "from": "2019-01-01", "to": "2019-12-31", "everyDays": 20}),
    )
    .await;
    assert_eq!(status, 202);
    let id = started["backtestId"].as_str().unwrap().to_string();
    let (status, view, _) = post(&c, &server, &format!("/api/trading/backtests/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{view}");
    let cancelled = view["cells"].as_array().unwrap().iter().filter(|c| c["status"] == "cancelled").count();
    assert!(cancelled >= 11, "the pending cells are cancelled at once: {cancelled} of 13");
    let body = wait_for_backtest(&c, &server, &id, Duration::from_secs(30)).await;
    assert_eq!(body["status"], "cancelled");
    assert!(body["cells"].as_array().unwrap().iter().all(|c| c["status"] != "pending" && c["status"] != "running"));
}

/// SIGKILL in the middle of a backtest: after a restart the backtest completes, and no cell
/// that had finished before the kill ran again (same version, one attempt).
#[tokio::test]
async fn killed_mid_backtest_resumes_without_rerunning_finished_cells() {
    let db = TestDb::sqlite();
    let env = [("SIMULATED_LATENCY_MS", "150"), ("WORKERS", "2"), ("LEASE_SECS", "6")];
    let mut server = Server::start_on(&db.url, &["serve"], &env).await;
    let c = visitor(&server).await;
    let (status, started, _) = post(
        &c,
        &server,
        "/api/trading/backtests",
        json!({"symbols": ["AAPL", "NVDA"], "from": "2019-01-01", "to": "2019-06-28", "everyDays": 20,
               "analysts": ["invest", "risk"]}),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let cells = started["cells"].as_u64().unwrap();
    let id: domain::BacktestId = started["backtestId"].as_str().unwrap().parse().unwrap();
    let store = common::Records::open(&db).await;
    let start = Instant::now();
    let before = loop {
        let rows = store.cells(id).await;
        let done: Vec<_> = rows.iter().filter(|r| r.status == JobStatus::Completed).cloned().collect();
        if done.len() >= 3 {
            break rows;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "cells did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    server.child.start_kill().unwrap(); // SIGKILL: no goodbye, no release
    server.child.wait().await.unwrap();
    let finished: HashMap<_, _> = before
        .iter()
        .filter(|r| r.status == JobStatus::Completed)
        .map(|r| (r.run_id, (r.version, r.attempt, r.progress.usage.calls)))
        .collect();
    assert!((finished.len() as u64) < cells, "the kill came mid-backtest");

    let server = Server::start_on(&db.url, &["serve"], &env).await;
    let body = wait_for_backtest(&c, &server, &id.to_string(), Duration::from_secs(120)).await;
    assert_eq!(body["status"], "completed", "{body}");
    let after = store.cells(id).await;
    assert_eq!(after.len() as u64, cells);
    assert!(after.iter().all(|r| r.status == JobStatus::Completed));
    for r in &after {
        if let Some(&(version, attempt, calls)) = finished.get(&r.run_id) {
            assert_eq!(
                (r.version, r.attempt, r.progress.usage.calls),
                (version, attempt, calls),
                "cell {} ran again",
                r.run_id
            );
        }
    }
    drop(server);
}

/// The page works as a client without scripts sees it: the whole page in the HTML, its only
/// scripts the site's frame's, under the response's nonce; the form posted
/// natively (a `400` with each field's error, or a `303` to the backtest's page), the page
/// refreshing itself while the backtest runs, then the grid linking each cell to its run, the
/// scorecard, the SVG equity chart with the strategy and three baselines, and the cells as CSV.
#[tokio::test]
async fn the_page_works_without_scripts() {
    let server = Server::start(TestDb::sqlite(), &[("SIMULATED_LATENCY_MS", "0"), ("WORKERS", "4")]).await;
    let c = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = c.get(server.url("/backtests")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"<form method="post" action="/backtests""#), "{html}");
    assert!(!html.contains("<template") && !html.contains("Loading…"), "the whole page: {html}");
    let nonce = csp.split("'nonce-").nth(1).and_then(|r| r.split('\'').next()).expect("a nonce in the CSP");
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        assert!(tag.contains(&format!(r#"nonce="{nonce}""#)), "a script without this response's nonce: {tag}");
    }

    let form = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(',', "%2C").replace(' ', "+")))
            .collect::<Vec<_>>()
            .join("&")
    };
    let bad = form(&[
        ("symbols", "TSLA"),
        ("from", "2019-01-01"),
        ("to", "2019-03-01"),
        ("everyDays", "x"),
        ("horizons", "5, 20"),
    ]);
    let resp = c
        .post(server.url("/backtests"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"id="everyDays-error""#) && html.contains("not a whole number"), "{html}");
    assert!(html.contains(r#"value="TSLA""#), "what was sent is kept: {html}");

    let good = form(&[
        ("symbols", "AAPL, NVDA"),
        ("from", "2019-01-01"),
        ("to", "2019-03-01"),
        ("everyDays", "20"),
        ("horizons", "5, 20"),
        ("model", "offline"),
        ("depth", "quick"),
        ("bearish", "flat"),
    ]);
    let resp = c
        .post(server.url("/backtests"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let id = location.strip_prefix("/backtests/").unwrap().to_string();
    let body = wait_for_backtest(&c, &server, &id, Duration::from_secs(120)).await;
    assert_eq!(body["status"], "completed");

    let html = c.get(server.url(&location)).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains(r#"http-equiv="refresh""#), "a finished backtest does not refresh");
    assert_eq!(html.matches(r#"class="cell rating-"#).count(), 6, "{html}");
    for cell in body["cells"].as_array().unwrap() {
        assert!(html.contains(&format!(r#"href="/runs/{}""#, cell["runId"].as_str().unwrap())));
    }
    assert!(html.contains("Benchmark: ^GSPC (S&amp;P 500)"), "{html}");
    let svg = html.split("<svg ").nth(1).and_then(|s| s.split('>').next()).expect("an SVG chart");
    assert!(svg.contains(r#"class="equity-chart""#) && svg.contains(r#"role="img""#), "{svg}");
    for series in ["Ratings strategy", "Buy &amp; Hold", "SMA crossover", "MACD"] {
        assert_eq!(html.matches(&format!(r#"<polyline data-series="{series}""#)).count(), 1, "{series}: {html}");
    }
    assert!(html.contains("Ratings strategy") && html.contains("SMA crossover (20/50)"));

    let csv = c.get(server.url(&format!("{location}/cells.csv"))).send().await.unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "symbol,as_of,run_id,status,rating,forward_return_5,benchmark_return_5,forward_return_20,benchmark_return_20"
    );
    assert_eq!(lines.len(), 7);
    let first = &body["cells"][0];
    let fields: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(fields[0], first["symbol"]);
    assert_eq!(fields[4], first["rating"]);
    let f5: f64 = fields[5].parse().unwrap();
    assert!((f5 - first["forwardReturns"]["5"].as_f64().unwrap()).abs() < 1e-6);

    // While a backtest runs, its page refreshes itself.
    let started: Value = c
        .post(server.url("/api/trading/backtests"))
        .json(&json!({"symbols": ["AAPL"], "from": "2015-01-01", "to": "2019-12-31", "everyDays": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let running = format!("/backtests/{}", started["backtestId"].as_str().unwrap());
    let html = c.get(server.url(&running)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"<meta http-equiv="refresh" content="2">"#), "{html}");
    let resp = c.post(server.url(&format!("{running}/cancel"))).send().await.unwrap();
    assert_eq!(resp.status(), 303);
}

/// `server backtest` runs the grid through the same engine and prints the scorecard; `--json`
/// prints the whole backtest; a bad grid exits non-zero naming the fields.
#[tokio::test]
async fn the_command_line_backtest() {
    let db = TestDb::sqlite();
    let args = ["backtest", "AAPL,NVDA", "--from", "2019-01-01", "--to", "2019-12-31", "--every", "20", "--json"];
    let out = common::command(&db.url, &args, &[("SIMULATED_LATENCY_MS", "0")]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["status"], "completed");
    assert_eq!(view["cells"].as_array().unwrap().len(), 26);
    assert!(view["scorecard"]["strategy"]["sharpe"].is_f64());
    assert!(String::from_utf8_lossy(&out.stderr).contains("26/26 cells"), "the progress bar");

    let args = ["backtest", "AAPL", "--from", "2019-01-01", "--to", "2019-03-01"];
    let out = common::command(&db.url, &args, &[("SIMULATED_LATENCY_MS", "0")]).output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Buy & Hold") && text.contains("hit rate"), "{text}");

    let args = ["backtest", "TSLA", "--from", "2019-01-01", "--to", "2019-03-01"];
    let out = common::command(&db.url, &args, &[]).output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("symbols: no market data for TSLA"), "{err}");
}

/// A catalog with the offline model and `priced`, a hosted model at $0.40 / $1.60 per million
/// prompt / completion tokens (never called: the tests start no workers).
fn priced_catalog() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("catalog-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &path,
        "[[model]]\nid = \"offline\"\nlabel = \"Offline\"\nprovider = \"offline\"\n\n\
         [[model]]\nid = \"priced\"\nlabel = \"Priced\"\nprovider = \"openai-compatible\"\n\
         base_url = \"http://127.0.0.1:9/v1\"\nmodel = \"priced-1\"\napi_key_env = \"PRICED_API_KEY\"\n\
         input_price_per_mtok = 0.40\noutput_price_per_mtok = 1.60\n",
    )
    .unwrap();
    path
}

/// Dollars for `calls` model calls of 2,000 prompt and 600 completion tokens at `priced`'s prices.
fn priced_usd(calls: f64) -> f64 {
    calls * (2_000.0 * 0.40 + 600.0 * 1.60) / 1e6
}

/// A hosted model's backtest is first answered with its expected cost (409, nothing created)
/// and starts only once that is confirmed; the offline model needs no confirmation. The form
/// shows the estimate and a box to confirm it.
#[tokio::test]
async fn a_hosted_models_cost_is_confirmed_before_it_starts() {
    let catalog = priced_catalog();
    let server = Server::start(
        TestDb::sqlite(),
        &[("MODEL_CATALOG", catalog.to_str().unwrap()), ("PRICED_API_KEY", "sk-test"), ("WORKERS", "0")],
    )
    .await;
    let c = visitor(&server).await;
    let grid = json!({"symbols": ["AAPL", "NVDA"], "from": "2019-01-01", "to": "2019-03-01", "everyDays": 20,
                      "analysts": ["invest", "technical"], "depth": "standard", "modelId": "priced"});
    // 2 symbols × 3 dates; a standard run (one round): 2 analysts, bull, bear, research
    // manager, trader, 3 risk analysts and the final assessment.
    let (cells, calls) = (6.0, 10.0);
    let expected = cells * priced_usd(calls);

    let (status, problem, kind) = post(&c, &server, "/api/trading/backtests", grid.clone()).await;
    assert_eq!((status, kind.as_str()), (409, "application/problem+json"), "{problem}");
    assert_eq!(problem["cells"], 6, "{problem}");
    assert!((problem["expectedCostUsd"].as_f64().unwrap() - expected).abs() < 1e-9, "{problem} vs {expected}");
    assert_eq!(problem["callsPerRun"], 10);
    let list: Value = c.get(server.url("/api/trading/backtests")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["backtests"].as_array().unwrap().len(), 0, "nothing was created: {list}");

    let mut confirmed = grid.clone();
    confirmed["confirmCost"] = json!(true);
    let (status, started, _) = post(&c, &server, "/api/trading/backtests", confirmed).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["cells"], 6);
    assert!((started["expectedCostUsd"].as_f64().unwrap() - expected).abs() < 1e-9, "{started}");

    // Deep with three rounds: 2 analysts, 3 × (bull, bear and 3 risk analysts), research
    // manager, trader and the final assessment.
    let mut deep = grid.clone();
    deep["depth"] = json!("deep");
    let (status, problem, _) = post(&c, &server, "/api/trading/backtests", deep).await;
    assert_eq!(status, 409);
    assert!((problem["expectedCostUsd"].as_f64().unwrap() - cells * priced_usd(20.0)).abs() < 1e-9, "{problem}");

    let mut offline = grid.clone();
    offline["modelId"] = json!("offline");
    let (status, started, _) = post(&c, &server, "/api/trading/backtests", offline).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["expectedCostUsd"], 0.0);

    // The form: 4 analysts (all) at quick depth make 5 calls a run.
    let c = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(c.get(server.url("/backtests")).send().await.unwrap().status(), 200);
    let form =
        "symbols=AAPL%2C+NVDA&from=2019-01-01&to=2019-03-01&everyDays=20&horizons=5%2C+20&model=priced&depth=quick";
    let post_form = |body: String| {
        c.post(server.url("/backtests")).header("content-type", "application/x-www-form-urlencoded").body(body).send()
    };
    let resp = post_form(form.to_string()).await.unwrap();
    assert_eq!(resp.status(), 409);
    let html = resp.text().await.unwrap();
    let shown = format!(r#"<strong id="expected-cost">${:.4}</strong>"#, cells * priced_usd(5.0));
    assert!(html.contains(&shown), "{shown} in {html}");
    assert!(html.contains(r#"name="confirmCost""#) && html.contains(r#"value="priced" selected"#), "{html}");
    let resp = post_form(format!("{form}&confirmCost=on")).await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(resp.headers()["location"].to_str().unwrap().starts_with("/backtests/"));

    // The terminal: 1 symbol × 3 dates, all 4 analysts at quick depth; refused without
    // --confirm-cost, saying what it would cost.
    let db = TestDb::sqlite();
    let args = ["backtest", "AAPL", "--from", "2019-01-01", "--to", "2019-03-01", "--model", "priced"];
    let env = [("MODEL_CATALOG", catalog.to_str().unwrap()), ("PRICED_API_KEY", "sk-test")];
    let out = common::command(&db.url, &args, &env).output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let said = format!("3 cells with priced are expected to cost about ${:.4}", 3.0 * priced_usd(5.0));
    assert!(err.contains(&said) && err.contains("--confirm-cost"), "{said} in {err}");
}

/// (date, adjusted close) of a symbol's bundled file for 2013–2023, read here on its own.
fn adjusted_closes(symbol: &str) -> Vec<(String, f64)> {
    let path = format!("{}/../data/market/stocks_2013_2023/{symbol}.csv", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[0].to_string(), fields[6].parse().unwrap())
        })
        .collect()
}
