//! The pages as a browser without scripts sees them: whole HTML documents over plain HTTP
//! (no `<template>` holding the content for a script to move), forms that post natively and
//! answer `303 See Other`, an active run's page that refreshes itself, and inline scripts that
//! carry the nonce of the response's Content-Security-Policy.

mod common;

use std::time::Duration;

use common::{Server, wait_until_done};
use jobs::testing::TestDb;

/// A browser with scripts off: keeps its cookie, and shows each redirect instead of following it.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn page(
    c: &reqwest::Client,
    s: &Server,
    path: &str,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let resp = c.get(s.url(path)).send().await.expect("get");
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.text().await.expect("text"))
}

async fn post_form(c: &reqwest::Client, s: &Server, path: &str, body: &str) -> reqwest::Response {
    c.post(s.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .expect("post")
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()["location"].to_str().expect("ascii").to_string()
}

/// The page is whole without scripts: no out-of-order chunks in `<template>`s, no
/// "Loading…" placeholders, and every inline script carries the CSP's nonce.
fn assert_whole(html: &str, headers: &reqwest::header::HeaderMap) {
    assert!(!html.contains("<template"), "content held in a <template>: {html}");
    assert!(!html.contains("Loading…"), "a placeholder instead of content: {html}");
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let nonce = csp.split("'nonce-").nth(1).and_then(|r| r.split('\'').next()).expect("a nonce in the CSP");
    assert!(nonce.len() >= 16, "{csp}");
    let scripts: Vec<&str> =
        html.match_indices("<script").map(|(i, _)| &html[i..i + html[i..].find('>').unwrap()]).collect();
    assert!(!scripts.is_empty());
    for tag in scripts {
        assert!(tag.contains(&format!("nonce=\"{nonce}\"")), "a script without this response's nonce: {tag}");
    }
}

/// From the home page to a finished result without a line of script: the form (labelled
/// inputs, every analyst ticked) and the recent runs are in the HTML; posting the form with
/// two analysts starts exactly that run and redirects to its page; invalid input comes back
/// as the form with its errors; the finished run's page has its rating and the history its row.
#[tokio::test]
async fn pages_work_without_scripts() {
    let server = Server::start(TestDb::sqlite(), &[]).await;
    let c = browser();

    let (status, headers, home) = page(&c, &server, "/").await;
    assert_eq!(status, 200);
    assert_whole(&home, &headers);
    assert!(home.contains(r#"method="post""#) && home.contains(r#"action="/""#), "{home}");
    for label in [r#"<label for="symbol">"#, r#"<label for="model">"#, r#"<label for="as-of">"#] {
        assert!(home.contains(label), "{label} missing");
    }
    assert!(home.contains(r#"name="symbol""#) && home.contains(r#"value="AAPL""#));
    for analyst in ["invest", "risk", "sentiment", "technical"] {
        let input = format!(r#"id="analyst-{analyst}" name="analysts" value="{analyst}" checked"#);
        assert!(home.contains(&input), "{input} missing in {home}");
    }
    assert!(home.contains("No runs yet."));
    // The form says which day an empty "as of" means: the last day of the symbol's data.
    assert!(home.contains("2023-09-21, the last day of AAPL"), "{home}");

    // Invalid input: the form again, with what was sent and each field's error, no run started.
    let resp = post_form(&c, &server, "/", "symbol=AA+PL&model=offline&asOf=yesterday").await;
    assert_eq!(resp.status(), 400);
    let headers = resp.headers().clone();
    let again = resp.text().await.unwrap();
    assert_whole(&again, &headers);
    assert!(again.contains(r#"value="AA PL""#), "the symbol as typed: {again}");
    assert!(again.contains("choose at least one analyst"), "{again}");
    assert!(again.contains("is not a date"), "{again}");
    for analyst in ["invest", "risk", "sentiment", "technical"] {
        assert!(!again.contains(&format!(r#"value="{analyst}" checked"#)), "nothing was ticked");
    }
    let (_, _, home) = page(&c, &server, "/").await;
    assert!(home.contains("No runs yet."), "an invalid form started no run");

    let resp = post_form(&c, &server, "/", "symbol=nvda&model=offline&analysts=risk&analysts=technical&asOf=").await;
    assert_eq!(resp.status(), 303);
    let to = location(&resp);
    let run_id = to.strip_prefix("/runs/").expect("to the run's page").to_string();
    assert_eq!(run_id.len(), 36, "{to}");
    // From the first second the run says which day it is as of, though none was asked for.
    let first: serde_json::Value =
        c.get(server.url(&format!("/api/trading/progress/{run_id}"))).send().await.unwrap().json().await.unwrap();
    let as_of = first["asOf"].as_str().expect("an as-of date before the run has data").to_string();
    let (_, _, active) = page(&c, &server, &to).await;
    assert!(active.contains(&format!("as of {as_of}")), "{active}");

    let (done, _) = wait_until_done(&c, &server, &run_id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["analysts"], serde_json::json!(["risk", "technical"]), "{done}");
    let rating = done["result"]["rating"].as_str().expect("a rating").to_string();

    let (status, headers, run) = page(&c, &server, &to).await;
    assert_eq!(status, 200);
    assert_whole(&run, &headers);
    assert!(run.contains(r#"data-testid="rating""#), "{run}");
    assert!(run.contains(&format!(r#"<span class="rating-value">{rating}</span>"#)), "{run}");
    assert!(!run.contains("http-equiv=\"refresh\""), "a finished run does not refresh");
    assert_eq!(done["result"]["asOf"].as_str(), Some(as_of.as_str()), "the day said is the day analysed");
    // The verdict first: rating, plan, summary, chart, reports; the steps folded last.
    let at = |marker: &str| run.find(marker).unwrap_or_else(|| panic!("no {marker} on the page"));
    let order = [
        "data-testid=\"run-line\"",
        "data-testid=\"rating\"",
        "data-testid=\"plan\"",
        "data-testid=\"summary\"",
        "class=\"price-chart\"",
        "class=\"analyst-card\"",
        "data-testid=\"rule-based\"",
        "data-testid=\"steps-folded\"",
    ];
    let places: Vec<usize> = order.iter().map(|m| at(m)).collect();
    assert!(places.windows(2).all(|w| w[0] < w[1]), "in this order: {order:?} at {places:?}");
    assert!(run.contains(&format!("as of {as_of}")));
    assert!(run[..at("data-testid=\"steps-folded\"")].ends_with("<details "), "the steps are folded: {run}");
    assert_eq!(run.matches("Rule-based analysis by the offline model").count(), 1, "said once a page");

    let (_, headers, history) = page(&c, &server, "/runs").await;
    assert_whole(&history, &headers);
    assert!(history.contains(&format!(r#"data-run="{run_id}""#)), "{history}");
    assert!(history.contains("risk, technical"), "{history}");
    let as_of_cell = history.find("data-label=\"As of\"").map(|i| &history[i..i + 60]).unwrap_or_default();
    assert!(as_of_cell.contains(&format!(">{as_of}</td>")), "the history's as-of cell: {as_of_cell}");
    let (_, _, home) = page(&c, &server, "/").await;
    assert!(home.contains(&format!(r#"href="/runs/{run_id}""#)), "recent runs list it: {home}");

    // Exactly one run was started by all of this.
    let list: serde_json::Value = c.get(server.url("/api/trading/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["total"], 1, "{list}");
}

/// An active run's page refreshes itself without scripts (inside `<noscript>`, so a page
/// running its WASM never reloads on a timer); Cancel and Retry work as posted forms.
#[tokio::test]
async fn an_active_run_refreshes_and_its_forms_post() {
    let server = Server::start(TestDb::sqlite(), &[("SIMULATED_LATENCY_MS", "60000")]).await;
    let c = browser();
    // The home page first, as a browser would: it gives the identity the post needs.
    let (status, _, _) = page(&c, &server, "/").await;
    assert_eq!(status, 200);
    let resp = post_form(&c, &server, "/", "symbol=AAPL&model=offline&analysts=invest").await;
    assert_eq!(resp.status(), 303);
    let to = location(&resp);
    let run_id = to.trim_start_matches("/runs/").to_string();

    let (_, headers, run) = page(&c, &server, &to).await;
    assert_whole(&run, &headers);
    assert!(run.contains(r#"<noscript><meta http-equiv="refresh" content="2"></noscript>"#), "{run}");
    assert!(headers.get("refresh").is_none(), "no Refresh header: it would reload scripted pages too");
    assert!(run.contains(&format!(r#"action="/runs/{run_id}/cancel""#)), "{run}");
    assert!(run.contains("Data Collection"), "the steps are listed: {run}");

    let resp = post_form(&c, &server, &format!("/runs/{run_id}/cancel"), "").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), to);
    let (done, _) = wait_until_done(&c, &server, &run_id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "cancelled");

    let (_, _, run) = page(&c, &server, &to).await;
    assert!(!run.contains("http-equiv=\"refresh\""), "a finished run does not refresh");
    assert!(run.contains(&format!(r#"action="/runs/{run_id}/retry""#)), "{run}");
    let resp = post_form(&c, &server, &format!("/runs/{run_id}/retry"), "").await;
    assert_eq!(resp.status(), 303);
    let retried = location(&resp);
    assert_ne!(retried, to);
    let retry_id = retried.trim_start_matches("/runs/");
    let body: serde_json::Value =
        c.get(server.url(&format!("/api/trading/progress/{retry_id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["retryOf"], run_id, "{body}");
    assert_eq!(body["analysts"], serde_json::json!(["invest"]), "{body}");

    // Someone else's run: not found, as in the API; without any identity, a 401.
    let stranger = browser();
    let resp = post_form(&stranger, &server, &format!("/runs/{run_id}/retry"), "").await;
    assert_eq!(resp.status(), 401);
    page(&stranger, &server, "/").await;
    let resp = post_form(&stranger, &server, &format!("/runs/{run_id}/retry"), "").await;
    assert_eq!(resp.status(), 404);
}

/// The history searched without a line of script: the form is a plain GET form whose fields
/// come back filled from the address, the rows are exactly the runs that match, with their
/// rating, confidence, model, depth and cost; a run's tag form posts natively and its tag
/// filters the history; a bad filter is a `400` page saying which.
#[tokio::test]
async fn history_is_searched_and_tagged_without_scripts() {
    let server = Server::start(TestDb::sqlite(), &[]).await;
    let c = browser();
    page(&c, &server, "/").await;
    let mut ids = Vec::new();
    for symbol in ["IBM", "MSFT", "IBM"] {
        let resp = post_form(&c, &server, "/", &format!("symbol={symbol}&model=offline&analysts=risk")).await;
        assert_eq!(resp.status(), 303);
        let id = location(&resp).trim_start_matches("/runs/").to_string();
        wait_until_done(&c, &server, &id, Duration::from_secs(60)).await;
        ids.push(id);
    }
    let row = |html: &str, id: &str| html.contains(&format!(r#"data-run="{id}""#));

    let (status, headers, html) = page(&c, &server, "/runs?symbol=ibm&depth=quick").await;
    assert_eq!(status, 200);
    assert_whole(&html, &headers);
    assert!(html.contains(r#"<form method="get" action="/runs" role="search""#), "{html}");
    assert!(html.contains(r#"name="symbol" maxlength="10" size="8" value="ibm""#), "the field keeps its value: {html}");
    assert!(html.contains(r#"<option value="quick" selected"#), "{html}");
    assert!(row(&html, &ids[0]) && row(&html, &ids[2]) && !row(&html, &ids[1]), "{html}");
    assert!(html.contains("2 runs"), "{html}");
    for cell in [r#"class="confidence""#, r#"class="cost""#, r#"class="rating-cell""#, "<code>offline</code>"] {
        assert!(html.contains(cell), "{cell}: {html}");
    }

    // Tag the MSFT run from its page's form, then find it by its tag.
    let (_, _, run) = page(&c, &server, &format!("/runs/{}", ids[1])).await;
    assert!(run.contains(&format!(r#"action="/runs/{}/tags""#, ids[1])), "{run}");
    let resp = post_form(&c, &server, &format!("/runs/{}/tags", ids[1]), "tags=Earnings%2C+q3").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), format!("/runs/{}", ids[1]));
    let (_, _, run) = page(&c, &server, &format!("/runs/{}", ids[1])).await;
    assert!(run.contains(r#"value="earnings, q3""#), "{run}");
    let (_, _, html) = page(&c, &server, "/runs?tag=earnings").await;
    assert!(row(&html, &ids[1]) && !row(&html, &ids[0]), "{html}");
    assert!(html.contains(r#"<span class="tag">q3</span>"#), "{html}");
    let resp = post_form(&c, &server, &format!("/runs/{}/tags", ids[0]), "tags=%3Cb%3E").await;
    assert_eq!(resp.status(), 400);

    // The same filters as CSV: a header and one line per run, newest first.
    assert!(html.contains(r#"href="/runs.csv?tag=earnings""#), "{html}");
    let (status, headers, csv) = page(&c, &server, "/runs.csv?symbol=IBM").await;
    assert_eq!((status.as_u16(), headers["content-type"].to_str().unwrap()), (200, "text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("run_id,created_at,symbol,as_of,model_id,depth,analysts,status,rating,confidence"));
    assert!(lines[1].starts_with(&format!("{},", ids[2])) && lines[2].starts_with(&format!("{},", ids[0])), "{csv}");
    assert!(lines[1].contains(",IBM,") && lines[1].contains(",offline,quick,risk,completed,"), "{csv}");
    let (_, _, csv) = page(&c, &server, "/runs.csv?tag=q3").await;
    assert!(csv.lines().nth(1).unwrap().contains(",earnings; q3,false"), "{csv}");
    let (status, _, _) = page(&c, &server, "/runs.csv?from=yesterday").await;
    assert_eq!(status, 400);

    let (status, _, html) = page(&c, &server, "/runs?rating=Great").await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("rating"), "{html}");
}

/// Every page is rendered under the one shell, so every page carries the pages'
/// Content-Security-Policy — scripts from this site or with this response's nonce, and the
/// WASM — and every inline script has that nonce: the backtest pages, the operators' stats,
/// the not-found page and the page a refused form is answered with too.
#[tokio::test]
async fn every_page_sends_the_content_security_policy() {
    let server = Server::start(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let c = browser();
    page(&c, &server, "/").await;
    let grid = serde_json::json!({"symbols": ["AAPL"], "from": "2019-01-02", "to": "2019-01-31", "everyDays": 5});
    let started: serde_json::Value =
        c.post(server.url("/api/trading/backtests")).json(&grid).send().await.unwrap().json().await.unwrap();
    let backtest = format!("/backtests/{}", started["backtestId"].as_str().expect("a backtest"));
    let no_run = format!("/runs/{}", uuid::Uuid::new_v4());

    let mut answers = Vec::new();
    for (path, status) in [("/backtests", 200), (backtest.as_str(), 200), ("/stats", 200), ("/no-such-page", 404)] {
        let (got, headers, html) = page(&c, &server, path).await;
        answers.push((path.to_string(), got.as_u16(), status, headers, html));
    }
    let refused = c.post(server.url(&format!("{no_run}/cancel"))).header("accept", "text/html").send().await.unwrap();
    let (got, headers) = (refused.status().as_u16(), refused.headers().clone());
    let html = refused.text().await.unwrap();
    assert!(html.contains("<strong>Run not found</strong>"), "the refusal is on the page: {html}");
    answers.push((format!("{no_run}/cancel"), got, 404, headers, html));

    for (path, got, status, headers, html) in answers {
        assert_eq!(got, status, "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("script-src 'self' 'nonce-") && csp.contains("'wasm-unsafe-eval'"), "{path}: {csp}");
        assert_whole(&html, &headers);
        assert!(html.contains(r#"<nav aria-label="Main">"#), "{path}: the site's frame");
    }
}

/// A run finished before the trade plan existed: its stored result has no `trade`, and its
/// team report carries the trader's plan in the old shape (`team.plan`, action and size as a
/// fraction). Its page, its Markdown report and its progress body still answer, with the
/// rating and the debate and no plan card (nothing is made up for it).
#[tokio::test]
async fn a_run_stored_before_the_plan_existed_still_renders() {
    use jobs::job::{Finish, Outcome};
    let db = TestDb::sqlite();
    let records = common::Records::open(&db).await;
    // No worker: the test ends the run itself, as the old build's worker did.
    let server = Server::start_on(&db.url, &["serve"], &[("WORKERS", "0")]).await;
    let c = common::visitor(&server).await;
    let body = serde_json::json!({ "symbol": "AAPL", "modelId": "offline", "analysts": ["risk"] });
    let started: serde_json::Value =
        c.post(server.url("/api/trading/run")).json(&body).send().await.unwrap().json().await.unwrap();
    let run_id = started["runId"].as_str().expect("a run id").to_string();
    let job = records
        .queue()
        .claim("old-build", chrono::Duration::seconds(60), 1, &[application::run::KIND.to_string()])
        .await
        .unwrap()
        .pop()
        .expect("the run waits for a worker");
    let old = serde_json::json!({
        "symbol": "AAPL", "asOf": "2023-09-21", "modelId": "offline", "rating": "Underweight",
        "confidence": 0.62, "summary": "AAPL as of 2023-09-21: Underweight (an old summary).",
        "keyRisks": ["A risk from the old build."],
        "reports": [{ "analyst": "risk", "stance": "bearish", "confidence": 0.6,
                      "keyFigures": [{ "label": "ATR", "value": 3.1, "display": "3.10" }],
                      "report": "The old risk report." }],
        "figures": [], "chart": [], "llmCalls": 9, "tokens": { "prompt": 0, "completion": 0 },
        "ruleBased": true,
        "team": { "depth": "standard", "rounds": 1,
                  "debate": [{ "role": "bullResearcher", "round": 1, "text": "An old bull case." },
                             { "role": "bearResearcher", "round": 1, "text": "An old bear case." }],
                  "verdict": { "action": "Sell", "confidence": 0.6, "reasoning": "The old verdict." },
                  "plan": { "action": "Sell", "entry": 174.79, "stopLoss": 183.2, "positionSize": 0.036,
                            "reasoning": "Sell (or go short) at 174.79." },
                  "riskDebate": [], "decision": "The old decision." }
    });
    let finish = Finish {
        fence: job.fence().unwrap(),
        outcome: Outcome::Completed(old),
        progress: job.progress.clone(),
        checkpoints: Default::default(),
    };
    assert_eq!(records.queue().finish(&[finish]).await.unwrap(), vec![true]);

    let (status, headers, run) = page(&c, &server, &format!("/runs/{run_id}")).await;
    assert_eq!(status, 200, "{run}");
    assert_whole(&run, &headers);
    assert!(run.contains(r#"<span class="rating-value">Underweight</span>"#), "{run}");
    assert!(run.contains("An old bear case."), "the old debate is shown: {run}");
    assert!(!run.contains(r#"data-testid="plan-line""#), "no plan card for a run without a plan: {run}");
    assert!(!run.contains("plan-size"), "{run}");
    let md = c.get(server.url(&format!("/runs/{run_id}/report.md"))).send().await.unwrap();
    assert_eq!(md.status(), 200);
    let md = md.text().await.unwrap();
    assert!(md.contains("Underweight") && md.contains("The old risk report."), "{md}");
    let progress = c.get(server.url(&format!("/api/trading/progress/{run_id}"))).send().await.unwrap();
    assert_eq!(progress.status(), 200);
    let progress: serde_json::Value = progress.json().await.unwrap();
    assert_eq!(progress["status"], "completed");
    assert!(progress["result"].get("trade").is_none(), "{progress}");
}

/// A stranger opening someone's run page gets the 404 that explains why, and the server logs no
/// error: nothing the page asked for is left running once it has been answered (such a call
/// would run without the request and fail as an internal error).
#[tokio::test]
async fn a_strangers_run_page_leaves_nothing_running_and_logs_no_error() {
    let (server, logs) = Server::start_logged(TestDb::sqlite(), &[("WORKERS", "0")]).await;
    let owner = common::visitor(&server).await;
    let id = common::start_run(&owner, &server, serde_json::json!({"symbol": "AAPL", "analysts": ["risk"]})).await;
    let stranger = common::visitor(&server).await;
    // Many at once: a call left running is then the more likely to start after its page ended.
    let path = format!("/runs/{id}");
    for _ in 0..5 {
        let pages = futures::future::join_all((0..40).map(|_| page(&stranger, &server, &path))).await;
        for (status, _, html) in pages {
            assert_eq!(status, 404);
            assert!(html.contains("a run is private to whoever started it"), "{html}");
        }
    }
    let lines = logs.settle(&server, "after-the-strangers").await;
    assert_eq!(common::Logs::errors(&lines), Vec::<&String>::new());
}
