//! How a run turned out (`GET /api/trading/runs/{runId}/outcome`, and its card on the run
//! page), through the real binary: the returns 5 and 20 trading days after a run's as-of day
//! equal a computation straight from the bundled CSV files, the index's too; the rating's
//! direction judged; a run as of the data's last day has no later days yet.

mod common;

use std::time::Duration;

use common::{DATA_DIR, Server, visitor, wait_until_done};
use jobs::testing::TestDb;
use serde_json::{Value, json};

/// (date, adjusted close) per line of a bundled CSV (`Date,Open,High,Low,Close,Volume,Adj Close`).
fn closes(path: &str) -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(format!("{DATA_DIR}/market/{path}")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[6].parse().unwrap())
        })
        .collect()
}

async fn run_as_of(c: &reqwest::Client, server: &Server, as_of: Option<&str>) -> Value {
    let resp = c
        .post(server.url("/api/trading/run"))
        .json(&json!({"symbol": "AAPL", "analysts": ["risk"], "asOf": as_of}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string();
    let (done, _) = wait_until_done(c, server, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    done
}

/// The run's rating, and its outcome's horizons checked against the CSV files: the index's
/// return only where its prices cover the days (`with_index`), else absent — never a number
/// made from its last price before them.
fn check(done: &Value, o: &Value, day: &str, with_index: [bool; 2]) {
    assert_eq!(o["symbol"], "AAPL");
    assert_eq!(o["rating"], done["result"]["rating"]);
    assert_eq!(o["tradingDay"], day);
    assert_eq!(o["benchmark"], "^GSPC");
    let (aapl, index) = (closes("stocks_2013_2023/AAPL.csv"), closes("index/GSPC.csv"));
    let at = |rows: &[(String, f64)], day: &str| rows.iter().position(|(d, _)| d == day);
    let start = at(&aapl, day).unwrap();
    for ((h, days), with_index) in o["horizons"].as_array().unwrap().iter().zip([5usize, 20]).zip(with_index) {
        assert_eq!(h["days"], days);
        let (end_day, end_close) = &aapl[start + days];
        assert_eq!(h["date"], end_day.as_str());
        let stock = end_close / aapl[start].1 - 1.0;
        let got = |k: &str| h[k].as_f64();
        assert!((got("stockReturn").unwrap() - stock).abs() < 1e-12, "{h} vs {stock}");
        if with_index {
            let bench = index[at(&index, end_day).unwrap()].1 / index[at(&index, day).unwrap()].1 - 1.0;
            assert!((got("benchmarkReturn").unwrap() - bench).abs() < 1e-12, "{h} vs {bench}");
            assert!((got("excess").unwrap() - (stock - bench)).abs() < 1e-12, "{h}");
        } else {
            assert!(h.get("benchmarkReturn").is_none() && h.get("excess").is_none(), "{h}");
        }
        let right = match done["result"]["rating"].as_str().unwrap() {
            "Buy" | "Overweight" => Some(stock > 0.0),
            "Underweight" | "Sell" => Some(stock < 0.0),
            _ => None,
        };
        assert_eq!(h.get("right").and_then(Value::as_bool), right, "{h}");
    }
}

async fn outcome_of(c: &reqwest::Client, server: &Server, id: &str) -> Value {
    let resp = c.get(server.url(&format!("/api/trading/runs/{id}/outcome"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["outcome"].clone()
}

#[tokio::test]
async fn a_runs_returns_after_its_day_are_those_of_the_prices() {
    let server = Server::start(TestDb::sqlite(), &[]).await;
    let c = visitor(&server).await;
    // Inside the bundled index's years: the excess over it too.
    let done = run_as_of(&c, &server, Some("2019-06-03")).await;
    let id = done["runId"].as_str().unwrap();
    let o = outcome_of(&c, &server, id).await;
    check(&done, &o, "2019-06-03", [true, true]);
    // The run page shows it.
    let page = c.get(server.url(&format!("/runs/{id}"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("How it turned out") && page.contains("data-testid=\"outcome\""), "the card is there");
    let five = o["horizons"][0]["excess"].as_f64().unwrap();
    assert!(page.contains(&format!("{:+.2}%", five * 100.0 + 0.0)), "its 5-day excess is on the page");

    // After the bundled index ends: the stock's returns, no excess.
    let done = run_as_of(&c, &server, Some("2023-06-01")).await;
    let o = outcome_of(&c, &server, done["runId"].as_str().unwrap()).await;
    check(&done, &o, "2023-06-01", [false, false]);
    // Two weeks before the bundled index ends: its 5-day return, but not a 20-day one made from
    // its last price.
    let done = run_as_of(&c, &server, Some("2020-04-03")).await;
    let o = outcome_of(&c, &server, done["runId"].as_str().unwrap()).await;
    check(&done, &o, "2020-04-03", [true, false]);

    // As of the data's last day: the days after are not in the data yet.
    let last = run_as_of(&c, &server, None).await;
    let o = outcome_of(&c, &server, last["runId"].as_str().unwrap()).await;
    assert_eq!((o["tradingDay"].as_str(), o["dataEnd"].as_str()), (Some("2023-09-21"), Some("2023-09-21")));
    for h in o["horizons"].as_array().unwrap() {
        assert!(h.get("stockReturn").is_none() && h.get("date").is_none(), "{h}");
    }
    // Someone else's run is not there.
    let other = visitor(&server).await;
    let resp = other.get(server.url(&format!("/api/trading/runs/{id}/outcome"))).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

/// The history's ids, in order, for `query`.
async fn history(c: &reqwest::Client, server: &Server, query: &str) -> Vec<String> {
    let resp = c.get(server.url(&format!("/api/trading/runs?perPage=100&{query}"))).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{query}");
    let page: Value = resp.json().await.unwrap();
    page["runs"].as_array().unwrap().iter().map(|r| r["runId"].as_str().unwrap().to_string()).collect()
}

/// The history shows how each run turned out, and filters and sorts by it: the runs it finds
/// as called right (or wrong) over 20 trading days, and its order by the 20-day return, are
/// those of each run's own outcome — asked of the history first, so that it judges runs it
/// has never shown.
async fn the_history_filters_and_sorts_by_how_runs_turned_out(db: TestDb) {
    let server = Server::start(db, &[]).await;
    let c = visitor(&server).await;
    let plan = [
        ("AAPL", Some("2019-06-03")),
        ("AAPL", Some("2020-03-02")),
        ("NVDA", Some("2021-06-01")),
        ("AMZN", Some("2022-01-03")),
        ("META", Some("2022-06-01")),
        ("NFLX", Some("2018-10-01")),
        ("GOOG", Some("2016-06-01")),
        ("AAPL", None),
    ];
    // One after the other: an identity has a limit of active runs.
    let mut ids = Vec::new();
    for (symbol, as_of) in plan {
        let resp = c
            .post(server.url("/api/trading/run"))
            .json(&json!({"symbol": symbol, "analysts": ["technical", "risk"], "asOf": as_of}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let id = resp.json::<Value>().await.unwrap()["runId"].as_str().unwrap().to_string();
        let (done, _) = wait_until_done(&c, &server, &id, Duration::from_secs(60)).await;
        assert_eq!(done["status"], "completed", "{done}");
        ids.push(id);
    }

    // Asked of the history before anything else judged the runs.
    let right = history(&c, &server, "outcome=right").await;
    let wrong = history(&c, &server, "outcome=wrong").await;
    let best_first = history(&c, &server, "sort=-return").await;
    let worst_first = history(&c, &server, "sort=return").await;

    // What each run's own outcome says (its figures are checked against the CSV above).
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let mut twenty = Vec::new();
    for id in &newest_first {
        let o = outcome_of(&c, &server, id).await;
        let h = &o["horizons"][1];
        assert_eq!(h["days"], 20);
        twenty.push((id.clone(), h["stockReturn"].as_f64(), h["right"].as_bool()));
    }
    let called = |want: bool| -> Vec<String> {
        twenty.iter().filter(|(_, _, r)| *r == Some(want)).map(|(id, _, _)| id.clone()).collect()
    };
    assert_eq!(right, called(true), "newest first, only the runs called right");
    assert_eq!(wrong, called(false));
    assert!(!right.is_empty() && !wrong.is_empty(), "both kinds of call are among these runs: {twenty:?}");
    let mut by_return: Vec<&(String, Option<f64>, Option<bool>)> = twenty.iter().filter(|t| t.1.is_some()).collect();
    by_return.sort_by(|a, b| b.1.unwrap().total_cmp(&a.1.unwrap()));
    let mut expected: Vec<String> = by_return.iter().map(|t| t.0.clone()).collect();
    let unreached: Vec<String> = twenty.iter().filter(|t| t.1.is_none()).map(|t| t.0.clone()).collect();
    assert_eq!(unreached, [ids[7].clone()], "the run as of the data's last day has no 20-day return");
    expected.extend(unreached.iter().cloned());
    assert_eq!(best_first, expected, "highest 20-day return first, none last");
    expected.truncate(by_return.len());
    expected.reverse();
    expected.extend(unreached);
    assert_eq!(worst_first, expected, "lowest first, none still last");

    // Each row carries its outcome as the run's own endpoint gives it.
    let resp = c.get(server.url("/api/trading/runs?perPage=100")).send().await.unwrap();
    let page: Value = resp.json().await.unwrap();
    for row in page["runs"].as_array().unwrap() {
        let o = outcome_of(&c, &server, row["runId"].as_str().unwrap()).await;
        assert_eq!(row["outcome"], o["horizons"], "{row}");
    }

    // The page filters the same way, and its CSV keeps the order and the figures.
    let html = c.get(server.url("/runs?outcome=right")).send().await.unwrap().text().await.unwrap();
    for (id, _, r) in &twenty {
        assert_eq!(html.contains(&format!("data-run=\"{id}\"")), *r == Some(true), "{id}");
    }
    let csv = c.get(server.url("/runs.csv?sort=-return")).send().await.unwrap().text().await.unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let head = reader.headers().unwrap().clone();
    let column = |name: &str| head.iter().position(|h| h == name).unwrap();
    let (id_at, ret_at) = (column("run_id"), column("return_20d"));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.iter().map(|r| r[id_at].to_string()).collect::<Vec<_>>(), best_first);
    for (row, (_, ret, _)) in rows.iter().zip(by_return) {
        assert_eq!(row[ret_at].parse::<f64>().ok().map(|x| (x * 1e6).round()), ret.map(|x| (x * 1e6).round()));
    }

    // A cursor pages the newest-first order only.
    let resp = c.get(server.url("/api/trading/runs?sort=-return&cursor=1-1")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = c.get(server.url("/api/trading/runs?outcome=maybe")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn the_history_filters_and_sorts_by_how_runs_turned_out_sqlite() {
    the_history_filters_and_sorts_by_how_runs_turned_out(TestDb::sqlite()).await;
}

#[tokio::test]
async fn the_history_filters_and_sorts_by_how_runs_turned_out_postgres() {
    the_history_filters_and_sorts_by_how_runs_turned_out(TestDb::postgres().await).await;
}
