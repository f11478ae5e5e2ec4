//! Starting the real server binary for tests, on a free port, with a database of its own.

#![allow(dead_code)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use jobs::testing::TestDb;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data");

pub struct Server {
    pub base: String,
    pub child: Child,
    /// The database it owns, when it was started with one of its own.
    pub db: Option<TestDb>,
}

/// The server binary in some role, with only the environment given (plus test defaults).
pub fn command(db_url: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("DATA_DIR", DATA_DIR)
        .env("SIMULATED_LATENCY_MS", "20")
        .env("RUST_LOG", "warn")
        // Tests start runs far faster than people do; the tests of the rate limits set their own.
        .env("RUNS_PER_MINUTE_PER_ADDRESS", "0")
        .env("RUNS_PER_MINUTE_PER_USER", "0")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A worker process (`server worker`); its stdout is drained.
pub fn spawn_worker(db_url: &str, env: &[(&str, &str)]) -> Child {
    let mut child = command(db_url, &["worker"], env).spawn().expect("start a worker process");
    let stdout = child.stdout.take().expect("piped");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    child
}

/// Sends SIGTERM, as an orchestrator stopping a process would.
pub fn terminate(child: &Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(status.success());
}

/// A model catalog with the offline model and `fake` served by a fake provider at `base_url`.
pub fn fake_catalog(dir: &std::path::Path, base_url: &str) -> std::path::PathBuf {
    let path = dir.join(format!("catalog-{}.toml", uuid::Uuid::new_v4().simple()));
    let toml = format!(
        "[[model]]\nid = \"offline\"\nlabel = \"Offline\"\nprovider = \"offline\"\n\n\
         [[model]]\nid = \"fake\"\nlabel = \"Fake\"\nprovider = \"openai-compatible\"\n\
         base_url = \"{base_url}\"\nmodel = \"fake-1\"\napi_key_env = \"FAKE_API_KEY\"\n"
    );
    std::fs::write(&path, toml).expect("write catalog");
    path
}

impl Server {
    /// `server serve --addr 127.0.0.1:0` with only the environment given here (plus the
    /// defaults a test needs), waiting for its "listening on" line.
    pub async fn start(db: TestDb, env: &[(&str, &str)]) -> Server {
        Self::start_with(db, &["serve"], env).await
    }

    pub async fn start_with(db: TestDb, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut server = Self::start_on(&db.url, args, env).await;
        server.db = Some(db);
        server
    }

    /// Another process on a database some other handle owns.
    pub async fn start_on(db_url: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = command(db_url, args, env);
        cmd.args(["--addr", "127.0.0.1:0"]);
        Self::spawn(cmd).await
    }

    /// `server serve` logging JSON lines (`LOG_FORMAT=json`, every request's lines at debug),
    /// and its stderr collected as it comes.
    pub async fn start_logged(db: TestDb, env: &[(&str, &str)]) -> (Server, Logs) {
        let mut cmd = command(&db.url, &["serve", "--addr", "127.0.0.1:0"], env);
        cmd.env("LOG_FORMAT", "json").env("RUST_LOG", "info,tower_http=debug").stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let logs = Logs::default();
        let mut server = Self::spawn(cmd).await;
        server.db = Some(db);
        let stderr = server.child.stderr.take().expect("piped");
        let lines = logs.0.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().unwrap().push(line);
            }
        });
        (server, logs)
    }

    async fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd.spawn().expect("start the server binary");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the server printed its address in time")
            .expect("read stdout")
            .expect("a line");
        let base = line.strip_prefix("listening on ").expect("the listening line").trim().to_string();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server { base, child, db: None }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A server's stderr, one JSON object a line, collected as it is written.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Logs {
    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Sends a request carrying `X-Request-Id: marker` and waits (at most 30 s) until its line
    /// is in the log: every line of the requests sent before it is then in [`Logs::lines`],
    /// since the server writes its log in order.
    pub async fn settle(&self, server: &Server, marker: &str) -> Vec<String> {
        let resp = client().get(server.url("/healthz")).header("x-request-id", marker).send().await.expect("healthz");
        assert_eq!(resp.status(), 200);
        let start = Instant::now();
        loop {
            let lines = self.lines();
            if lines.iter().any(|l| l.contains(marker)) {
                return lines;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "waited 30 s for the log line of request {marker}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The lines logged at ERROR.
    pub fn errors(lines: &[String]) -> Vec<&String> {
        lines
            .iter()
            .filter(|l| serde_json::from_str::<Value>(l).map(|v| v["level"] == "ERROR").unwrap_or(l.contains("ERROR")))
            .collect()
    }
}

/// A client that keeps its session cookie, like a browser.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(30)).build().expect("client")
}

/// A client that has loaded the home page once, as a browser would, and so holds an identity.
pub async fn visitor(server: &Server) -> reqwest::Client {
    let c = client();
    let resp = c.get(server.url("/")).send().await.expect("home page");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("set-cookie"), "a first page load gives an identity");
    c
}

/// Starts a run with `body` over REST as `client`, and returns its id (the start must be a 202).
pub async fn start_run(client: &reqwest::Client, server: &Server, body: Value) -> String {
    let resp = client.post(server.url("/api/trading/run")).json(&body).send().await.expect("start");
    assert_eq!(resp.status(), 202);
    resp.json::<Value>().await.expect("json")["runId"].as_str().expect("a runId").to_string()
}

/// A progress body's steps as (name, status).
pub fn steps(body: &Value) -> Vec<(String, String)> {
    body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
        .collect()
}

/// A `standard` run stopped by a budget before its Research Manager: the analyst and both
/// debaters kept as completed, the manager failed, the trader skipped.
pub fn stopped_before_research_manager(done: &Value) {
    assert_eq!(done["currentStep"], "Failed: Research Manager");
    let s = steps(done);
    let status = |name: &str| s.iter().find(|(n, _)| n == name).unwrap().1.clone();
    for finished in ["Data Collection", "Risk Analyst", "Bull Researcher", "Bear Researcher"] {
        assert_eq!(status(finished), "completed", "{finished} is kept");
    }
    assert_eq!(status("Research Manager"), "failed");
    assert_eq!(status("Trader"), "skipped");
}

/// Polls a run's progress until it is terminal; returns the last body and every percentage
/// seen on the way.
pub async fn wait_until_done(
    client: &reqwest::Client,
    server: &Server,
    run_id: &str,
    limit: Duration,
) -> (Value, Vec<u64>) {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let resp = client.get(server.url(&format!("/api/trading/progress/{run_id}"))).send().await.expect("progress");
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("json");
        let pct = body["progress"].as_u64().expect("progress is a number");
        if seen.last() != Some(&pct) {
            seen.push(pct);
        }
        let status = body["status"].as_str().expect("status").to_string();
        if !matches!(status.as_str(), "pending" | "running") {
            return (body, seen);
        }
        assert!(start.elapsed() < limit, "run {run_id} still {status} after {limit:?}: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A model catalog with the offline model and, for each `(id, mode)`, a model served by the
/// fake provider in that behaviour mode, priced so runs have a cost (1,000 and 3,000 dollars a
/// million prompt and completion tokens). Returns the catalog's path.
pub fn fake_models(fake: &agents::testing::FakeLlm, models: &[(&str, &str)]) -> String {
    let path = std::env::temp_dir().join(format!("catalog-{}.toml", uuid::Uuid::new_v4().simple()));
    let mut toml = String::from("[[model]]\nid = \"offline\"\nlabel = \"Offline\"\nprovider = \"offline\"\n\n");
    for (id, mode) in models {
        toml.push_str(&format!(
            "[[model]]\nid = \"{id}\"\nlabel = \"{id}\"\nprovider = \"openai-compatible\"\n\
             base_url = \"{}\"\nmodel = \"fake-1\"\napi_key_env = \"FAKE_API_KEY\"\n\
             input_price_per_mtok = 1000.0\noutput_price_per_mtok = 3000.0\n\n",
            fake.base_url(mode)
        ));
    }
    std::fs::write(&path, toml).expect("write catalog");
    path.to_str().expect("utf-8").to_string()
}

/// The database as a test reads it behind the server's back: the queue, and its jobs read as
/// the application's runs.
pub struct Records {
    pub db: jobs::Database,
}

impl Records {
    /// Opens `db` with every migration applied.
    pub async fn open(db: &TestDb) -> Self {
        let database = jobs::Database::connect(&db.url, std::sync::Arc::new(jobs::SystemClock)).await.expect("open");
        application::store::migrate(&database).await.expect("migrate");
        Self { db: database }
    }

    pub fn queue(&self) -> &std::sync::Arc<dyn jobs::JobStore> {
        self.db.queue()
    }

    /// Queues a run of AAPL with the invest and risk analysts on `model`, for `owner`, as the
    /// service would, and returns its id.
    pub async fn insert(&self, owner: &str, model: &str, timeout_ms: u64) -> domain::RunId {
        let start = domain::ValidStart {
            symbol: "AAPL".parse().unwrap(),
            model_id: model.parse().unwrap(),
            analysts: vec![domain::AnalystKind::Invest, domain::AnalystKind::Risk],
            as_of: None,
            options: domain::RunOptions::default(),
        };
        self.insert_start(owner, &start, timeout_ms).await
    }

    pub async fn insert_start(&self, owner: &str, start: &domain::ValidStart, timeout_ms: u64) -> domain::RunId {
        use application::run::{KIND, RunArgs, RunProgress};
        let args = serde_json::to_value(RunArgs {
            start: start.clone(),
            retry_of: None,
            rerun_of: None,
            batch_id: None,
            webhook: None,
        })
        .unwrap();
        let job = jobs::NewJob {
            timeout_ms,
            progress: serde_json::to_value(RunProgress::new(start)).unwrap(),
            ..jobs::NewJob::new(KIND, owner, args)
        };
        match self.queue().insert(&jobs::Insert::one(job)).await.unwrap() {
            jobs::InsertOutcome::Created(j) => application::run::run_id(j.job_id),
            other => panic!("{other:?}"),
        }
    }

    /// A run, live or archived.
    pub async fn run(&self, id: domain::RunId) -> Option<application::run::Run> {
        let job = self.queue().get(application::run::job_id(id)).await.unwrap()?;
        Some(application::run::Run::from_job(job).unwrap())
    }

    /// Polls until `cond` holds for the run, at most `limit`, saying what it waited for.
    pub async fn wait_for(
        &self,
        id: domain::RunId,
        limit: Duration,
        what: &str,
        cond: impl Fn(&application::run::Run) -> bool,
    ) -> application::run::Run {
        let start = Instant::now();
        loop {
            let run = self.run(id).await.expect("the run exists");
            if cond(&run) {
                return run;
            }
            assert!(start.elapsed() < limit, "waited {limit:?} for {what}: {run:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Live runs per status (backtest cells included).
    pub async fn counts(&self) -> Vec<(domain::JobStatus, u64)> {
        let mut by: std::collections::BTreeMap<String, (domain::JobStatus, u64)> = Default::default();
        for c in self.queue().counts().await.unwrap().into_iter().filter(|c| c.kind == application::run::KIND) {
            let status = application::run::status_of(c.state);
            by.entry(status.as_str().to_string()).or_insert((status, 0)).1 += c.jobs;
        }
        by.into_values().collect()
    }

    /// The cells of a backtest, in their order, archived ones included.
    pub async fn cells(&self, backtest: domain::BacktestId) -> Vec<application::run::Run> {
        let filter = jobs::Filter {
            parent: Some(Some(jobs::JobId(backtest.as_uuid()))),
            archived: true,
            order: jobs::job::Order::Inserted,
            limit: u32::MAX,
            ..jobs::Filter::default()
        };
        let jobs = self.queue().list(&filter).await.unwrap().jobs;
        jobs.into_iter().map(|j| application::run::Run::from_job(j).unwrap()).collect()
    }

    /// How many runs (without a backtest) `owner` has, archived ones included.
    pub async fn total(&self, owner: &str) -> u64 {
        let filter = jobs::Filter {
            kind: Some(application::run::KIND.into()),
            owner: Some(owner.into()),
            parent: Some(None),
            archived: true,
            count: true,
            ..jobs::Filter::default()
        };
        self.queue().list(&filter).await.unwrap().total.unwrap()
    }
}
