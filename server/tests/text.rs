//! The text the models write, as it is written: `event: text` messages on the event stream,
//! in order and resumable with `Last-Event-ID` without a hole or a repeat; the text so far in
//! a running step's object for pollers; and the transcript, whose text per step is the
//! stream's deltas joined — against the real server binary on SQLite and PostgreSQL, with the
//! offline model writing its text in pieces over its simulated latency; none of it with
//! `STREAM_TEXT=false`; and a model that goes silent mid-answer, named as stalled and then
//! given up.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Logs, Server, fake_catalog, start_run, visitor, wait_until_done};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use jobs::testing::TestDb;
use serde_json::{Value, json};

/// What a stream said: the text pieces per step, as (seq, delta) in arrival order, and for
/// each step whether a state showing it completed had already come when a piece arrived.
#[derive(Default)]
struct Seen {
    pieces: BTreeMap<String, Vec<(u64, String)>>,
    completed: Vec<String>,
    late: Vec<String>,
    last_id: Option<String>,
    last_state: Option<Value>,
}

impl Seen {
    /// Reads the stream from `last_id` until it ends, or until `cut_after` text events.
    async fn read(&mut self, c: &reqwest::Client, s: &Server, run_id: &str, cut_after: Option<usize>) -> bool {
        let mut req = c.get(s.url(&format!("/api/trading/events/{run_id}")));
        if let Some(id) = &self.last_id {
            req = req.header("last-event-id", id.clone());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut stream = resp.bytes_stream().eventsource();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut texts = 0;
        loop {
            let next = tokio::time::timeout_at(deadline.into(), stream.next()).await.expect("events in time");
            let Some(ev) = next else { return true };
            let ev = ev.expect("well-formed events");
            if ev.event == "heartbeat" {
                continue;
            }
            self.last_id = Some(ev.id.clone());
            let data: Value = serde_json::from_str(&ev.data).unwrap();
            if ev.event == "text" {
                let step = data["step"].as_str().unwrap().to_string();
                if self.completed.contains(&step) {
                    self.late.push(step.clone());
                }
                let seq = data["seq"].as_u64().unwrap();
                self.pieces.entry(step).or_default().push((seq, data["delta"].as_str().unwrap().to_string()));
                texts += 1;
                if cut_after.is_some_and(|n| texts >= n) {
                    return false;
                }
            } else {
                for step in data["steps"].as_array().unwrap() {
                    let name = step["name"].as_str().unwrap().to_string();
                    if step["status"] == "completed" && !self.completed.contains(&name) {
                        self.completed.push(name);
                    }
                }
                self.last_state = Some(data);
            }
        }
    }
}

fn contains_string(v: &Value, wanted: &str) -> bool {
    match v {
        Value::String(s) => s == wanted,
        Value::Array(a) => a.iter().any(|v| contains_string(v, wanted)),
        Value::Object(o) => o.values().any(|v| contains_string(v, wanted)),
        _ => false,
    }
}

async fn text_streams_resume_and_match_the_transcript(db: TestDb) {
    let server = Server::start(db, &[("SIMULATED_LATENCY_MS", "1500")]).await;
    let c = visitor(&server).await;
    let run_id = start_run(&c, &server, json!({"symbol": "AAPL", "analysts": ["invest", "risk"]})).await;

    // Cut the stream after its third piece of text, mid-step, and poll while it is cut: a
    // running step shows its text so far.
    let mut seen = Seen::default();
    assert!(!seen.read(&c, &server, &run_id, Some(3)).await, "the run is still writing");
    let cut_at = seen.last_id.clone().unwrap();
    assert!(cut_at.contains('.'), "a stream that sent text names its last piece: {cut_at}");
    let poll: Value =
        c.get(server.url(&format!("/api/trading/progress/{run_id}"))).send().await.unwrap().json().await.unwrap();
    let running: Vec<&Value> =
        poll["steps"].as_array().unwrap().iter().filter(|s| s["status"] == "in-progress").collect();
    assert!(
        running.iter().any(|s| s["text"].as_str().is_some_and(|t| !t.is_empty()) && s["lastOutputAt"].is_string()),
        "a running step shows its text so far: {poll}"
    );
    // So does the page, as the server renders it (what a browser without scripts refreshes to).
    let tail = running.iter().find_map(|s| s["text"].as_str()).unwrap();
    let words = tail.split(|c: char| !c.is_alphanumeric() && c != ' ').max_by_key(|w| w.len()).unwrap();
    assert!(words.len() >= 5, "{tail}");
    let page = c.get(server.url(&format!("/runs/{run_id}"))).send().await.unwrap().text().await.unwrap();
    let shown = page
        .split("data-testid=\"step-text\"")
        .skip(1)
        .any(|rest| rest[rest.find("<p>").unwrap()..rest.find("</p>").unwrap()].contains(words));
    assert!(shown, "the page shows the running step's text ({words:?})");

    // Resumed with Last-Event-ID, to the end.
    assert!(seen.read(&c, &server, &run_id, None).await, "the stream ends with the run");
    assert_eq!(seen.last_state.as_ref().unwrap()["status"], "completed");
    assert!(seen.late.is_empty(), "text after its step completed: {:?}", seen.late);

    let transcript: Value = c
        .get(server.url(&format!("/api/trading/runs/{run_id}/transcript")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = transcript["steps"].as_array().unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e["step"].as_str().unwrap()).collect();
    assert_eq!(names, ["Invest Analyst", "Risk Analyst", "Final Assessment"]);
    let result = &seen.last_state.as_ref().unwrap()["result"];
    for entry in entries {
        let step = entry["step"].as_str().unwrap();
        let pieces = &seen.pieces[step];
        let seqs: Vec<u64> = pieces.iter().map(|p| p.0).collect();
        assert_eq!(seqs, (0..pieces.len() as u64).collect::<Vec<_>>(), "{step}: no hole, no repeat");
        assert!(pieces.len() >= 3, "{step}: written in pieces over the latency, got {}", pieces.len());
        let joined: String = pieces.iter().map(|p| p.1.as_str()).collect();
        let text = entry["text"].as_str().unwrap();
        assert_eq!(joined, text, "{step}: the deltas joined are the transcript's text");
        assert!(contains_string(result, text), "{step}: the text is what the result shows");
        assert_eq!(entry["model"], "offline");
        assert!(entry["startedAt"].is_string() && entry["completedAt"].is_string());
    }
    assert_eq!(entries[0]["agent"], "Invest Analyst");

    // Someone else cannot read it; a share link can.
    let other = visitor(&server).await;
    let resp = other.get(server.url(&format!("/api/trading/runs/{run_id}/transcript"))).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let share: Value =
        c.post(server.url(&format!("/api/trading/runs/{run_id}/shares"))).send().await.unwrap().json().await.unwrap();
    let api = share["apiUrl"].as_str().unwrap();
    let shared: Value = other.get(server.url(&format!("{api}/transcript"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(shared, transcript);
}

#[tokio::test]
async fn text_streams_resume_and_match_the_transcript_on_sqlite() {
    text_streams_resume_and_match_the_transcript(TestDb::sqlite()).await;
}

#[tokio::test]
async fn text_streams_resume_and_match_the_transcript_on_postgres() {
    text_streams_resume_and_match_the_transcript(TestDb::postgres().await).await;
}

/// With `STREAM_TEXT=false` none of the text is kept: a running step shows none while its model
/// writes (and its `lastOutputAt` stays at its start), the stream carries the states and no
/// `event: text`, the transcript's texts are empty, and the run completes as ever.
async fn with_text_streaming_off_none_is_kept(db: TestDb) {
    let server = Server::start(db, &[("SIMULATED_LATENCY_MS", "1500"), ("STREAM_TEXT", "false")]).await;
    let c = visitor(&server).await;
    let run_id = start_run(&c, &server, json!({"symbol": "AAPL", "analysts": ["invest", "risk"]})).await;

    // Poll while the models write (a step past 30 % has written a piece): no step shows text.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut writing = 0;
    loop {
        let poll: Value =
            c.get(server.url(&format!("/api/trading/progress/{run_id}"))).send().await.unwrap().json().await.unwrap();
        for step in poll["steps"].as_array().unwrap() {
            assert!(step.get("text").is_none(), "no text kept: {step}");
            assert!(step.get("lastOutputAt").is_none_or(|at| *at == step["startedAt"]), "no output heard: {step}");
            writing += usize::from(step["status"] == "in-progress" && step["progress"].as_u64().unwrap_or(0) > 30);
        }
        if writing > 0 || !matches!(poll["status"].as_str(), Some("pending" | "running")) {
            break;
        }
        assert!(Instant::now() < deadline, "no step wrote within 30 s: {poll}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(writing > 0, "a poll saw a model writing");

    let mut seen = Seen::default();
    assert!(seen.read(&c, &server, &run_id, None).await, "the stream ends with the run");
    assert!(seen.pieces.is_empty(), "no text events: {:?}", seen.pieces.keys().collect::<Vec<_>>());
    assert_eq!(seen.last_state.as_ref().unwrap()["status"], "completed");
    let transcript: Value = c
        .get(server.url(&format!("/api/trading/runs/{run_id}/transcript")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = transcript["steps"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{transcript}");
    assert!(entries.iter().all(|e| e["text"] == ""), "{transcript}");
}

#[tokio::test]
async fn with_text_streaming_off_none_is_kept_on_sqlite() {
    with_text_streaming_off_none_is_kept(TestDb::sqlite()).await;
}

#[tokio::test]
async fn with_text_streaming_off_none_is_kept_on_postgres() {
    with_text_streaming_off_none_is_kept(TestDb::postgres().await).await;
}

/// A provider that streams two pieces and then says nothing: the step shows its text so far and
/// is marked stalled after `STALL_AFTER_SECS`, naming the model, since when, and when it gives
/// up; each attempt is abandoned after `STALL_TIMEOUT_SECS`; with the retries spent the run
/// fails with a message naming the model and the silence, and the log says so.
async fn a_silent_model_is_named_stalled_then_given_up(db: TestDb) {
    let fake = agents::testing::FakeLlm::start().await;
    let catalog = fake_catalog(&std::env::temp_dir(), &fake.base_url("stall"));
    let (server, logs): (Server, Logs) = Server::start_logged(
        db,
        &[
            ("MODEL_CATALOG", catalog.to_str().unwrap()),
            ("FAKE_API_KEY", "sk-test"),
            ("STALL_AFTER_SECS", "1"),
            ("STALL_TIMEOUT_SECS", "2"),
        ],
    )
    .await;
    let c = visitor(&server).await;
    let run_id = start_run(&c, &server, json!({"symbol": "AAPL", "modelId": "fake", "analysts": ["risk"]})).await;

    // Poll until the step says it is stalled.
    let deadline = Instant::now() + Duration::from_secs(30);
    let step = loop {
        let poll: Value =
            c.get(server.url(&format!("/api/trading/progress/{run_id}"))).send().await.unwrap().json().await.unwrap();
        let stalled = poll["steps"].as_array().unwrap().iter().find(|s| s["stalled"] == true).cloned();
        if let Some(step) = stalled {
            break step;
        }
        assert!(
            matches!(poll["status"].as_str(), Some("pending" | "running")),
            "ended before any step stalled: {poll}"
        );
        assert!(Instant::now() < deadline, "no step stalled within 30 s: {poll}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(step["name"], "Risk Analyst");
    assert_eq!(step["status"], "in-progress");
    assert_eq!(step["stall"]["model"], "Fake");
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!((at(&step["stall"]["givesUpAt"]) - at(&step["stall"]["since"])).num_milliseconds(), 2_000);
    assert!(step["text"].as_str().is_some_and(|t| !t.is_empty()), "the two pieces it wrote are shown: {step}");
    // The page names the silence too (a stall lasts a second here: it may be over by now).
    let page = c.get(server.url(&format!("/runs/{run_id}"))).send().await.unwrap().text().await.unwrap();
    if page.contains("data-testid=\"step-stall\"") {
        assert!(page.contains("No output from Fake for ") && page.contains("gives up at 2 s"), "{page}");
    }

    let (done, _) = wait_until_done(&c, &server, &run_id, Duration::from_secs(60)).await;
    let _ = std::fs::remove_file(&catalog);
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("Risk Analyst (fake): no output from Fake for 2 s (4 tries)"), "{error}");
    let risk = done["steps"].as_array().unwrap().iter().find(|s| s["name"] == "Risk Analyst").unwrap();
    assert_eq!(risk["status"], "failed");
    assert!(risk.get("stalled").is_none() && risk.get("stall").is_none(), "a failed step is not stalled: {risk}");
    // One first try and three retries, each given up.
    assert_eq!(fake.calls().len(), 4);
    let lines = logs.settle(&server, "after-the-stall").await;
    let stalled = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["fields"]["message"] == "Stalled: no output from the model" && l["fields"]["runId"] == run_id.as_str()
        })
        .count();
    assert_eq!(stalled, 4, "the log says so, once an attempt");
    // And so does the run's own log: four stalls, three retries for the silence, the failure.
    let log: Value =
        c.get(server.url(&format!("/api/trading/runs/{run_id}/log"))).send().await.unwrap().json().await.unwrap();
    let entries = log["entries"].as_array().unwrap();
    let of = |kind: &str| entries.iter().filter(|e| e["kind"] == kind).collect::<Vec<_>>();
    let stalls = of("stalled");
    assert_eq!(stalls.len(), 4, "{log}");
    for s in &stalls {
        assert_eq!((s["step"].as_str(), s["model"].as_str()), (Some("Risk Analyst"), Some("Fake")));
        assert_eq!((at(&s["givesUpAt"]) - at(&s["since"])).num_milliseconds(), 2_000);
    }
    let retries = of("retry");
    let reasons: Vec<&str> = retries.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["no output from Fake for 2 s"; 3], "{log}");
    assert!(retries.iter().all(|r| r.get("status").is_none()), "no HTTP status for a silence: {log}");
    let ended = of("ended");
    assert_eq!(ended.len(), 1, "{log}");
    assert_eq!((ended[0]["status"].as_str(), ended[0]["step"].as_str()), (Some("failed"), Some("Risk Analyst")));
    assert!(ended[0]["message"].as_str().unwrap().contains("no output from Fake for 2 s (4 tries)"), "{log}");
}

#[tokio::test]
async fn a_silent_model_is_named_stalled_then_given_up_on_sqlite() {
    a_silent_model_is_named_stalled_then_given_up(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_silent_model_is_named_stalled_then_given_up_on_postgres() {
    a_silent_model_is_named_stalled_then_given_up(TestDb::postgres().await).await;
}
