//! Putting runs side by side and handing one over as a document, through the real binary:
//! `GET /api/trading/compare`, the `/compare` page (what the history's ticked boxes send) and
//! its CSV agree with each run's own result, the rows that differ are marked, and only the
//! caller's runs are shown; `/runs/{id}/report.md` carries the settings and every model call
//! of the run's log with its cost.

mod common;

use std::time::Duration;

use common::{Server, start_run, visitor, wait_until_done};
use jobs::testing::TestDb;
use serde_json::{Value, json};

async fn get(c: &reqwest::Client, url: String) -> (u16, String, String) {
    let resp = c.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let kind = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, kind, resp.text().await.unwrap())
}

/// The row `label` of a comparison: its values, and whether it is marked as differing.
fn row<'a>(comparison: &'a Value, label: &str) -> (Vec<&'a str>, bool) {
    let row = comparison["rows"].as_array().unwrap().iter().find(|r| r["label"] == label);
    let row = row.unwrap_or_else(|| panic!("no row {label}: {comparison}"));
    (row["values"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect(), row["differs"].as_bool().unwrap())
}

/// The opening tag of the page's table row for `field`.
fn row_tag<'a>(page: &'a str, field: &str) -> &'a str {
    let at = page.find(&format!(r#"data-field="{field}""#)).unwrap_or_else(|| panic!("no row {field}: {page}"));
    let start = page[..at].rfind("<tr").unwrap();
    &page[start..at + page[at..].find('>').unwrap()]
}

fn pct(v: &Value) -> String {
    format!("{:.0}%", v.as_f64().unwrap() * 100.0)
}

async fn two_runs_side_by_side(db: TestDb) {
    let server = Server::start(db, &[]).await;
    let c = visitor(&server).await;
    let a =
        start_run(&c, &server, json!({"symbol": "AAPL", "analysts": ["invest", "technical"], "depth": "quick"})).await;
    let b = start_run(&c, &server, json!({"symbol": "MSFT", "analysts": ["invest"], "depth": "standard"})).await;
    let (ra, _) = wait_until_done(&c, &server, &a, Duration::from_secs(60)).await;
    let (rb, _) = wait_until_done(&c, &server, &b, Duration::from_secs(60)).await;
    assert_eq!((ra["status"].as_str(), rb["status"].as_str()), (Some("completed"), Some("completed")));

    let (status, _, body) = get(&c, server.url(&format!("/api/trading/compare?runs={a},{b}"))).await;
    assert_eq!(status, 200, "{body}");
    let cmp: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = cmp["runs"].as_array().unwrap().iter().map(|r| r["runId"].as_str().unwrap()).collect();
    assert_eq!(ids, [a.as_str(), b.as_str()], "in the order asked for");
    assert_eq!(row(&cmp, "Symbol"), (vec!["AAPL", "MSFT"], true));
    assert_eq!(row(&cmp, "Model"), (vec!["offline", "offline"], false));
    assert_eq!(row(&cmp, "Depth"), (vec!["quick", "standard"], true));
    assert_eq!(row(&cmp, "Cost"), (vec!["free", "free"], false));
    // Each value is the run's own.
    let (ratings, differ) = row(&cmp, "Rating");
    let own = [ra["result"]["rating"].as_str().unwrap(), rb["result"]["rating"].as_str().unwrap()];
    assert_eq!((ratings.as_slice(), differ), (own.as_slice(), own[0] != own[1]));
    assert_eq!(row(&cmp, "Confidence").0, [pct(&ra["result"]["confidence"]), pct(&rb["result"]["confidence"])]);
    let stance = |r: &Value, kind: &str| {
        let rep = r["result"]["reports"].as_array().unwrap().iter().find(|x| x["analyst"] == kind).unwrap();
        format!("{} {}", rep["stance"].as_str().unwrap(), pct(&rep["confidence"]))
    };
    assert_eq!(row(&cmp, "Invest Analyst").0, [stance(&ra, "invest"), stance(&rb, "invest")]);
    assert_eq!(row(&cmp, "Technical Analyst").0, [stance(&ra, "technical"), "—".to_string()], "B had none");
    let verdict = &rb["result"]["team"]["verdict"];
    let said = format!("{} {}", verdict["action"].as_str().unwrap(), pct(&verdict["confidence"]));
    assert_eq!(row(&cmp, "Research verdict").0, ["—", said.as_str()], "only the standard run has a verdict");
    let direction = |r: &Value| {
        let d = r["result"]["trade"]["final"]["direction"].as_str().unwrap();
        format!("{}{}", d[..1].to_uppercase(), &d[1..])
    };
    assert_eq!(row(&cmp, "Direction").0, [direction(&ra), direction(&rb)]);
    assert_eq!(row(&cmp, "Model calls").0, [ra["llmCalls"].to_string(), rb["llmCalls"].to_string()]);

    // What the history's form sends: the parameter repeated; the same table.
    let (status, _, page) = get(&c, server.url(&format!("/compare?runs={a}&runs={b}"))).await;
    assert_eq!(status, 200);
    assert!(row_tag(&page, "Symbol").contains(r#"class="differs""#), "{page}");
    assert!(!row_tag(&page, "Model").contains("differs"), "{page}");
    assert!(page.contains(&format!("/compare.csv?runs={a},{b}")), "the download keeps the runs");
    let (status, kind, csv) = get(&c, server.url(&format!("/compare.csv?runs={a}&runs={b}"))).await;
    assert_eq!((status, kind.as_str()), (200, "text/csv; charset=utf-8"));
    let mut lines = csv::Reader::from_reader(csv.as_bytes());
    let head: Vec<String> = lines.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(head, ["section", "field", a.as_str(), b.as_str(), "differs"]);
    let records: Vec<csv::StringRecord> = lines.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), cmp["rows"].as_array().unwrap().len(), "a line per row");
    let symbol = records.iter().find(|r| &r[1] == "Symbol").unwrap();
    assert_eq!(symbol.iter().collect::<Vec<_>>(), ["settings", "Symbol", "AAPL", "MSFT", "true"]);

    // The history ticks into that form.
    let (_, _, history) = get(&c, server.url("/runs")).await;
    assert!(history.contains(r#"<form id="compare""#) && history.contains(r#"action="/compare""#), "{history}");
    assert!(history.contains(&format!(r#"name="runs" form="compare" value="{a}""#)), "{history}");

    // Refused: too few, too many, not an id — each a 400 naming `runs`; someone else's run is
    // not found.
    for query in [format!("runs={a}"), format!("runs={a},{a}"), "runs=nope,{b}".replace("{b}", &b), String::new()] {
        let (status, kind, body) = get(&c, server.url(&format!("/api/trading/compare?{query}"))).await;
        assert_eq!((status, kind.as_str()), (400, "application/problem+json"), "{query}: {body}");
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["errors"][0]["field"], "runs", "{body}");
    }
    let five: Vec<String> = std::iter::repeat_with(|| uuid::Uuid::new_v4().to_string()).take(5).collect();
    let (status, _, body) = get(&c, server.url(&format!("/api/trading/compare?runs={}", five.join(",")))).await;
    assert_eq!(status, 400);
    assert!(body.contains("at most 4"), "{body}");
    let stranger = visitor(&server).await;
    let (status, _, _) = get(&stranger, server.url(&format!("/api/trading/compare?runs={a},{b}"))).await;
    assert_eq!(status, 404);
    let (status, _, page) = get(&stranger, server.url(&format!("/compare?runs={a},{b}"))).await;
    assert_eq!(status, 404, "{page}");
    assert!(!page.contains("AAPL"), "nothing of the runs shows: {page}");

    // The report as a document: its settings and every model call of its log, with the total.
    let (status, _, md) = get(&c, server.url(&format!("/runs/{b}/report.md"))).await;
    assert_eq!(status, 200);
    assert!(md.contains(&format!("| Run | `{b}` |")) && md.contains("| Depth | standard |"), "{md}");
    assert!(md.contains("| Analysts | Invest Analyst |"), "{md}");
    let (_, _, log) = get(&c, server.url(&format!("/api/trading/runs/{b}/log"))).await;
    let log: Value = serde_json::from_str(&log).unwrap();
    let calls: Vec<&Value> = log["entries"].as_array().unwrap().iter().filter(|e| e["kind"] == "call").collect();
    assert_eq!(calls.len() as u64, rb["llmCalls"].as_u64().unwrap(), "the log has every call");
    let section = md.split("## Model calls").nth(1).expect("a model calls section");
    let rows = section.lines().filter(|l| l.starts_with("| ") && l.contains("| `offline` |")).count();
    assert_eq!(rows, calls.len(), "{section}");
    assert!(section.contains(&format!("| **{} calls** |", calls.len())), "{section}");
}

#[tokio::test]
async fn two_runs_side_by_side_sqlite() {
    two_runs_side_by_side(TestDb::sqlite()).await;
}

#[tokio::test]
async fn two_runs_side_by_side_postgres() {
    two_runs_side_by_side(TestDb::postgres().await).await;
}
