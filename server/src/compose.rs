//! The composition root: opens the database, builds the analysis and the application's
//! services from configuration, and registers the job kinds with the workers. Nothing else in
//! the program decides which implementation of anything is used.

use std::sync::Arc;
use std::time::Duration;

use agents::Pipeline;
use agents::market::MarketData;
use agents::market::bundled::BundledData;
use agents::market::stooq::StooqData;
use agents::market::yahoo::YahooData;
use agents::model::{Catalog, Models, ModelsConfig};
use agents::news::RssNews;
use agents::retry::RetryPolicy;
use agents::vader::Lexicon;
use application::access::Access;
use application::analysis::AnalysisJob;
use application::backtests::{BacktestConfig, Backtests};
use application::batches::Batches;
use application::checks::Checks;
use application::parent::ParentJob;
use application::schedules::{Scheduler, Schedules};
use application::webhooks::{Dispatcher, WebhookConfig};
use application::{RunService, ServiceConfig};
use domain::ModelId;
use jobs::janitor::Janitor;
use jobs::rescuer::{Rescuer, RescuerConfig};
use jobs::{Database, Events, Handlers, SystemClock, WorkerConfig, WorkerPool};
use tokio_util::sync::CancellationToken;

use crate::config::{Common, MarketSource, WorkerArgs};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Everything a role needs, built once.
pub struct Parts {
    pub db: Database,
    pub events: Events,
    pub service: Arc<RunService>,
    pub pipeline: Arc<Pipeline>,
    pub models: Arc<Models>,
    pub market: Arc<dyn MarketData>,
    pub backtests: Arc<Backtests>,
    pub batches: Arc<Batches>,
    pub schedules: Arc<Schedules>,
    pub webhooks: Arc<Dispatcher>,
    pub access: Access,
    /// Keeps the PostgreSQL notification listener alive.
    _listener: Option<tokio::task::JoinHandle<()>>,
}

/// Opens the database `DATABASE_URL` names and applies every migration.
pub async fn database(common: &Common) -> Result<Database, Error> {
    let db = Database::connect(&common.database_url, Arc::new(SystemClock)).await?;
    application::store::migrate(&db).await?;
    Ok(db)
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, Error> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("trading-agents/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .build()?)
}

pub async fn build(common: &Common) -> Result<Parts, Error> {
    let db = database(common).await?;
    let events = Events::new();
    let listener = db.queue().listen(events.clone()).await?;

    let retry = RetryPolicy::default();
    let market_client = http_client(Duration::from_secs(30))?;
    // Backtests are scored on the bundled prices whichever source the analyses read.
    let bundled = Arc::new(BundledData::load(&common.data_dir.join("market"))?);
    let market: Arc<dyn MarketData> = match common.market_data {
        MarketSource::Bundled => bundled.clone(),
        MarketSource::Yahoo => Arc::new(YahooData::new(market_client.clone(), &common.yahoo_base_url, retry)),
        MarketSource::Stooq => Arc::new(StooqData::new(market_client.clone(), &common.stooq_base_url, retry)),
    };

    let catalog = match &common.model_catalog {
        Some(path) => {
            Catalog::from_toml(&std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?)
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Catalog::builtin(),
    };
    let models_config = ModelsConfig {
        simulated_latency: Duration::from_millis(common.simulated_latency_ms),
        call_timeout: Duration::from_secs(common.model_timeout_secs),
        stall_after: Duration::from_secs(common.stall_after_secs),
        stall_timeout: Duration::from_secs(common.stall_timeout_secs),
        ..ModelsConfig::default()
    };
    // Streams and retries have their own timeouts; the client's is only a last resort.
    let model_client = http_client(Duration::from_secs(common.model_timeout_secs.saturating_mul(2).max(10)))?;
    let models = Arc::new(Models::new(catalog, &|var| std::env::var(var).ok(), model_client, models_config));

    let mut pipeline = Pipeline::new(market.clone(), models.clone());
    if let Some(url) = &common.news_rss_url {
        let lexicon = Lexicon::load(&common.data_dir.join("sentiment/vader_lexicon.tsv"))?;
        pipeline = pipeline.with_news(Arc::new(RssNews::new(market_client, url, retry)?), Arc::new(lexicon));
    }
    let pipeline = Arc::new(pipeline);

    let default_model: ModelId = common
        .default_model
        .clone()
        .unwrap_or_else(|| models.catalog().default_id().to_string())
        .parse()
        .map_err(|e: domain::IdError| format!("DEFAULT_MODEL: {e}"))?;
    let config = ServiceConfig {
        max_active_per_user: common.max_active_jobs_per_user,
        max_attempts: common.max_attempts,
        max_queued: common.max_queued_runs,
        job_timeout: Duration::from_secs(common.job_timeout_secs),
        default_model,
        standard_rounds: common.standard_rounds,
        deep_rounds: common.deep_rounds,
        default_max_cost_usd: common.max_cost_usd,
        default_max_tokens: common.max_tokens,
        daily_budget: common.daily_budget(),
        webhooks: WebhookConfig {
            secret: common.webhook_secret.as_ref().map(|s| WebhookConfig::secret_from(&s.0)).transpose()?,
            allow_private: common.webhook_allow_private,
            timeout: Duration::from_secs(common.webhook_timeout_secs.max(1)),
            first_retry: Duration::from_millis(common.webhook_first_retry_ms.max(1)),
        },
        ..ServiceConfig::default()
    };
    let checks = Arc::new(Checks { market: market.clone(), models: models.clone() });
    let service = Arc::new(RunService::new(&db, events.clone(), checks.clone(), config)?);
    if common.max_running_cells_per_user == 0 || common.max_backtest_cells == 0 {
        return Err("MAX_RUNNING_CELLS_PER_USER and MAX_BACKTEST_CELLS must be at least 1".into());
    }
    let backtest_config =
        BacktestConfig { max_cells: common.max_backtest_cells, max_running_cells: common.max_running_cells_per_user };
    let backtests =
        Arc::new(Backtests::new(service.clone(), checks, bundled, models.catalog().clone(), backtest_config));
    let batches = Arc::new(Batches::new(service.clone()));
    let schedules = Arc::new(Schedules::new(
        service.store().clone(),
        batches.clone(),
        db.clock.clone(),
        Duration::from_secs(common.min_schedule_interval_secs),
    ));
    let webhooks = Arc::new(Dispatcher::new(service.clone(), batches.clone(), backtests.clone(), db.clock.clone()));
    let access = Access::new(service.clone());
    Ok(Parts {
        db,
        events,
        service,
        pipeline,
        models,
        market,
        backtests,
        batches,
        schedules,
        webhooks,
        access,
        _listener: listener,
    })
}

/// The job kinds this program runs, each with its handler.
pub fn handlers(parts: &Parts, common: &Common) -> Handlers {
    let mut analysis = AnalysisJob::new(parts.pipeline.clone(), parts.db.clock.clone())
        .with_daily_budget(common.daily_budget(), parts.service.store().clone())
        .with_log(parts.service.store().clone());
    if common.stream_text {
        analysis = analysis.with_text(parts.service.store().clone());
    }
    Handlers::new()
        .register(application::run::KIND, Arc::new(analysis))
        .register(application::backtests::KIND, Arc::new(ParentJob("backtest")))
        .register(application::batches::KIND, Arc::new(ParentJob("batch")))
}

/// Starts the worker pool and the maintenance loops (rescuer, janitor, scheduler, webhook
/// dispatcher). Returns when
/// `shutdown` has fired and the workers have drained.
pub async fn run_workers(
    parts: &Parts,
    common: &Common,
    args: &WorkerArgs,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let config = WorkerConfig {
        workers: args.workers,
        lease: Duration::from_secs(common.lease_secs),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        // Cancellation is noticed within this, and it must stay well inside a heartbeat.
        check_every: jobs::worker::CHECK_EVERY_DEFAULT.min(Duration::from_secs(common.lease_secs) / 4),
        ..WorkerConfig::default()
    };
    let (queue, clock) = (parts.db.queue().clone(), parts.db.clock.clone());
    let handlers = handlers(parts, common);
    let pool = WorkerPool::new(queue.clone(), handlers.clone(), parts.events.clone(), config.clone(), clock.clone())?;
    // Look for expired leases often enough that a dead worker's job waits at most about half a
    // lease more than the lease itself.
    let every = (config.lease / 2).clamp(Duration::from_secs(1), jobs::rescuer::RESCUER_INTERVAL_DEFAULT);
    let rescuer = Rescuer::new(
        queue.clone(),
        clock.clone(),
        parts.events.clone(),
        handlers,
        RescuerConfig { interval: every, ..RescuerConfig::default() },
    );
    let janitor = Janitor::new(queue, clock, common.janitor_config())?;
    let scheduler = Scheduler::new(parts.schedules.clone());
    let webhooks = parts.webhooks.clone();
    let maintenance = tokio::spawn({
        let s = shutdown.clone();
        async move {
            tokio::join!(rescuer.run(s.clone()), janitor.run(s.clone()), scheduler.run(s.clone()), webhooks.run(s));
        }
    });
    tracing::info!(workers = args.workers, backend = parts.db.backend(), "workers started");
    pool.run(shutdown).await;
    let _ = maintenance.await;
    Ok(())
}
