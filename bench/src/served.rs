//! The release server in a child process, on a fresh database: what the HTTP benchmarks
//! (`polls`, `live`, `text`) measure. Included by those binaries with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jobs::testing::TestDb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn parse(s: &str) -> Self {
        match s {
            "sqlite" => Self::Sqlite,
            "postgres" | "postgresql" | "pg" => Self::Postgres,
            other => panic!("--backend: sqlite or postgres, not '{other}'"),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// The workspace's root (the server's working directory, where `data/` is).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `--server PATH`, or `$CARGO_TARGET_DIR/release/server`, or `target/release/server`.
pub fn server_binary() -> PathBuf {
    let given: String = bench::arg("--server", String::new());
    if !given.is_empty() {
        return PathBuf::from(given);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"));
    target.join("release/server")
}

/// A running server; killed (and its database dropped, if it made it) when this is dropped.
pub struct Served {
    pub base: String,
    pub pid: u32,
    child: Child,
    url: String,
    // Held so that the database is dropped with the server.
    _db: Option<TestDb>,
}

impl Served {
    /// Starts `server serve` on a free port with a fresh database of `backend` and the given
    /// extra environment, and waits for its `listening on` line.
    pub async fn start(binary: &Path, backend: Backend, env: &[(&str, String)]) -> Self {
        let db = match backend {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => TestDb::postgres().await,
        };
        let mut served = Self::start_on(binary, &db.url, env).await;
        served._db = Some(db);
        served
    }

    /// Starts `server serve` as [`Served::start`] does, on the database at `url`, which the
    /// caller keeps (it outlives this server, e.g. to be served again).
    pub async fn start_on(binary: &Path, url: &str, env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(binary);
        cmd.args(["serve", "--addr", "127.0.0.1:0"])
            .current_dir(workspace())
            .env("DATABASE_URL", url)
            .env("DATA_DIR", workspace().join("data"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let pid = child.id().expect("running");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("server stdout") {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    return addr.trim().to_string();
                }
            }
            panic!("the server exited before listening");
        })
        .await
        .expect("the server did not start within 60 s");
        // Keep reading stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { base, pid, child, url: url.to_string(), _db: None }
    }

    /// The server's resident memory now and its peak so far, in MB (`/proc/<pid>/status`).
    pub fn memory_mb(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .unwrap_or(0.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The server's database, for reading what it wrote.
    pub fn database_url(&self) -> &str {
        &self.url
    }

    /// The CPU time the server has used so far (user + system), in seconds (`/proc/<pid>/stat`).
    pub fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // The fields after the command's name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let ticks: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse().ok()).collect();
        // `sysconf(_SC_CLK_TCK)` is 100 on Linux.
        ticks.iter().sum::<f64>() / 100.0
    }

    /// Stops the server (SIGKILL; the database is dropped with this value).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A new identity: the `ta_session=…` pair the server sets on a first page load.
pub async fn new_identity(client: &reqwest::Client, base: &str) -> String {
    let resp = client.get(format!("{base}/")).send().await.expect("the home page");
    let set = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("ta_session="))
        .expect("a session cookie on the first page load")
        .to_string();
    set.split(';').next().expect("name=value").to_string()
}

/// Starts a run of AAPL with all four analysts as `cookie`; its id.
pub async fn start_run(client: &reqwest::Client, base: &str, cookie: &str) -> Result<String, String> {
    let resp = client
        .post(format!("{base}/api/trading/run"))
        .header(reqwest::header::COOKIE, cookie)
        .json(&serde_json::json!({"symbol": "AAPL", "analysts": ["invest", "risk", "sentiment", "technical"]}))
        .send()
        .await
        .map_err(|e| format!("start: {e}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.map_err(|e| format!("start body: {e}"))?;
    if status != reqwest::StatusCode::ACCEPTED {
        return Err(format!("start: {status} {body}"));
    }
    Ok(body["runId"].as_str().expect("runId").to_string())
}

/// Whether a progress JSON is in a terminal state.
pub fn is_terminal(progress: &serde_json::Value) -> bool {
    !matches!(progress["status"].as_str(), Some("pending" | "running"))
}
