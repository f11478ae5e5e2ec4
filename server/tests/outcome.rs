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
