//! A 500-cell offline backtest through the release server with 4 workers, on SQLite and
//! PostgreSQL: its wall time, and how long an interactive run started while it runs waits for a
//! worker (from its POST to its `startedAt`), for the backtest's owner and for someone else.
//!
//! cargo build --release -p server && \
//! cargo run --release -p bench --bin backtest -- [--backends sqlite,postgres] [--latency-ms 0] [--statements]
//!
//! `--statements` also prints, per backend, how many times each store operation ran during the
//! backtest and the time it took in all (the server's `/metrics`), slowest total first.

#[allow(dead_code)]
#[path = "../served.rs"]
mod served;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use served::{Backend, Served};

const SYMBOLS: [&str; 5] = ["AAPL", "AMZN", "GOOG", "META", "NFLX"];
/// 100 as-of dates every 5 trading days: 2016-01-04 … 2017-12-19, so 500 cells.
const FROM: &str = "2016-01-01";
const TO: &str = "2017-12-22";
const EVERY: u32 = 5;
const PROBES: usize = 5;

async fn get(client: &reqwest::Client, url: &str, cookie: &str) -> Value {
    client.get(url).header(reqwest::header::COOKIE, cookie).send().await.expect("get").json().await.expect("json")
}

/// Starts an interactive run as `cookie` and waits until a worker has claimed it: the wait.
async fn probe(client: &reqwest::Client, base: &str, cookie: &str) -> Duration {
    let posted = Utc::now();
    let run = served::start_run(client, base, cookie).await.expect("an interactive run starts");
    loop {
        let p = get(client, &format!("{base}/api/trading/progress/{run}"), cookie).await;
        if let Some(started) = p["startedAt"].as_str() {
            let started: DateTime<Utc> = started.parse().expect("a time");
            return (started - posted).to_std().unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Per store operation: how many ran and their total seconds, from the server's `/metrics`.
async fn statements(client: &reqwest::Client, base: &str) -> Vec<(String, u64, f64)> {
    let body = client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("text");
    let mut times = server::http::telemetry::statement_times(&body);
    times.sort_by(|a, b| b.2.total_cmp(&a.2));
    times
}

struct Outcome {
    cells: usize,
    wall: Duration,
    mine: Vec<Duration>,
    theirs: Vec<Duration>,
    statements: Vec<(String, u64, f64)>,
}

async fn run(backend: Backend, latency_ms: u64) -> Outcome {
    let env = [
        ("WORKERS", "4".to_string()),
        ("MAX_RUNNING_CELLS_PER_USER", "4".to_string()),
        ("SIMULATED_LATENCY_MS", latency_ms.to_string()),
    ];
    let served = Served::start(&served::server_binary(), backend, &env).await;
    let base = served.base.clone();
    let client = reqwest::Client::new();
    let owner = served::new_identity(&client, &base).await;
    let other = served::new_identity(&client, &base).await;
    let start = Instant::now();
    let resp = client
        .post(format!("{base}/api/trading/backtests"))
        .header(reqwest::header::COOKIE, &owner)
        .json(&json!({"symbols": SYMBOLS, "from": FROM, "to": TO, "everyDays": EVERY}))
        .send()
        .await
        .expect("start the backtest");
    assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
    let started: Value = resp.json().await.expect("json");
    let cells = started["cells"].as_u64().expect("cells") as usize;
    let id = started["backtestId"].as_str().expect("id").to_string();
    let url = format!("{base}/api/trading/backtests/{id}");

    // Probes spread over the backtest: one every tenth of the cells.
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    let mut next_probe = cells / (PROBES + 1);
    loop {
        let view = get(&client, &url, &owner).await;
        let done = view["cells"].as_array().expect("cells").iter().filter(|c| c["status"] == "completed").count();
        if view["status"] != "running" {
            break;
        }
        if done >= next_probe && mine.len() < PROBES {
            mine.push(probe(&client, &base, &owner).await);
            theirs.push(probe(&client, &base, &other).await);
            next_probe += cells / (PROBES + 1);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let wall = start.elapsed();
    let statements = statements(&client, &base).await;
    served.stop().await;
    Outcome { cells, wall, mine, theirs, statements }
}

fn ms(d: &[Duration]) -> String {
    let v: Vec<String> = d.iter().map(|d| format!("{}", d.as_millis())).collect();
    v.join(", ")
}

#[tokio::main]
async fn main() {
    let backends: Vec<String> = bench::list("--backends", &["sqlite".to_string(), "postgres".to_string()]);
    let latency_ms: u64 = bench::arg("--latency-ms", 0);
    let show_statements = std::env::args().any(|a| a == "--statements");
    println!("{}\n", bench::machine());
    println!(
        "| backend | cells | workers | model latency | wall time | cells/s | owner's run waits (ms) | another user's run waits (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut profiles = Vec::new();
    for b in backends {
        let backend = Backend::parse(&b);
        let o = run(backend, latency_ms).await;
        println!(
            "| {} | {} | 4 | {latency_ms} ms | {:.1} s | {:.1} | {} | {} |",
            backend.label(),
            o.cells,
            o.wall.as_secs_f64(),
            o.cells as f64 / o.wall.as_secs_f64(),
            ms(&o.mine),
            ms(&o.theirs)
        );
        profiles.push((backend, o.statements));
    }
    if show_statements {
        for (backend, statements) in profiles {
            println!("\n{}: store operations during the backtest\n", backend.label());
            println!("| operation | count | total ms | mean ms |");
            println!("|---|---:|---:|---:|");
            for (name, n, secs) in statements {
                println!("| {name} | {n} | {:.0} | {:.2} |", secs * 1000.0, secs * 1000.0 / n.max(1) as f64);
            }
        }
    }
}
