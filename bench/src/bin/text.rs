//! Streamed model text under load, with the server's text streaming on and off (`STREAM_TEXT`),
//! each mode on a fresh server and database of one backend.
//!
//! `--runs` owners (100) each start one analysis at the same moment: AAPL with all four
//! analysts at the default depth (`quick`), so five model steps, the four analysts at once and
//! then the final assessment. The offline model waits `--latency-ms` (5,000) per call and
//! writes each step's text in 25 pieces over that time; the worker stores a running step's
//! text at most every 250 ms, or at once past 2 KB, and when the step ends
//! (`application::analysis`). `WORKERS` is the number of runs, so all run at once. Each run is
//! followed to its end by:
//!
//! - `--streams` (10) SSE viewers, each its own connection, reading `GET
//!   /api/trading/events/{runId}` until the server ends it after the terminal state (and
//!   reconnecting with `Last-Event-ID`, as `EventSource` does, if it breaks). A viewer joins
//!   each step's `event: text` deltas and checks that their `seq` counts 0, 1, 2… per step,
//!   that no piece of a step comes after a state showing the step completed, and that ids
//!   increase;
//! - `--pollers` (10) pollers, each its own connection, asking for the run's progress every 2 s
//!   with the last ETag (`If-None-Match`), spread over the 2 s, until the run has ended; each
//!   keeps the text its running steps showed.
//!
//! When every run has ended, each run's transcript is read and every viewer's joined text per
//! step is compared with it byte for byte; so is each running step's text a poller saw (it
//! must occur in its step's whole text). With streaming off there must be no text at all.
//!
//! Measured, from the database the server wrote (`trading_agent_text`, `queue_jobs`): the text
//! rows per run and per second of the run, the most in any one second of a run and of a step,
//! each step's rows against what the coalescing allows it (one row per 250 ms tick during the
//! step, one when it ends, one per 2 KB), and the progress documents written per run (its
//! version: each claim, write and end adds one); how long after it was stored a piece reached
//! a viewer; the polls' statuses and latency; the server's resident memory sampled every
//! 250 ms and its peak (`VmHWM`), and the CPU time it used.
//!
//! cargo build --release -p server -p bench &&
//! cargo run --release -p bench --bin text -- --backend sqlite|postgres [--text on,off]
//!     [--runs 100] [--streams 10] [--pollers 10] [--latency-ms 5000] [--server PATH]

#[allow(dead_code)]
#[path = "../served.rs"]
mod served;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, ETAG, IF_NONE_MATCH};
use served::{Backend, Served};
use tokio::time::{Instant, MissedTickBehavior};

const POLL_EVERY: Duration = Duration::from_secs(2);
/// What `EventSource` waits before reconnecting (the server's `retry:`).
const RETRY: Duration = Duration::from_secs(2);
/// Reconnects a viewer makes before giving up.
const RECONNECTS: u32 = 5;
/// The worker's coalescing of text writes (`application::analysis`).
const FLUSH_EVERY_MS: i64 = application::analysis::TEXT_FLUSH_EVERY.as_millis() as i64;
const FLUSH_BYTES: usize = application::analysis::TEXT_FLUSH_BYTES;
/// Polls sent this long after the runs started are counted apart too: by then every client has
/// connected.
const SETTLED: Duration = Duration::from_secs(5);
/// Polls slower than this are counted by the second they were sent in.
const SLOW: Duration = Duration::from_millis(100);
/// How long every run may take to end, with the machine overloaded, before the clients give up.
const DEADLINE: Duration = Duration::from_secs(600);

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

/// A run and its owner's identity.
struct Run {
    cookie: String,
    id: String,
    /// The distinct texts pollers saw in the run's running steps: (step, text).
    tails: Mutex<HashSet<(String, String)>>,
}

fn note(count: &mut u64, samples: &mut Vec<String>, e: String) {
    *count += 1;
    if samples.len() < 3 {
        samples.push(e);
    }
}

// ---- SSE viewers ----

/// What one viewer saw, over all its connections.
#[derive(Default)]
struct Viewer {
    run: usize,
    /// Each step's deltas, joined in arrival order.
    texts: HashMap<String, String>,
    next_seq: HashMap<String, u64>,
    pieces: u64,
    /// Pieces whose `seq` was not the step's next one: a hole or a repeat.
    seq_errors: u64,
    /// Pieces of a step that came after a state showing it completed.
    late: u64,
    completed: HashSet<String>,
    states: u64,
    ids_not_increasing: u64,
    last_id: Option<(i64, i64)>,
    last_id_raw: Option<String>,
    ended_terminal: bool,
    errors: u64,
    error_samples: Vec<String>,
    reconnects: u32,
    /// Each piece's id (its row in `trading_agent_text`) and when it arrived (epoch ms).
    arrivals: Vec<(i64, i64)>,
}

/// `<version>` or `<version>.<piece>`, ordered as the server orders them.
fn parse_id(id: &str) -> Option<(i64, i64)> {
    match id.split_once('.') {
        Some((v, p)) => Some((v.parse().ok()?, p.parse().ok()?)),
        None => Some((id.parse().ok()?, -1)),
    }
}

async fn view(base: String, run: Arc<Run>, index: usize, deadline: Instant) -> Viewer {
    let client = reqwest::Client::new();
    let mut v = Viewer { run: index, ..Viewer::default() };
    loop {
        match follow(&client, &base, &run, &mut v, deadline).await {
            Ok(()) if v.ended_terminal => break,
            Ok(()) => note(&mut v.errors, &mut v.error_samples, "the stream ended before the run".into()),
            Err(e) => note(&mut v.errors, &mut v.error_samples, e),
        }
        if v.reconnects >= RECONNECTS || Instant::now() + RETRY >= deadline {
            break;
        }
        v.reconnects += 1;
        tokio::time::sleep(RETRY).await;
    }
    v
}

/// One connection: reads events until the server ends the stream.
async fn follow(
    client: &reqwest::Client,
    base: &str,
    run: &Run,
    v: &mut Viewer,
    deadline: Instant,
) -> Result<(), String> {
    let mut req = client
        .get(format!("{base}/api/trading/events/{}", run.id))
        .header(COOKIE, &run.cookie)
        .header(ACCEPT, "text/event-stream");
    if let Some(id) = &v.last_id_raw {
        req = req.header("last-event-id", id);
    }
    let resp = match tokio::time::timeout_at(deadline, req.send()).await {
        Err(_) => return Err("open: no answer in time".into()),
        Ok(r) => r.map_err(|e| format!("open: {e}"))?,
    };
    let status = resp.status();
    let kind = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if status != StatusCode::OK || !kind.starts_with("text/event-stream") {
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("open: {status} {kind} {}", body.chars().take(200).collect::<String>()));
    }
    let mut events = resp.bytes_stream().eventsource();
    loop {
        let ev = match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => return Err("the stream did not end in time".into()),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(format!("stream: {e}")),
            Ok(Some(Ok(ev))) => ev,
        };
        if ev.event == "heartbeat" {
            continue;
        }
        if v.ended_terminal {
            return Err("an event after the terminal state".into());
        }
        let id = parse_id(&ev.id).ok_or_else(|| format!("id '{}' is not <version>[.<piece>]", ev.id))?;
        if v.last_id.is_some_and(|last| id <= last) {
            v.ids_not_increasing += 1;
        }
        v.last_id = Some(id);
        v.last_id_raw = Some(ev.id.clone());
        match ev.event.as_str() {
            "text" => {
                let arrived = now_ms();
                let d: domain::TextDelta = serde_json::from_str(&ev.data).map_err(|e| format!("text data: {e}"))?;
                v.arrivals.push((id.1, arrived));
                let next = v.next_seq.entry(d.step.clone()).or_insert(0);
                if u64::from(d.seq) != *next {
                    v.seq_errors += 1;
                }
                *next = u64::from(d.seq) + 1;
                if v.completed.contains(&d.step) {
                    v.late += 1;
                }
                v.texts.entry(d.step).or_default().push_str(&d.delta);
                v.pieces += 1;
            }
            "message" => {
                let body: serde_json::Value = serde_json::from_str(&ev.data).map_err(|e| format!("state data: {e}"))?;
                v.states += 1;
                for step in body["steps"].as_array().into_iter().flatten() {
                    if step["status"] == "completed"
                        && let Some(name) = step["name"].as_str()
                    {
                        v.completed.insert(name.to_string());
                    }
                }
                v.ended_terminal = served::is_terminal(&body);
            }
            other => return Err(format!("unexpected event '{other}'")),
        }
    }
}

// ---- pollers ----

#[derive(Default)]
struct Poller {
    latencies_us: Vec<u32>,
    /// Those of the polls sent from [`SETTLED`] after the runs started on.
    settled_us: Vec<u32>,
    /// The second since the runs started in which each poll slower than [`SLOW`] was sent.
    slow_at: Vec<u64>,
    full: u64,
    not_modified: u64,
    /// 200s in which a running step showed text.
    with_text: u64,
    errors: u64,
    error_samples: Vec<String>,
}

async fn poll(base: String, run: Arc<Run>, offset: Duration, began: Instant, deadline: Instant) -> Poller {
    let client = reqwest::Client::new();
    let mut p = Poller::default();
    let mut etag: Option<String> = None;
    tokio::time::sleep(offset).await;
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if Instant::now() >= deadline {
            note(&mut p.errors, &mut p.error_samples, "the run did not end in time".into());
            return p;
        }
        let mut req = client.get(format!("{base}/api/trading/progress/{}", run.id)).header(COOKIE, &run.cookie);
        if let Some(tag) = &etag {
            req = req.header(IF_NONE_MATCH, tag);
        }
        let sent = Instant::now();
        let answer = async {
            let resp = req.send().await.map_err(|e| format!("transport: {e}"))?;
            let status = resp.status();
            let tag = resp.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
            Ok::<_, String>((status, tag, body))
        }
        .await;
        let took = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
        p.latencies_us.push(took);
        if sent >= began + SETTLED {
            p.settled_us.push(took);
        }
        if sent.elapsed() >= SLOW {
            p.slow_at.push((sent - began).as_secs());
        }
        match answer {
            Ok((StatusCode::NOT_MODIFIED, _, _)) => p.not_modified += 1,
            Ok((StatusCode::OK, tag, body)) => {
                p.full += 1;
                etag = tag;
                let body: serde_json::Value = match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        note(&mut p.errors, &mut p.error_samples, format!("progress JSON: {e}"));
                        continue;
                    }
                };
                let mut shown = false;
                for step in body["steps"].as_array().into_iter().flatten() {
                    if let (Some(name), Some(text)) = (step["name"].as_str(), step["text"].as_str())
                        && !text.is_empty()
                    {
                        shown = true;
                        run.tails.lock().expect("not poisoned").insert((name.to_string(), text.to_string()));
                    }
                }
                p.with_text += u64::from(shown);
                if served::is_terminal(&body) {
                    return p;
                }
            }
            Ok((status, _, body)) => note(
                &mut p.errors,
                &mut p.error_samples,
                format!("{status}: {}", String::from_utf8_lossy(&body).chars().take(200).collect::<String>()),
            ),
            Err(e) => note(&mut p.errors, &mut p.error_samples, e),
        }
    }
}

// ---- the database ----

/// Rows of `sql` from the server's database, on either backend.
async fn rows<T>(url: &str, sql: &'static str) -> Vec<T>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
{
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.expect("the server's database");
        sqlx::query_as::<_, T>(sql).fetch_all(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("the server's database");
        sqlx::query_as::<_, T>(sql).fetch_all(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// The most of `times` (epoch ms, sorted) in any window of one second.
fn most_in_a_second(times: &[i64]) -> usize {
    let mut most = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= 1000 {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

// ---- one mode ----

/// What one mode measured.
#[derive(Default)]
struct Outcome {
    backend: &'static str,
    text: bool,
    runs: usize,
    start_errors: Vec<String>,
    completed: usize,
    durations_s: Vec<f64>,
    /// Each model step's, from the transcripts.
    step_durations_s: Vec<f64>,
    queue_wait_max_s: f64,
    elapsed_s: f64,
    // Viewers.
    viewers: usize,
    pieces: u64,
    states: u64,
    exact: usize,
    step_texts: usize,
    step_bytes: usize,
    mismatched: usize,
    mismatch_samples: Vec<String>,
    seq_errors: u64,
    late: u64,
    ids_not_increasing: u64,
    ended_terminal: usize,
    stream_errors: u64,
    reconnects: u64,
    stream_error_samples: Vec<String>,
    /// Each piece a viewer received: its id and when it arrived (epoch ms).
    arrivals: Vec<(i64, i64)>,
    /// From its row's `created_at` to its arrival, sorted.
    delivery_ms: Vec<i64>,
    // Pollers.
    poll_latencies_us: Vec<u32>,
    poll_settled_us: Vec<u32>,
    poll_slow_at: Vec<u64>,
    poll_full: u64,
    poll_not_modified: u64,
    poll_with_text: u64,
    poll_errors: u64,
    poll_error_samples: Vec<String>,
    tails: usize,
    tails_not_in_transcript: usize,
    // The database.
    text_rows: Vec<usize>,
    text_per_s: Vec<f64>,
    most_run_second: usize,
    most_step_second: usize,
    steps_counted: usize,
    steps_over_bound: usize,
    rows_allowed: usize,
    versions: Vec<i64>,
    versions_per_s: Vec<f64>,
    // The server.
    rss_max_mb: f64,
    rss_mean_mb: f64,
    hwm_mb: f64,
    cpu_s: f64,
    load: String,
}

struct Settings {
    runs: usize,
    streams: usize,
    pollers: usize,
    latency: Duration,
}

async fn measure(backend: Backend, text: bool, s: &Settings) -> Outcome {
    let env = [
        ("SIMULATED_LATENCY_MS", s.latency.as_millis().to_string()),
        ("WORKERS", s.runs.to_string()),
        ("MAX_ACTIVE_JOBS_PER_USER", "3".to_string()),
        ("MAX_STREAMS", (s.runs * s.streams * 2).to_string()),
        // A reconnecting viewer's old stream may not have let go of its slot yet.
        ("MAX_STREAMS_PER_USER", (s.streams * 2).to_string()),
        ("RUNS_PER_MINUTE_PER_ADDRESS", "0".to_string()),
        ("RUNS_PER_MINUTE_PER_USER", "0".to_string()),
        ("STREAM_TEXT", text.to_string()),
    ];
    let server = Served::start(&served::server_binary(), backend, &env).await;
    let base = server.base.clone();
    let mut out = Outcome { backend: backend.label(), text, ..Outcome::default() };
    let client = reqwest::Client::new();
    let mut cookies = Vec::with_capacity(s.runs);
    for _ in 0..s.runs {
        cookies.push(served::new_identity(&client, &base).await);
    }
    let cpu_before = server.cpu_secs();
    let began = Instant::now();
    let deadline = began + DEADLINE;
    // Every run at once.
    let started = futures::future::join_all(cookies.iter().map(|c| served::start_run(&client, &base, c))).await;
    let mut runs = Vec::with_capacity(s.runs);
    for (cookie, r) in cookies.into_iter().zip(started) {
        match r {
            Ok(id) => runs.push(Arc::new(Run { cookie, id, tails: Mutex::default() })),
            Err(e) => out.start_errors.push(e),
        }
    }
    out.runs = runs.len();
    let mut viewers = Vec::new();
    let mut pollers = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        for _ in 0..s.streams {
            viewers.push(tokio::spawn(view(base.clone(), run.clone(), i, deadline)));
        }
        for j in 0..s.pollers {
            let offset = POLL_EVERY.mul_f64(j as f64 / s.pollers as f64);
            pollers.push(tokio::spawn(poll(base.clone(), run.clone(), offset, began, deadline)));
        }
    }
    let clients = async { (futures::future::join_all(viewers).await, futures::future::join_all(pollers).await) };
    tokio::pin!(clients);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let (mut rss_sum, mut samples) = (0.0, 0usize);
    let (viewers, pollers) = loop {
        tokio::select! {
            done = &mut clients => break done,
            _ = tick.tick() => {
                let (rss, hwm) = server.memory_mb();
                out.rss_max_mb = out.rss_max_mb.max(rss);
                out.hwm_mb = out.hwm_mb.max(hwm);
                rss_sum += rss;
                samples += 1;
            }
        }
    };
    out.elapsed_s = began.elapsed().as_secs_f64();
    out.cpu_s = server.cpu_secs() - cpu_before;
    out.hwm_mb = out.hwm_mb.max(server.memory_mb().1);
    out.rss_mean_mb = rss_sum / samples.max(1) as f64;
    out.load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");

    // Each run's whole text.
    let mut transcripts: Vec<domain::Transcript> = Vec::with_capacity(runs.len());
    for run in &runs {
        let resp = client
            .get(format!("{base}/api/trading/runs/{}/transcript", run.id))
            .header(COOKIE, &run.cookie)
            .send()
            .await
            .expect("the transcript");
        assert_eq!(resp.status(), StatusCode::OK, "the transcript of {}", run.id);
        transcripts.push(resp.json().await.expect("the transcript's JSON"));
    }
    let texts: Vec<HashMap<&str, &str>> =
        transcripts.iter().map(|t| t.steps.iter().map(|e| (e.step.as_str(), e.text.as_str())).collect()).collect();

    // Every viewer's text against its run's.
    for v in viewers {
        let v = v.expect("viewer");
        out.viewers += 1;
        out.pieces += v.pieces;
        out.states += v.states;
        out.seq_errors += v.seq_errors;
        out.late += v.late;
        out.ids_not_increasing += v.ids_not_increasing;
        out.ended_terminal += usize::from(v.ended_terminal);
        out.stream_errors += v.errors;
        out.reconnects += u64::from(v.reconnects);
        for e in v.error_samples {
            if out.stream_error_samples.len() < 5 {
                out.stream_error_samples.push(e);
            }
        }
        let whole = &texts[v.run];
        let mut exact = true;
        let steps: HashSet<&str> = whole.keys().copied().chain(v.texts.keys().map(String::as_str)).collect();
        for step in steps {
            let want = whole.get(step).copied().unwrap_or("");
            let got = v.texts.get(step).map(String::as_str).unwrap_or("");
            out.step_texts += 1;
            out.step_bytes += want.len();
            if got != want {
                exact = false;
                out.mismatched += 1;
                if out.mismatch_samples.len() < 3 {
                    out.mismatch_samples.push(format!(
                        "run {} step {step}: viewer {} bytes, transcript {} bytes",
                        runs[v.run].id,
                        got.len(),
                        want.len()
                    ));
                }
            }
        }
        out.exact += usize::from(exact);
        out.arrivals.extend(v.arrivals);
    }
    // What the pollers saw.
    for p in pollers {
        let p = p.expect("poller");
        out.poll_latencies_us.extend(p.latencies_us);
        out.poll_settled_us.extend(p.settled_us);
        out.poll_slow_at.extend(p.slow_at);
        out.poll_full += p.full;
        out.poll_not_modified += p.not_modified;
        out.poll_with_text += p.with_text;
        out.poll_errors += p.errors;
        for e in p.error_samples {
            if out.poll_error_samples.len() < 5 {
                out.poll_error_samples.push(e);
            }
        }
    }
    for (i, run) in runs.iter().enumerate() {
        for (step, tail) in run.tails.lock().expect("not poisoned").iter() {
            out.tails += 1;
            if !texts[i].get(step.as_str()).is_some_and(|whole| whole.contains(tail.as_str())) {
                out.tails_not_in_transcript += 1;
            }
        }
    }
    out.poll_latencies_us.sort_unstable();
    out.poll_settled_us.sort_unstable();

    database(&server, &runs, &transcripts, &mut out).await;
    server.stop().await;
    out
}

/// A run's row of `queue_jobs`; times in epoch milliseconds.
#[derive(Clone, sqlx::FromRow)]
struct JobRow {
    id: String,
    state: String,
    version: i64,
    created_at: i64,
    started_at: Option<i64>,
    completed_at: Option<i64>,
}

/// What the server wrote: the text rows of each run and step, and each run's version and times.
async fn database(server: &Served, runs: &[Arc<Run>], transcripts: &[domain::Transcript], out: &mut Outcome) {
    let url = server.database_url();
    let text: Vec<(i64, String, String, String, i64)> =
        rows(url, "select id, run_id, step, delta, created_at from trading_agent_text").await;
    let jobs: Vec<JobRow> = rows(
        url,
        "select cast(job_id as text) as id, state, version, created_at, started_at, completed_at
         from queue_jobs where kind = 'analysis'",
    )
    .await;
    let stored: HashMap<i64, i64> = text.iter().map(|r| (r.0, r.4)).collect();
    out.delivery_ms = out.arrivals.iter().filter_map(|(piece, at)| stored.get(piece).map(|made| at - made)).collect();
    out.delivery_ms.sort_unstable();
    // Per run and step: the rows' times and bytes.
    let mut by_step: HashMap<(String, String), (Vec<i64>, usize)> = HashMap::new();
    for (_, run, step, delta, at) in text {
        let e = by_step.entry((run.to_lowercase(), step)).or_default();
        e.0.push(at);
        e.1 += delta.len();
    }
    let jobs: HashMap<String, JobRow> = jobs.into_iter().map(|j| (j.id.to_lowercase(), j)).collect();
    for (run, transcript) in runs.iter().zip(transcripts) {
        let id = run.id.to_lowercase();
        let Some(JobRow {
            state, version, created_at: made, started_at: Some(began), completed_at: Some(ended), ..
        }) = jobs.get(&id).cloned()
        else {
            continue;
        };
        out.completed += usize::from(state == "completed");
        let secs = (ended - began) as f64 / 1000.0;
        out.durations_s.push(secs);
        out.queue_wait_max_s = out.queue_wait_max_s.max((began - made) as f64 / 1000.0);
        // Each claim, progress write and the end add one to the version it was created with.
        out.versions.push(version - 1);
        out.versions_per_s.push((version - 1) as f64 / secs);
        let mut all = Vec::new();
        for entry in &transcript.steps {
            let (times, bytes) = by_step.get(&(id.clone(), entry.step.clone())).cloned().unwrap_or_default();
            let mut times = times;
            times.sort_unstable();
            out.most_step_second = out.most_step_second.max(most_in_a_second(&times));
            if let (Some(a), Some(b)) = (entry.started_at, entry.completed_at) {
                out.step_durations_s.push((b - a).num_milliseconds() as f64 / 1000.0);
                // A tick every 250 ms while the step runs, one write when it ends, one per 2 KB.
                let ms = (b - a).num_milliseconds().max(0);
                let allowed = (ms / FLUSH_EVERY_MS) as usize + 2 + bytes / FLUSH_BYTES;
                out.steps_counted += 1;
                out.rows_allowed += allowed;
                out.steps_over_bound += usize::from(times.len() > allowed);
            }
            all.extend(times);
        }
        all.sort_unstable();
        out.most_run_second = out.most_run_second.max(most_in_a_second(&all));
        out.text_rows.push(all.len());
        out.text_per_s.push(all.len() as f64 / secs);
    }
}

// ---- the report ----

fn percentile<T: Copy + Into<f64>>(sorted: &[T], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize].into()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn on_off(text: bool) -> &'static str {
    if text { "on" } else { "off" }
}

fn report(outcomes: &[Outcome], s: &Settings) {
    println!(
        "{} runs started at once, each followed by {} SSE viewers and {} pollers (every 2 s, If-None-Match); \
         offline model {} ms per call; {}",
        s.runs,
        s.streams,
        s.pollers,
        s.latency.as_millis(),
        bench::machine()
    );
    println!();
    println!(
        "| backend | text | runs completed | run duration p50 (max) | model step mean (max) | SSE viewers | text events | viewers exact | \
         step texts compared (bytes) | mismatched | seq holes or repeats | text after its step completed | \
         ids not increasing | ended with the terminal state | stream errors (reconnects) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for o in outcomes {
        let mut d = o.durations_s.clone();
        d.sort_by(f64::total_cmp);
        println!(
            "| {} | {} | {} of {} | {:.1} s ({:.1} s) | {:.1} s ({:.1} s) | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} ({}) |",
            o.backend,
            on_off(o.text),
            o.completed,
            o.runs,
            percentile(&d, 50.0),
            max(&d),
            mean(&o.step_durations_s),
            max(&o.step_durations_s),
            o.viewers,
            o.pieces,
            o.exact,
            o.step_texts,
            o.step_bytes,
            o.mismatched,
            o.seq_errors,
            o.late,
            o.ids_not_increasing,
            o.ended_terminal,
            o.stream_errors,
            o.reconnects,
        );
    }
    println!();
    println!(
        "| backend | text | text rows per run (max) | text writes per run per s (max) | most in 1 s: a run / a step | \
         rows / allowed by the coalescing (steps over) | progress writes per run (max) | per run per s (max) | \
         SSE states per viewer |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for o in outcomes {
        let rows: Vec<f64> = o.text_rows.iter().map(|&n| n as f64).collect();
        let versions: Vec<f64> = o.versions.iter().map(|&n| n as f64).collect();
        let total: usize = o.text_rows.iter().sum();
        println!(
            "| {} | {} | {:.1} ({:.0}) | {:.2} ({:.2}) | {} / {} | {} / {} ({} of {}) | {:.1} ({:.0}) | {:.2} ({:.2}) | {:.1} |",
            o.backend,
            on_off(o.text),
            mean(&rows),
            max(&rows),
            mean(&o.text_per_s),
            max(&o.text_per_s),
            o.most_run_second,
            o.most_step_second,
            total,
            o.rows_allowed,
            o.steps_over_bound,
            o.steps_counted,
            mean(&versions),
            max(&versions),
            mean(&o.versions_per_s),
            max(&o.versions_per_s),
            o.states as f64 / o.viewers.max(1) as f64,
        );
    }
    println!();
    println!(
        "| backend | text | poll requests | 200 | 304 | errors | p50 | p99 | max | p99 from 5 s on | polls showing text | \
         running-step texts seen (not in the transcript) | text stored → viewer p50 / p99 / max | \
         server RSS max, mean (VmHWM) | server CPU | wall time, load after |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for o in outcomes {
        let lat = &o.poll_latencies_us;
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2} ms | {:.2} ms | {:.1} ms | {:.2} ms | {} | {} ({}) | {:.0} / {:.0} / {:.0} ms | \
             {:.0} MB, {:.0} MB ({:.0} MB) | {:.1} s ({:.0} % of a core) | {:.0} s, {} |",
            o.backend,
            on_off(o.text),
            lat.len(),
            o.poll_full,
            o.poll_not_modified,
            o.poll_errors,
            percentile(lat, 50.0) / 1000.0,
            percentile(lat, 99.0) / 1000.0,
            percentile(lat, 100.0) / 1000.0,
            percentile(&o.poll_settled_us, 99.0) / 1000.0,
            o.poll_with_text,
            o.tails,
            o.tails_not_in_transcript,
            percentile(&o.delivery_ms.iter().map(|&x| x as f64).collect::<Vec<_>>(), 50.0),
            percentile(&o.delivery_ms.iter().map(|&x| x as f64).collect::<Vec<_>>(), 99.0),
            o.delivery_ms.last().copied().unwrap_or(0) as f64,
            o.rss_max_mb,
            o.rss_mean_mb,
            o.hwm_mb,
            o.cpu_s,
            100.0 * o.cpu_s / o.elapsed_s.max(1e-9),
            o.elapsed_s,
            o.load,
        );
    }
    println!();
    for o in outcomes {
        let mut by_second = std::collections::BTreeMap::new();
        for &s in &o.poll_slow_at {
            *by_second.entry(s).or_insert(0u32) += 1;
        }
        let seconds: Vec<String> = by_second.iter().map(|(s, n)| format!("{s}:{n}")).collect();
        println!(
            "{}, text {}: the longest a run waited for a worker: {:.2} s",
            o.backend,
            on_off(o.text),
            o.queue_wait_max_s
        );
        println!(
            "{}, text {}: polls over {} ms by the second they were sent in (second:count): {}",
            o.backend,
            on_off(o.text),
            SLOW.as_millis(),
            if seconds.is_empty() { "none".to_string() } else { seconds.join(" ") }
        );
    }
    println!();
    for o in outcomes {
        let mut misses = Vec::new();
        if !o.start_errors.is_empty() {
            misses.push(format!("{} runs not started ({})", o.start_errors.len(), o.start_errors[0]));
        }
        if o.completed != o.runs {
            misses.push(format!("{} runs not completed", o.runs - o.completed));
        }
        if o.exact != o.viewers {
            misses.push(format!("{} viewers' text not exact ({:?})", o.viewers - o.exact, o.mismatch_samples));
        }
        if o.seq_errors + o.late + o.ids_not_increasing > 0 {
            misses.push("pieces out of order".into());
        }
        if o.ended_terminal != o.viewers {
            misses.push(format!("{} viewers did not see the end", o.viewers - o.ended_terminal));
        }
        if o.stream_errors > 0 {
            misses.push(format!("{} stream errors ({:?})", o.stream_errors, o.stream_error_samples));
        }
        if o.poll_errors > 0 {
            misses.push(format!("{} poll errors ({:?})", o.poll_errors, o.poll_error_samples));
        }
        if o.tails_not_in_transcript > 0 {
            misses.push(format!("{} polled texts not in the transcript", o.tails_not_in_transcript));
        }
        if o.steps_over_bound > 0 {
            misses.push(format!("{} steps wrote more text rows than the coalescing allows", o.steps_over_bound));
        }
        if !o.text && (o.pieces > 0 || o.step_bytes > 0 || o.tails > 0 || o.text_rows.iter().any(|&n| n > 0)) {
            misses.push("text with streaming off".into());
        }
        let verdict = if misses.is_empty() { "every check passed".to_string() } else { misses.join("; ") };
        println!("{}, text {}: {verdict}", o.backend, on_off(o.text));
    }
}

#[tokio::main]
async fn main() {
    let backend = Backend::parse(&bench::arg("--backend", "sqlite".to_string()));
    let modes: Vec<String> = bench::list("--text", &["on".to_string(), "off".to_string()]);
    let settings = Settings {
        runs: bench::arg("--runs", 100usize),
        streams: bench::arg("--streams", 10usize),
        pollers: bench::arg("--pollers", 10usize),
        latency: Duration::from_millis(bench::arg("--latency-ms", 5000u64)),
    };
    // The clients are what follow a run to its end.
    assert!(settings.streams + settings.pollers > 0, "--streams and --pollers cannot both be 0");
    let mut outcomes = Vec::new();
    for mode in modes {
        let text = match mode.as_str() {
            "on" => true,
            "off" => false,
            other => panic!("--text: on or off, not '{other}'"),
        };
        let o = measure(backend, text, &settings).await;
        eprintln!("{}, text {}: done in {:.0} s", o.backend, on_off(text), o.elapsed_s);
        outcomes.push(o);
    }
    report(&outcomes, &settings);
}
