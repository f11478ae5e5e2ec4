//! Realistic clients on one backend: 100 identities each keep one analysis running (the offline
//! model waiting `--latency-ms` per call, so a run takes about two calls; when a run ends its
//! owner starts the next at once, so about 100 are active the whole window). Then, each phase on
//! a fresh server and database:
//!
//! - **polls**: 1,000 pollers, each its own HTTP client and connection, each asking for its
//!   owner's current run every 2 s with the last ETag (`If-None-Match`), spread evenly over the
//!   2 s, for `--secs`. A run may only be read by its owner, so the 1,000 pollers share the 100
//!   owners' identities, 10 each (ten open pages per person), rather than 1,000 identities.
//! - **streams**: 1,000 Server-Sent-Event streams over the same runs (10 per run), each read
//!   with `eventsource-stream` until the server ends it; when a run ends its streams follow the
//!   owner's next run. After `--secs` no run is started and the open streams are read to their end.
//!
//! Measured: requests, errors (any answer but 200/304, or a transport error), latency
//! percentiles and the 304 share of the polls; for the streams, errors, ids that fail to
//! increase, streams that do not end with the terminal state, and how many of its run's
//! versions each stream saw; the server's resident memory sampled every 250 ms and its peak
//! (`VmHWM`). Targets (issue 8): 0 errors, poll p99 < 50 ms, every stream in order, RSS < 250 MB.
//!
//! cargo build --release -p server -p bench &&
//! cargo run --release -p bench --bin live -- --backend sqlite|postgres [--phases polls,streams]
//!     [--secs 60] [--owners 100] [--clients 1000] [--latency-ms 5000] [--server PATH]

#[allow(dead_code)]
#[path = "../served.rs"]
mod served;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, ETAG, IF_NONE_MATCH};
use served::{Backend, Served};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

const POLL_EVERY: Duration = Duration::from_secs(2);
/// Time for every client to be up before runs and streams are counted.
const SETTLE: Duration = Duration::from_secs(5);

/// One identity and the run it has going now.
struct Owner {
    cookie: String,
    run: watch::Receiver<String>,
    /// Clients report a run they saw end here; the owner then starts the next.
    ended: mpsc::UnboundedSender<String>,
}

/// What the whole benchmark shares.
#[derive(Default)]
struct Shared {
    base: String,
    /// Owners start a new run when theirs ends while this holds (the measured window).
    restarting: AtomicBool,
    /// Runs some client has seen end (each counted once).
    seen_ended: Mutex<HashSet<String>>,
    active_runs: AtomicUsize,
    runs_started: AtomicUsize,
    runs_ended: AtomicUsize,
    /// Runs that ended in another state than `completed`.
    runs_not_completed: AtomicUsize,
    start_errors: Mutex<Vec<String>>,
    open_streams: AtomicUsize,
}

/// Starts each owner's first run, and the next whenever one ends while `shared.restarting`.
async fn owners(n: usize, shared: &Arc<Shared>) -> Vec<Arc<Owner>> {
    let base = shared.base.as_str();
    let client = reqwest::Client::new();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let cookie = served::new_identity(&client, base).await;
        let first = served::start_run(&client, base, &cookie).await.expect("first run");
        shared.runs_started.fetch_add(1, Ordering::Relaxed);
        shared.active_runs.fetch_add(1, Ordering::Relaxed);
        let (run_tx, run_rx) = watch::channel(first.clone());
        let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<String>();
        let (client, base, owner_cookie, shared) = (client.clone(), base.to_string(), cookie.clone(), shared.clone());
        tokio::spawn(async move {
            let mut current = first;
            while let Some(ended) = ended_rx.recv().await {
                if ended != current {
                    continue; // another of its clients already said so
                }
                current.clear();
                shared.active_runs.fetch_sub(1, Ordering::Relaxed);
                shared.runs_ended.fetch_add(1, Ordering::Relaxed);
                if !shared.restarting.load(Ordering::Relaxed) {
                    continue;
                }
                match served::start_run(&client, &base, &owner_cookie).await {
                    Ok(next) => {
                        shared.runs_started.fetch_add(1, Ordering::Relaxed);
                        shared.active_runs.fetch_add(1, Ordering::Relaxed);
                        current = next.clone();
                        let _ = run_tx.send(next);
                    }
                    Err(e) => shared.start_errors.lock().unwrap().push(e),
                }
            }
        });
        out.push(Arc::new(Owner { cookie, run: run_rx, ended: ended_tx }));
    }
    out
}

fn note_end(shared: &Shared, body: &serde_json::Value) {
    if body["status"] != "completed" {
        shared.runs_not_completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The server's memory, the active runs and the open streams, sampled every 250 ms.
#[derive(Default, Debug)]
struct Samples {
    rss_max_mb: f64,
    hwm_mb: f64,
    active_min: usize,
    active_sum: usize,
    streams_min: usize,
    streams_max: usize,
    n: usize,
}

/// Run and stream counts are taken from 5 s into the window (once every client is up) to its end.
async fn sample(
    server: &Served,
    shared: &Shared,
    window: (Instant, Instant),
    until: impl std::future::Future<Output = ()>,
) -> Samples {
    let mut s = Samples { active_min: usize::MAX, streams_min: usize::MAX, ..Samples::default() };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tokio::pin!(until);
    loop {
        tokio::select! {
            _ = &mut until => break,
            _ = tick.tick() => {
                let (rss, hwm) = server.memory_mb();
                s.rss_max_mb = s.rss_max_mb.max(rss);
                s.hwm_mb = hwm;
                let now = Instant::now();
                if now >= window.0 + SETTLE && now < window.1 {
                    let active = shared.active_runs.load(Ordering::Relaxed);
                    let open = shared.open_streams.load(Ordering::Relaxed);
                    s.active_min = s.active_min.min(active);
                    s.active_sum += active;
                    s.streams_min = s.streams_min.min(open);
                    s.streams_max = s.streams_max.max(open);
                    s.n += 1;
                }
            }
        }
    }
    s.hwm_mb = server.memory_mb().1.max(s.hwm_mb);
    s
}

// ---- polls ----

#[derive(Default)]
struct PollStats {
    latencies_us: Vec<u32>,
    full: u64,
    not_modified: u64,
    errors: u64,
    error_samples: Vec<String>,
}

async fn poller(owner: Arc<Owner>, offset: Duration, window_end: Instant, shared: Arc<Shared>) -> PollStats {
    let client = reqwest::Client::new();
    let mut stats = PollStats::default();
    let mut run_rx = owner.run.clone();
    let mut polled: Option<String> = None;
    let mut etag: Option<String> = None;
    tokio::time::sleep(offset).await;
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if Instant::now() >= window_end {
            break;
        }
        let run = run_rx.borrow_and_update().clone();
        if polled.as_deref() != Some(run.as_str()) {
            polled = Some(run.clone());
            etag = None;
        }
        let mut req = client.get(format!("{}/api/trading/progress/{run}", shared.base));
        req = req.header(COOKIE, &owner.cookie);
        if let Some(tag) = &etag {
            req = req.header(IF_NONE_MATCH, tag);
        }
        let began = Instant::now();
        let answer = async {
            let resp = req.send().await.map_err(|e| format!("transport: {e}"))?;
            let status = resp.status();
            let tag = resp.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
            Ok::<_, String>((status, tag, body))
        }
        .await;
        stats.latencies_us.push(began.elapsed().as_micros().min(u32::MAX as u128) as u32);
        let mut ended = false;
        match answer {
            Ok((StatusCode::NOT_MODIFIED, _, _)) => stats.not_modified += 1,
            Ok((StatusCode::OK, tag, body)) => {
                stats.full += 1;
                etag = tag;
                match serde_json::from_slice::<serde_json::Value>(&body) {
                    Ok(v) if served::is_terminal(&v) => {
                        ended = true;
                        note_end_once(&shared, &owner, &run, &v);
                    }
                    Ok(_) => {}
                    Err(e) => error(&mut stats.errors, &mut stats.error_samples, format!("progress JSON: {e}")),
                }
            }
            Ok((status, _, body)) => error(
                &mut stats.errors,
                &mut stats.error_samples,
                format!("{status}: {}", String::from_utf8_lossy(&body).chars().take(200).collect::<String>()),
            ),
            Err(e) => error(&mut stats.errors, &mut stats.error_samples, e),
        }
        if ended {
            // A finished run's page stops polling; the next run's page starts.
            if tokio::time::timeout_at(window_end, run_rx.changed()).await.is_err() {
                break;
            }
            tick.reset();
        }
    }
    stats
}

fn error(count: &mut u64, samples: &mut Vec<String>, e: String) {
    *count += 1;
    if samples.len() < 5 {
        samples.push(e);
    }
}

/// The first client to see a run end tells its owner (who ignores repeats) and counts the outcome.
fn note_end_once(shared: &Shared, owner: &Owner, run: &str, body: &serde_json::Value) {
    if shared.seen_ended.lock().unwrap().insert(run.to_string()) {
        note_end(shared, body);
    }
    let _ = owner.ended.send(run.to_string());
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn polls(backend: Backend, env: &[(&str, String)], n_owners: usize, clients: usize, secs: u64) {
    let server = Served::start(&served::server_binary(), backend, env).await;
    let shared = Arc::new(Shared { base: server.base.clone(), restarting: AtomicBool::new(true), ..Shared::default() });
    // The window starts once every owner has its first run.
    let owners = owners(n_owners, &shared).await;
    let started = Instant::now();
    let window_end = started + Duration::from_secs(secs);

    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let owner = owners[i % n_owners].clone();
        let offset = POLL_EVERY.mul_f64(i as f64 / clients as f64);
        tasks.push(tokio::spawn(poller(owner, offset, window_end, shared.clone())));
    }
    let done = Arc::new(tokio::sync::Notify::new());
    let done2 = done.clone();
    let joined = tokio::spawn(async move {
        let r = futures::future::join_all(tasks).await;
        done2.notify_one();
        r
    });
    let samples = sample(&server, &shared, (started, window_end), done.notified()).await;
    let results = joined.await.expect("pollers");
    shared.restarting.store(false, Ordering::Relaxed);
    let mut total = PollStats::default();
    for r in results {
        let r = r.expect("poller");
        total.latencies_us.extend(r.latencies_us);
        total.full += r.full;
        total.not_modified += r.not_modified;
        total.errors += r.errors;
        for e in r.error_samples {
            if total.error_samples.len() < 5 {
                total.error_samples.push(e);
            }
        }
    }
    total.latencies_us.sort_unstable();
    let requests = total.latencies_us.len();
    let elapsed = started.elapsed().as_secs_f64();

    println!(
        "polls, {}: {clients} pollers over {n_owners} identities ({} clients each), every 2 s with ETags, {secs} s; {}",
        backend.label(),
        clients / n_owners,
        bench::machine()
    );
    println!();
    println!("| backend | requests (per s) | 200 | 304 (share) | errors | p50 | p99 | max | server RSS max (VmHWM) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {requests} ({:.0}/s) | {} | {} ({:.1} %) | {} | {:.2} ms | {:.2} ms | {:.1} ms | {:.0} MB ({:.0} MB) |",
        backend.label(),
        requests as f64 / elapsed,
        total.full,
        total.not_modified,
        100.0 * total.not_modified as f64 / requests.max(1) as f64,
        total.errors,
        percentile(&total.latencies_us, 50.0),
        percentile(&total.latencies_us, 99.0),
        percentile(&total.latencies_us, 100.0),
        samples.rss_max_mb,
        samples.hwm_mb,
    );
    println!();
    print_runs(&shared, &samples);
    for e in &total.error_samples {
        println!("error sample: {e}");
    }
    let p99 = percentile(&total.latencies_us, 99.0);
    let mut misses = Vec::new();
    if total.errors > 0 {
        misses.push(format!("{} errors", total.errors));
    }
    if p99 >= 50.0 {
        misses.push(format!("poll p99 {p99:.1} ms ≥ 50 ms"));
    }
    if samples.hwm_mb >= 250.0 {
        misses.push(format!("server RSS {:.0} MB ≥ 250 MB", samples.hwm_mb));
    }
    verdict("polls", backend, &misses);
    drop(owners);
    server.stop().await;
}

fn print_runs(shared: &Shared, s: &Samples) {
    println!(
        "runs: {} started, {} seen to their end ({} not `completed`), {} start errors; active from 5 s into the window to its end: min {}, mean {:.0}",
        shared.runs_started.load(Ordering::Relaxed),
        shared.runs_ended.load(Ordering::Relaxed),
        shared.runs_not_completed.load(Ordering::Relaxed),
        shared.start_errors.lock().unwrap().len(),
        if s.n == 0 { 0 } else { s.active_min },
        s.active_sum as f64 / s.n.max(1) as f64,
    );
    if let Some(e) = shared.start_errors.lock().unwrap().first() {
        println!("start error sample: {e}");
    }
}

fn verdict(phase: &str, backend: Backend, misses: &[String]) {
    println!();
    if misses.is_empty() {
        println!("{phase}, {}: all targets met", backend.label());
    } else {
        println!("{phase}, {}: MISSED {}", backend.label(), misses.join("; "));
    }
    println!();
}

// ---- streams ----

/// One stream, read to its end.
#[derive(Debug, Default, Clone)]
struct StreamRecord {
    /// Progress events received (heartbeats not counted).
    events: u64,
    first_id: i64,
    last_id: i64,
    /// Versions between the first and the last received that the stream did not carry.
    skipped: i64,
    ended_terminal: bool,
    out_of_order: u64,
}

#[derive(Default)]
struct StreamStats {
    records: Vec<StreamRecord>,
    heartbeats: u64,
    errors: u64,
    error_samples: Vec<String>,
}

async fn follow(
    client: &reqwest::Client,
    owner: &Owner,
    run: &str,
    shared: &Shared,
    stats: &mut StreamStats,
    deadline: Instant,
) -> Result<StreamRecord, String> {
    let resp = client
        .get(format!("{}/api/trading/events/{run}", shared.base))
        .header(COOKIE, &owner.cookie)
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| format!("open: {e}"))?;
    let status = resp.status();
    let kind = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if status != StatusCode::OK || !kind.starts_with("text/event-stream") {
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("open: {status} {kind} {}", body.chars().take(200).collect::<String>()));
    }
    shared.open_streams.fetch_add(1, Ordering::Relaxed);
    let mut events = resp.bytes_stream().eventsource();
    let mut rec = StreamRecord::default();
    let result = loop {
        let next = match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(next) => next,
            Err(_) => break Err("the stream did not end in time".to_string()),
        };
        let ev = match next {
            None => break Ok(()),
            Some(Err(e)) => break Err(format!("stream: {e}")),
            Some(Ok(ev)) => ev,
        };
        if ev.event == "heartbeat" {
            stats.heartbeats += 1;
            continue;
        }
        // The models' text between states: the text bench (`--bin text`) measures it.
        if ev.event == "text" {
            continue;
        }
        if ev.event != "message" {
            break Err(format!("unexpected event '{}'", ev.event));
        }
        if rec.ended_terminal {
            break Err("an event after the terminal state".to_string());
        }
        // Once text has been sent, an id is `<version>.<piece>`: the version is what counts.
        let id: i64 = match ev.id.split('.').next().unwrap_or_default().parse() {
            Ok(id) => id,
            Err(_) => break Err(format!("id '{}' is not a version", ev.id)),
        };
        if rec.events == 0 {
            rec.first_id = id;
        } else if id <= rec.last_id {
            rec.out_of_order += 1;
        } else {
            rec.skipped += id - rec.last_id - 1;
        }
        rec.last_id = rec.last_id.max(id);
        rec.events += 1;
        let body: serde_json::Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            Err(e) => break Err(format!("event data: {e}")),
        };
        if served::is_terminal(&body) {
            rec.ended_terminal = true;
            note_end_once(shared, owner, run, &body);
        }
    };
    shared.open_streams.fetch_sub(1, Ordering::Relaxed);
    result?;
    Ok(rec)
}

async fn streamer(owner: Arc<Owner>, window_end: Instant, hard_deadline: Instant, shared: Arc<Shared>) -> StreamStats {
    let client = reqwest::Client::new();
    let mut stats = StreamStats::default();
    let mut run_rx = owner.run.clone();
    loop {
        let run = run_rx.borrow_and_update().clone();
        match follow(&client, &owner, &run, &shared, &mut stats, hard_deadline).await {
            Ok(rec) => {
                if !rec.ended_terminal {
                    error(&mut stats.errors, &mut stats.error_samples, format!("stream of {run} ended before the run"));
                }
                stats.records.push(rec);
            }
            Err(e) => {
                error(&mut stats.errors, &mut stats.error_samples, e);
                // As EventSource would: wait the retry hint, then try again unless the run moved on.
                tokio::time::sleep(Duration::from_secs(2)).await;
                if Instant::now() < hard_deadline && *run_rx.borrow() == run {
                    continue;
                }
            }
        }
        if Instant::now() >= window_end {
            break;
        }
        // The owner starts the next run when it hears of the end; follow that one.
        if tokio::time::timeout_at(window_end, run_rx.changed()).await.is_err() {
            break;
        }
    }
    stats
}

async fn streams(
    backend: Backend,
    env: &[(&str, String)],
    n_owners: usize,
    clients: usize,
    secs: u64,
    latency: Duration,
) {
    let server = Served::start(&served::server_binary(), backend, env).await;
    let shared = Arc::new(Shared { base: server.base.clone(), restarting: AtomicBool::new(true), ..Shared::default() });
    let owners = owners(n_owners, &shared).await;
    let started = Instant::now();
    let window_end = started + Duration::from_secs(secs);
    let restarts = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(window_end).await;
        restarts.restarting.store(false, Ordering::Relaxed);
    });
    // A run's two model calls and its bookkeeping, with room for a loaded machine.
    let hard_deadline = window_end + latency * 6 + Duration::from_secs(60);

    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        tasks.push(tokio::spawn(streamer(owners[i % n_owners].clone(), window_end, hard_deadline, shared.clone())));
    }
    let done = Arc::new(tokio::sync::Notify::new());
    let done2 = done.clone();
    let joined = tokio::spawn(async move {
        let r = futures::future::join_all(tasks).await;
        done2.notify_one();
        r
    });
    let samples = sample(&server, &shared, (started, window_end), done.notified()).await;
    let results = joined.await.expect("streamers");
    let elapsed = started.elapsed().as_secs_f64();

    let mut total = StreamStats::default();
    for r in results {
        let r = r.expect("streamer");
        total.records.extend(r.records);
        total.heartbeats += r.heartbeats;
        total.errors += r.errors;
        for e in r.error_samples {
            if total.error_samples.len() < 5 {
                total.error_samples.push(e);
            }
        }
    }
    let recs = &total.records;
    let ended = recs.iter().filter(|r| r.ended_terminal).count();
    let out_of_order: u64 = recs.iter().map(|r| r.out_of_order).sum();
    let skipped: i64 = recs.iter().map(|r| r.skipped).sum();
    let with_skips = recs.iter().filter(|r| r.skipped > 0).count();
    let seen: Vec<u64> = recs.iter().map(|r| r.events).collect();
    let finals: Vec<i64> = recs.iter().map(|r| r.last_id).collect();
    let firsts: Vec<i64> = recs.iter().map(|r| r.first_id).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let seen_f: Vec<f64> = seen.iter().map(|&x| x as f64).collect();
    let finals_f: Vec<f64> = finals.iter().map(|&x| x as f64).collect();
    let firsts_f: Vec<f64> = firsts.iter().map(|&x| x as f64).collect();

    println!(
        "streams, {}: {clients} SSE streams over {n_owners} identities' runs ({} per run), new runs for {secs} s, then read to their end ({elapsed:.0} s in all); {}",
        backend.label(),
        clients / n_owners,
        bench::machine()
    );
    println!();
    println!(
        "| backend | streams read | open at once (min–max after 5 s) | ended with the terminal state | ids not increasing | errors | server RSS max (VmHWM) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {}–{} | {ended} | {out_of_order} | {} | {:.0} MB ({:.0} MB) |",
        backend.label(),
        recs.len(),
        if samples.n == 0 { 0 } else { samples.streams_min },
        samples.streams_max,
        total.errors,
        samples.rss_max_mb,
        samples.hwm_mb,
    );
    println!();
    println!(
        "| versions per stream | mean | min | max |\n|---|---:|---:|---:|\n| received | {:.1} | {} | {} |\n| first id received | {:.1} | {} | {} |\n| final version (last id) | {:.1} | {} | {} |\n| skipped between first and last | {:.2} | {} | {} |",
        mean(&seen_f),
        seen.iter().min().unwrap_or(&0),
        seen.iter().max().unwrap_or(&0),
        mean(&firsts_f),
        firsts.iter().min().unwrap_or(&0),
        firsts.iter().max().unwrap_or(&0),
        mean(&finals_f),
        finals.iter().min().unwrap_or(&0),
        finals.iter().max().unwrap_or(&0),
        skipped as f64 / recs.len().max(1) as f64,
        recs.iter().map(|r| r.skipped).min().unwrap_or(0),
        recs.iter().map(|r| r.skipped).max().unwrap_or(0),
    );
    println!();
    println!(
        "skipped versions: {skipped} in all, in {with_skips} of {} streams; heartbeats received: {}",
        recs.len(),
        total.heartbeats
    );
    print_runs(&shared, &samples);
    for e in &total.error_samples {
        println!("error sample: {e}");
    }
    let mut misses = Vec::new();
    if total.errors > 0 {
        misses.push(format!("{} errors", total.errors));
    }
    if out_of_order > 0 {
        misses.push(format!("{out_of_order} ids not increasing"));
    }
    if ended != recs.len() {
        misses.push(format!("{} streams did not end with the terminal state", recs.len() - ended));
    }
    if skipped > 0 {
        misses.push(format!("{skipped} versions coalesced away (each event is the full state)"));
    }
    if samples.hwm_mb >= 250.0 {
        misses.push(format!("server RSS {:.0} MB ≥ 250 MB", samples.hwm_mb));
    }
    verdict("streams", backend, &misses);
    drop(owners);
    server.stop().await;
}

#[tokio::main]
async fn main() {
    let backend = Backend::parse(&bench::arg("--backend", "sqlite".to_string()));
    let phases: Vec<String> = bench::list("--phases", &["polls".to_string(), "streams".to_string()]);
    let secs = bench::arg("--secs", 60u64);
    let n_owners = bench::arg("--owners", 100usize);
    let clients = bench::arg("--clients", 1000usize);
    let latency = Duration::from_millis(bench::arg("--latency-ms", 5000u64));
    let env = [
        ("SIMULATED_LATENCY_MS", latency.as_millis().to_string()),
        ("WORKERS", n_owners.to_string()),
        ("MAX_ACTIVE_JOBS_PER_USER", "3".to_string()),
        ("MAX_STREAMS", (clients * 5).to_string()),
        ("MAX_STREAMS_PER_USER", clients.to_string()),
        // Owners start their next run the moment one ends: the per-minute start limits of a
        // public deployment are not what this measures.
        ("RUNS_PER_MINUTE_PER_ADDRESS", "0".to_string()),
        ("RUNS_PER_MINUTE_PER_USER", "0".to_string()),
    ];
    for phase in phases {
        match phase.as_str() {
            "polls" => polls(backend, &env, n_owners, clients, secs).await,
            "streams" => streams(backend, &env, n_owners, clients, secs, latency).await,
            other => panic!("--phases: polls or streams, not '{other}'"),
        }
    }
}
