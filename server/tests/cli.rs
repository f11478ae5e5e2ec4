//! `server analyze`: one analysis in the terminal, through the same engine.

use std::process::Command;

fn analyze(args: &[&str]) -> std::process::Output {
    server("analyze", args)
}

fn server(command: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_server"))
        .arg(command)
        .args(args)
        .env_clear()
        .env("DATA_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../data"))
        .env("SIMULATED_LATENCY_MS", "0")
        .output()
        .expect("run the binary")
}

/// A `standard` run in the terminal shows the debate, the plan and the decision as text.
#[test]
fn analyze_prints_the_team_of_a_standard_run() {
    let out = analyze(&["AAPL", "--analysts", "invest", "--depth", "standard", "--as-of", "2020-02-14"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for part in [
        "The team (standard, one round of debate)",
        "Bull Researcher, round 1:",
        "Neutral Risk Analyst, round 1:",
        "Trader: ",
        "Plan: ",
        "Portfolio manager:",
    ] {
        assert!(stdout.contains(part), "no '{part}' in {stdout}");
    }
    assert!(!stdout.contains("**"), "{stdout}");
}

#[test]
fn analyze_prints_progress_then_the_assessment() {
    let out = analyze(&["AAPL", "--analysts", "invest,risk", "--model", "offline", "--as-of", "2020-02-14"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("AAPL as of 2020-02-14: "), "{stdout}");
    assert!(stdout.contains("Invest Analyst: ") && stdout.contains("Risk Analyst: "), "{stdout}");
    assert!(!stdout.contains("Technical Analyst"), "only the analysts asked for");
    assert!(stdout.contains("Model offline (rule-based) · 3 model calls"), "{stdout}");
    assert!(!stdout.contains("**") && !stdout.contains("_Rule-based"), "Markdown is rendered as text: {stdout}");
    assert!(stdout.contains("Rule-based analysis by the offline model"), "{stdout}");
    // Not a terminal: one progress line per change, ending at 100 %.
    let bars: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert!(bars.len() >= 2, "{stderr}");
    assert!(bars.last().unwrap().contains("100%"), "{stderr}");
}

#[test]
fn analyze_as_json_and_bad_input() {
    let out = analyze(&["msft", "--analysts", "technical", "--json"]);
    assert!(out.status.success());
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["result"]["symbol"], "MSFT");
    assert_eq!(body["result"]["asOf"], "2013-03-01");

    let out = analyze(&["TSLA", "--analysts", "astrology"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("analysts: 'astrology' is not an analyst"), "{stderr}");
}

/// `batch` runs one analysis per symbol and prints them as a table, most bullish first; its
/// JSON is the batch's view; a symbol without data is named.
#[test]
fn batch_prints_a_table_of_its_runs() {
    let out = server("batch", &["AAPL,NVDA,MSFT", "--analysts", "invest,technical", "--workers", "2", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["status"], "completed");
    assert_eq!(body["totals"]["completed"], 3);
    let symbols: Vec<&str> = body["runs"].as_array().unwrap().iter().map(|r| r["symbol"].as_str().unwrap()).collect();
    assert_eq!(symbols, ["AAPL", "NVDA", "MSFT"]);

    let out = server("batch", &["AAPL,NVDA,MSFT", "--analysts", "invest,technical"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("3 runs: 3 completed, 0 failed"), "{stdout}");
    // The table's rows in the order of the JSON's ratings, most bullish first.
    let scale = ["Buy", "Overweight", "Hold", "Underweight", "Sell"];
    let rank = |r: &serde_json::Value| scale.iter().position(|s| r["rating"] == *s).unwrap();
    let mut runs = body["runs"].as_array().unwrap().clone();
    runs.sort_by_key(rank);
    let rows: Vec<&str> = stdout.lines().filter(|l| scale.iter().any(|s| l.contains(s))).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for (row, run) in rows.iter().zip(&runs) {
        assert!(row.contains(run["rating"].as_str().unwrap()), "{row} vs {run}");
    }

    let out = server("batch", &["AAPL,TSLA"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("symbols: TSLA: no market data"), "{stderr}");
}

/// `schedule` runs a watchlist on its cron in the terminal: a batch a tick, each printed once it
/// has ended, the ticks the cron's seconds apart.
#[test]
fn schedule_runs_a_batch_on_each_tick() {
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["schedule", "AAPL,MSFT", "--cron", "*/2 * * * * *", "--ticks", "2", "--analysts", "invest"])
        .env_clear()
        .env("DATA_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../data"))
        .env("SIMULATED_LATENCY_MS", "0")
        .env("MIN_SCHEDULE_INTERVAL_SECS", "1")
        .output()
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ticks: Vec<chrono::DateTime<chrono::Utc>> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Tick "))
        .map(|l| l.split_whitespace().next().unwrap().trim_end_matches(':').parse().unwrap())
        .collect();
    assert_eq!(ticks.len(), 2, "{stdout}");
    assert_eq!(ticks[1] - ticks[0], chrono::Duration::seconds(2), "{stdout}");
    assert_eq!(stdout.matches("2 runs: 2 completed, 0 failed").count(), 2, "{stdout}");
    let out = server("schedule", &["AAPL", "--cron", "* * * * * *"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the shortest interval here is 300 s"));
}

/// `migrate` prepares a database; `janitor --once` archives finished runs past the retention
/// and leaves the rest.
#[tokio::test]
async fn migrate_and_janitor_once() {
    use std::sync::Arc;

    use jobs::job::{Finish, Outcome};
    use jobs::testing::{SCRIPTED, TestDb, new_job};
    use jobs::{Insert, InsertOutcome, ManualClock, State};

    let db = TestDb::sqlite();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_server")).args(args).env_clear().env("DATABASE_URL", &db.url).output().unwrap()
    };
    let out = run(&["migrate"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "migrations applied (sqlite)");

    // Two runs finished 40 days ago, one yesterday.
    let clock = ManualClock::new(chrono::Utc::now() - chrono::Duration::days(40));
    let store = db.store(Arc::new(clock.clone())).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        if i == 2 {
            clock.advance(chrono::Duration::days(39));
        }
        let job = new_job("u");
        assert!(matches!(store.insert(&Insert::one(job.clone())).await.unwrap(), InsertOutcome::Created(_)));
        let claimed =
            store.claim("w", chrono::Duration::seconds(30), 1, &[SCRIPTED.to_string()]).await.unwrap().pop().unwrap();
        let done = Finish {
            fence: claimed.fence().unwrap(),
            outcome: Outcome::Completed(serde_json::json!({})),
            progress: claimed.progress,
            checkpoints: Default::default(),
        };
        assert_eq!(store.finish(&[done]).await.unwrap(), vec![true]);
        ids.push(job.job_id);
    }
    let out = run(&["janitor", "--once"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "archived 2 finished runs older than 30 days\npruned 0 archived runs older than 365 days"
    );
    for id in &ids[..2] {
        let archived = store.get(*id).await.unwrap().unwrap();
        assert_eq!((archived.archived, archived.state), (true, State::Completed));
    }
    assert!(!store.get(ids[2]).await.unwrap().unwrap().archived);
}
