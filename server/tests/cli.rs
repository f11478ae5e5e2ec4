//! `server analyze`: one analysis in the terminal, through the same engine.

use std::process::Command;

fn analyze(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("analyze")
        .args(args)
        .env_clear()
        .env("DATA_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../data"))
        .env("SIMULATED_LATENCY_MS", "0")
        .output()
        .expect("run the binary")
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
