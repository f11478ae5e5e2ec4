//! What the terminal commands (`analyze`, `backtest`, `batch`) share: a scratch database of
//! their own, in-process workers while the work is followed, and a progress bar on stderr.

use std::io::Write;
use std::time::Duration;

use domain::RunState;
use tokio_util::sync::CancellationToken;

use crate::compose::{self, Error, Parts};
use crate::config::{Common, WorkerArgs};

/// Who the terminal's runs belong to.
pub const USER: &str = "cli";

/// Runs `body` with `common` pointed at a temporary SQLite file of its own, removed after.
pub async fn in_scratch_db<F>(common: &Common, what: &str, body: F) -> Result<(), Error>
where
    F: AsyncFnOnce(Common) -> Result<(), Error>,
{
    let db = std::env::temp_dir().join(format!("trading-agents-{what}-{}.db", uuid::Uuid::new_v4().simple()));
    let common = Common { database_url: format!("sqlite://{}", db.display()), ..common.clone() };
    let result = body(common).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    result
}

/// Runs `workers` workers in this process while `poll`, asked every `every`, says how far the
/// work is (a line for the bar) and, once it has ended, what it came to; then stops them.
pub async fn follow<T>(
    parts: &Parts,
    common: &Common,
    workers: usize,
    every: Duration,
    mut poll: impl AsyncFnMut() -> Result<(String, Option<T>), application::Error>,
) -> Result<T, Error> {
    let stop = CancellationToken::new();
    let worker_args = WorkerArgs { workers: workers.max(1), shutdown_grace_secs: 0 };
    let running = compose::run_workers(parts, common, &worker_args, stop.clone());
    let watch = async {
        let mut bar = Bar::new();
        let outcome = loop {
            match poll().await {
                Ok((line, done)) => {
                    bar.show(line);
                    if let Some(done) = done {
                        break Ok(done);
                    }
                }
                Err(e) => break Err(e),
            }
            tokio::time::sleep(every).await;
        };
        bar.finish();
        stop.cancel();
        outcome
    };
    let (running, outcome) = tokio::join!(running, watch);
    running?;
    Ok(outcome?)
}

/// A request refused as invalid, each field on its line; any other error as it is.
pub fn invalid(e: application::Error) -> Error {
    match e {
        application::Error::Invalid(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| format!("  {}: {}", e.field, e.message)).collect();
            format!("invalid request:\n{}", lines.join("\n")).into()
        }
        e => e.into(),
    }
}

/// `[#####-----]  40%  Risk Analyst  ~12s left`.
pub fn run_line(p: &RunState) -> String {
    let eta = p.estimated_time_remaining.map(|s| format!("  ~{s}s left")).unwrap_or_default();
    format!(
        "{} {:>3}%  {}{}",
        bar(u32::from(p.progress), 100),
        p.progress,
        p.current_step.clone().unwrap_or_else(|| p.status.label().to_string()),
        eta
    )
}

/// `[#####-----]`: `done` of `total`, 30 characters wide.
pub fn bar(done: u32, total: u32) -> String {
    const WIDTH: usize = 30;
    let filled = WIDTH * done as usize / total.max(1) as usize;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(WIDTH - filled))
}

/// A one-line progress bar on stderr (redrawn in place on a terminal, a line per change
/// otherwise).
struct Bar {
    last: String,
    tty: bool,
}

impl Bar {
    fn new() -> Self {
        use std::io::IsTerminal;
        Self { last: String::new(), tty: std::io::stderr().is_terminal() }
    }

    /// Draws `line` unless it is already shown.
    fn show(&mut self, line: String) {
        if line != self.last {
            let mut err = std::io::stderr();
            if self.tty {
                let _ = write!(err, "\r\x1b[2K{line}");
            } else {
                let _ = writeln!(err, "{line}");
            }
            let _ = err.flush();
            self.last = line;
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
