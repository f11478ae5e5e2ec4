//! Configuration: command-line flags, each also read from an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "server", version, about = "Trading Agents: multi-agent stock analysis as durable background jobs.")]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MarketSource {
    /// The CSV files under DATA_DIR/market (offline).
    Bundled,
    /// Yahoo Finance's chart API.
    Yahoo,
    /// Stooq's CSV download.
    Stooq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings every role shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Where jobs live: `sqlite://path/to/file.db` (created if missing) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/trading-agents.db", global = true)]
    pub database_url: String,

    /// Seconds a client may take to send a request's head (a new connection's, or the next
    /// on a kept-alive one) to the web server or a worker's metrics listener; past it the
    /// connection is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = crate::http::connections::HEADER_READ_TIMEOUT_DEFAULT.as_secs(), global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_secs: u64,

    /// Bearer token every `/metrics` scrape must send (web and worker processes); none by
    /// default, `/metrics` then being for the proxy to keep to the monitoring network.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true, global = true)]
    pub metrics_token: Option<Secret>,

    /// The folder with the bundled market data (`market/`) and the sentiment lexicon (`sentiment/`).
    #[arg(long, env = "DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Where prices come from.
    #[arg(long, env = "MARKET_DATA", value_enum, default_value = "bundled", global = true)]
    pub market_data: MarketSource,

    #[arg(long, env = "YAHOO_BASE_URL", default_value = agents::market::yahoo::BASE_URL_DEFAULT, global = true)]
    pub yahoo_base_url: String,

    #[arg(long, env = "STOOQ_BASE_URL", default_value = agents::market::stooq::BASE_URL_DEFAULT, global = true)]
    pub stooq_base_url: String,

    /// An RSS feed of headlines with `{symbol}` in it; enables headline sentiment.
    #[arg(long, env = "NEWS_RSS_URL", global = true)]
    pub news_rss_url: Option<String>,

    /// A model catalog TOML replacing the built-in one.
    #[arg(long, env = "MODEL_CATALOG", global = true)]
    pub model_catalog: Option<PathBuf>,

    /// The model for requests that name none (default: the catalog's default).
    #[arg(long, env = "DEFAULT_MODEL", global = true)]
    pub default_model: Option<String>,

    /// What the offline model waits per call, like a hosted model would (0 in tests).
    #[arg(long, env = "SIMULATED_LATENCY_MS", default_value_t = 1500, global = true)]
    pub simulated_latency_ms: u64,

    /// Per-call timeout for chat models: one attempt at a call, however steadily it writes.
    #[arg(long, env = "MODEL_TIMEOUT_SECS", default_value_t = 300, global = true)]
    pub model_timeout_secs: u64,

    /// A model call that has produced nothing for this long is shown as stalled.
    #[arg(long, env = "STALL_AFTER_SECS", default_value_t = 30, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_after_secs: u64,

    /// A model call that has produced nothing for this long is abandoned and retried; when the
    /// retries are spent the step fails, naming the model and the silence.
    #[arg(long, env = "STALL_TIMEOUT_SECS", default_value_t = 180, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_timeout_secs: u64,

    /// Keep the text the models write as they write it: `event: text` on the live stream, a
    /// running step's text in the progress, the transcript. `false` stores none of it (the
    /// results and reports are kept as ever), sparing the database its writes.
    #[arg(long, env = "STREAM_TEXT", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub stream_text: bool,

    /// Timeout of one attempt at a job.
    #[arg(long, env = "JOB_TIMEOUT_SECS", default_value_t = 600, global = true)]
    pub job_timeout_secs: u64,

    /// Active (queued + running) runs per user.
    #[arg(long, env = "MAX_ACTIVE_JOBS_PER_USER", default_value_t = 3, global = true)]
    pub max_active_jobs_per_user: u32,

    /// Interactive runs waiting for a worker, from everyone, past which new runs are refused
    /// (503). Backtest cells are not counted.
    #[arg(long, env = "MAX_QUEUED_RUNS", default_value_t = application::runs::MAX_QUEUED_DEFAULT, global = true)]
    pub max_queued_runs: u32,

    /// Cells (symbols × as-of dates) one backtest may have.
    #[arg(long, env = "MAX_BACKTEST_CELLS", default_value_t = application::backtests::MAX_CELLS_DEFAULT, global = true)]
    pub max_backtest_cells: usize,

    /// A user's backtest cells running at once (besides their interactive runs).
    #[arg(
        long,
        env = "MAX_RUNNING_CELLS_PER_USER",
        default_value_t = application::backtests::MAX_RUNNING_CELLS_DEFAULT,
        global = true
    )]
    pub max_running_cells_per_user: u32,

    /// The shortest interval between two ticks of a schedule, in seconds.
    #[arg(long, env = "MIN_SCHEDULE_INTERVAL_SECS", default_value_t = application::schedules::MIN_INTERVAL_DEFAULT.as_secs(), global = true)]
    pub min_schedule_interval_secs: u64,

    /// Attempts a run gets when its worker dies.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 3, global = true)]
    pub max_attempts: u32,

    /// Rounds of each debate (bull/bear, risk) in a `standard` run.
    #[arg(long, env = "STANDARD_ROUNDS", default_value_t = 1, global = true)]
    pub standard_rounds: u32,

    /// Rounds of each debate in a `deep` run.
    #[arg(long, env = "DEEP_ROUNDS", default_value_t = 3, global = true)]
    pub deep_rounds: u32,

    /// The cost budget (US dollars) of a run whose request names none; none by default.
    #[arg(long, env = "MAX_COST_USD", global = true)]
    pub max_cost_usd: Option<f64>,

    /// The token budget of a run whose request names none; none by default.
    #[arg(long, env = "MAX_TOKENS", global = true)]
    pub max_tokens: Option<u64>,

    /// Tokens one identity's runs may use in a rolling 24 hours; 0 (the default) is no limit.
    #[arg(long, env = "DAILY_TOKENS_PER_USER", default_value_t = 0, global = true)]
    pub daily_tokens_per_user: u64,

    /// US dollars one identity's runs may spend in a rolling 24 hours; 0 (the default) is no
    /// limit.
    #[arg(long, env = "DAILY_COST_USD_PER_USER", default_value_t = 0.0, global = true)]
    pub daily_cost_usd_per_user: f64,

    /// The key webhooks are signed with: `whsec_` and at least 24 bytes in base64 (Standard
    /// Webhooks). Without it, webhooks are refused.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true, global = true)]
    pub webhook_secret: Option<Secret>,

    /// Lets webhooks reach loopback and private addresses, and plain http (for a receiver on
    /// this machine or network).
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", default_value_t = false, global = true)]
    pub webhook_allow_private: bool,

    /// How long one webhook delivery may take, in seconds.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECS", default_value_t = application::webhooks::TIMEOUT_DEFAULT.as_secs(), global = true)]
    pub webhook_timeout_secs: u64,

    /// The wait before a failed delivery's first retry, in milliseconds; later waits are
    /// multiples of it (5 s: 5 s, 30 s, 5 min, 30 min, 2 h, 5 h, then 10 h).
    #[arg(long, env = "WEBHOOK_FIRST_RETRY_MS", default_value_t = application::webhooks::FIRST_RETRY_DEFAULT.as_millis() as u64, global = true)]
    pub webhook_first_retry_ms: u64,

    /// How long a worker's claim lasts without a heartbeat.
    #[arg(long, env = "LEASE_SECS", default_value_t = 30, global = true)]
    pub lease_secs: u64,

    /// Finished runs older than this are archived.
    #[arg(long, env = "RETENTION_DAYS", default_value_t = 30, global = true)]
    pub retention_days: u32,

    /// Days archived runs are kept after they were archived; 0 keeps them forever.
    #[arg(long, env = "ARCHIVE_RETENTION_DAYS", default_value_t = jobs::janitor::ARCHIVE_RETENTION_DAYS_DEFAULT, global = true)]
    pub archive_retention_days: u32,

    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Jobs run at once by this process.
    #[arg(long, env = "WORKERS", default_value_t = jobs::worker::WORKERS_DEFAULT)]
    pub workers: usize,

    /// Seconds running jobs may go on after SIGTERM before they are released.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerRole {
    #[command(flatten)]
    pub workers: WorkerArgs,

    /// Where a worker process serves `/metrics` (port 0 picks one, printed at start); none by
    /// default.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// The web server, with workers unless `--workers 0` (the default command).
    Serve(ServeArgs),
    /// Workers only: run jobs; no HTTP but `/metrics` on `--metrics-addr`.
    Worker(WorkerRole),
    /// Apply database migrations and exit.
    Migrate,
    /// Archive finished runs older than RETENTION_DAYS.
    Janitor {
        /// One pass, then exit (for cron); otherwise hourly until stopped.
        #[arg(long)]
        once: bool,
    },
    /// Run one analysis in the terminal, through the same engine, and print the assessment.
    Analyze(AnalyzeArgs),
    /// Run a backtest in the terminal, through the same engine, and print its scorecard.
    Backtest(BacktestArgs),
    /// Run one analysis per symbol in the terminal, through the same engine, and print a table.
    Batch(BatchArgs),
    /// Run a watchlist on a cron in the terminal: each tick one batch, printed as a table.
    Schedule(ScheduleArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Signs session cookies; at least 32 characters. Default: a random key stored in the
    /// database, so every process sharing it agrees.
    #[arg(long, env = "SESSION_SECRET", hide_env_values = true)]
    pub session_secret: Option<Secret>,

    /// Secrets that signed session cookies before SESSION_SECRET (comma-separated): their
    /// cookies are still accepted, and signed again with SESSION_SECRET on the next page load.
    #[arg(long, env = "SESSION_SECRET_PREVIOUS", value_delimiter = ',', hide_env_values = true)]
    pub session_secret_previous: Vec<Secret>,
    /// Bearer token that lets a request from another machine read `/stats` and
    /// `/api/trading/stats` (from this machine they need none).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Served over HTTPS: mark the session cookie `Secure` and send HSTS.
    #[arg(long, env = "COOKIE_SECURE", default_value_t = false)]
    pub cookie_secure: bool,

    /// Origins besides this server's own whose pages may send unsafe requests (comma-separated,
    /// e.g. `https://app.example.com`). Cross-site POSTs from anywhere else are refused.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Reverse proxies (addresses or networks, comma-separated, e.g. `10.0.0.0/8,::1`) whose
    /// `X-Forwarded-For` and `X-Forwarded-Proto` are believed. From anyone else they are ignored.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// A header in which a trusted proxy (TRUSTED_PROXIES) names the signed-in user, e.g.
    /// `X-Forwarded-User` behind a single sign-on proxy. Ignored from any other peer.
    #[arg(long, env = "AUTH_PROXY_HEADER")]
    pub auth_proxy_header: Option<String>,

    /// Runs one client address may start per minute (a burst of this many, then evenly); 0: no limit.
    #[arg(long, env = "RUNS_PER_MINUTE_PER_ADDRESS", default_value_t = crate::http::limits::PER_ADDRESS_DEFAULT)]
    pub runs_per_minute_per_address: u32,

    /// Runs one identity may start per minute (a burst of this many, then evenly); 0: no limit.
    #[arg(long, env = "RUNS_PER_MINUTE_PER_USER", default_value_t = crate::http::limits::PER_USER_DEFAULT)]
    pub runs_per_minute_per_user: u32,

    /// How run pages follow progress: `auto` (a live stream, falling back to polling),
    /// `sse` (a live stream only) or `poll` (every 2 s, no stream: serverless hosts and proxies
    /// that buffer responses).
    #[arg(long, env = "PROGRESS_TRANSPORT", value_enum, default_value = "auto")]
    pub progress_transport: Transport,

    /// Live streams one identity may have open at once.
    #[arg(long, env = "MAX_STREAMS_PER_USER", default_value_t = 4)]
    pub max_streams_per_user: usize,

    /// Live streams this process serves at once; past it, clients poll.
    #[arg(long, env = "MAX_STREAMS", default_value_t = 2000)]
    pub max_streams: usize,

    #[command(flatten)]
    pub workers: WorkerArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Auto,
    Sse,
    Poll,
}

impl From<Transport> for domain::ProgressTransport {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Auto => Self::Auto,
            Transport::Sse => Self::Sse,
            Transport::Poll => Self::Poll,
        }
    }
}

/// A value never printed, not even by `Debug`.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

#[derive(Debug, Clone, Args)]
pub struct AnalyzeArgs {
    /// The ticker, e.g. AAPL.
    pub symbol: String,
    /// Comma-separated analysts (default: all).
    #[arg(long, value_delimiter = ',')]
    pub analysts: Vec<String>,
    /// The model id (default: the catalog's default).
    #[arg(long)]
    pub model: Option<String>,
    /// Analyse as of this date (YYYY-MM-DD).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Research depth: quick (default), standard or deep.
    #[arg(long)]
    pub depth: Option<String>,
    /// A second model for the research and portfolio managers.
    #[arg(long)]
    pub deep_model: Option<String>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Common {
    /// `DAILY_TOKENS_PER_USER` and `DAILY_COST_USD_PER_USER`, 0 being no limit (a negative
    /// cost is kept, for the service's validation to refuse).
    pub fn daily_budget(&self) -> application::budget::DailyBudget {
        application::budget::DailyBudget {
            tokens: (self.daily_tokens_per_user > 0).then_some(self.daily_tokens_per_user),
            cost_usd: (self.daily_cost_usd_per_user != 0.0).then_some(self.daily_cost_usd_per_user),
        }
    }

    /// The janitor's settings: `RETENTION_DAYS`, `ARCHIVE_RETENTION_DAYS` (0: keep the archive).
    pub fn janitor_config(&self) -> jobs::janitor::JanitorConfig {
        jobs::janitor::JanitorConfig {
            retention_days: self.retention_days,
            archive_retention_days: (self.archive_retention_days > 0).then_some(self.archive_retention_days),
            ..jobs::janitor::JanitorConfig::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    /// Comma-separated tickers, e.g. AAPL,MSFT,NVDA (at most 50).
    #[arg(value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// When: 5 fields (minute hour day month weekday) or 6 (seconds first), e.g. "30 8 * * MON-FRI";
    /// ticks at least MIN_SCHEDULE_INTERVAL_SECS apart.
    #[arg(long)]
    pub cron: String,
    /// The IANA time zone the cron is read in (default UTC).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Ticks to run before exiting.
    #[arg(long, default_value_t = 1)]
    pub ticks: usize,
    #[command(flatten)]
    pub runs: TerminalRuns,
}

/// What the runs of `batch` and `schedule` are made of, and how many run at once.
#[derive(Debug, Clone, Args)]
pub struct TerminalRuns {
    /// Comma-separated analysts (default: all).
    #[arg(long, value_delimiter = ',')]
    pub analysts: Vec<String>,
    /// The model id (default: the catalog's default).
    #[arg(long)]
    pub model: Option<String>,
    /// Research depth: quick (default), standard or deep.
    #[arg(long)]
    pub depth: Option<String>,
    /// Runs at once.
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
}

#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// Comma-separated tickers, e.g. AAPL,MSFT,NVDA (at most 50).
    #[arg(value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// Analyse as of this date (YYYY-MM-DD; default: each symbol's last day).
    #[arg(long)]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub runs: TerminalRuns,
    /// Print the whole batch as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BacktestArgs {
    /// Comma-separated tickers, e.g. AAPL,NVDA.
    #[arg(value_delimiter = ',')]
    pub symbols: Vec<String>,
    /// The first as-of date (YYYY-MM-DD).
    #[arg(long)]
    pub from: String,
    /// The last as-of date (YYYY-MM-DD).
    #[arg(long)]
    pub to: String,
    /// Trading days between two as-of dates.
    #[arg(long, default_value_t = application::backtests::EVERY_DAYS_DEFAULT)]
    pub every: u32,
    /// Comma-separated horizons in trading days.
    #[arg(long, value_delimiter = ',', default_values_t = domain::backtest::HORIZONS_DEFAULT)]
    pub horizons: Vec<u32>,
    /// Comma-separated analysts (default: all).

    #[arg(long, value_delimiter = ',')]
    pub analysts: Vec<String>,
    /// The model id (default: the catalog's default).
    #[arg(long)]
    pub model: Option<String>,
    /// Research depth: quick (default), standard or deep.
    #[arg(long)]
    pub depth: Option<String>,
    /// What the strategy does on Underweight and Sell: flat (default) or short.
    #[arg(long)]
    pub bearish: Option<String>,
    /// Cells run at once.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Print the whole backtest (cells and scorecard) as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Start even though a hosted model will cost money (the estimate is printed without it).
    #[arg(long)]
    pub confirm_cost: bool,
}
