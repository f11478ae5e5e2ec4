//! The roles the binary can play.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use app::api::ssr::AppContext;
use domain::{JobStatus, Progress, StartRequest};
use jobs::janitor::Janitor;
use tokio_util::sync::CancellationToken;

use crate::compose::{self, Error};
use crate::config::{AnalyzeArgs, Common, ServeArgs, WorkerRole};
use crate::http::{self, AppState, session::Sessions};
use crate::terminal;

/// Fires on SIGTERM or Ctrl-C.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

/// The site settings cargo-leptos passes in `LEPTOS_*` variables; when the binary is started
/// on its own, the same values it would have passed (the site built under `target/site`).
fn leptos_options() -> Result<leptos::config::LeptosOptions, Error> {
    if std::env::var_os("LEPTOS_OUTPUT_NAME").is_some() {
        return Ok(leptos::config::get_configuration(None)?.leptos_options);
    }
    let site_root = std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site".into());
    Ok(leptos::config::LeptosOptions::builder().output_name("trading-agents").site_root(site_root).build())
}

/// `SESSION_SECRET`, or a random key kept in the database so all processes share it.
async fn session_key(store: &application::store::Store, args: &ServeArgs) -> Result<Vec<u8>, Error> {
    if let Some(crate::config::Secret(secret)) = &args.session_secret {
        if secret.len() < 32 {
            return Err("SESSION_SECRET must be at least 32 characters".into());
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| format!("no randomness: {e}"))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(store.setting_or_insert("session_secret", &hex).await?.into_bytes())
}

/// How long a model provider has to answer the probe at start.
const MODEL_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn serve(common: &Common, args: &ServeArgs) -> Result<(), Error> {
    let recorder = http::telemetry::recorder();
    http::telemetry::spawn_upkeep(recorder.clone());
    let parts = compose::build(common).await?;
    // The form lists a model whose provider does not answer as unavailable, saying why.
    parts.models.probe(MODEL_PROBE_TIMEOUT).await;
    let listed = parts.market.symbols().unwrap_or_default();
    let data_ends = listed.iter().map(|s| (s.symbol.clone(), s.last_date)).collect();
    let symbols = listed.into_iter().map(|s| s.symbol).collect();
    let shutdown = shutdown_signal();
    let state = AppState::new(http::Shared {
        service: parts.service.clone(),
        backtests: parts.backtests.clone(),
        context: AppContext {
            runs: parts.service.clone(),
            backtests: parts.backtests.clone(),
            batches: parts.batches.clone(),
            schedules: parts.schedules.clone(),
            webhooks: parts.webhooks.clone(),
            access: parts.access.clone(),
            answer: http::problem::answer,
            models: Arc::new(parts.models.infos()),
            symbols: Arc::new(symbols),
            data_ends: Arc::new(data_ends),
            transport: args.progress_transport.into(),
        },
        leptos: leptos_options()?,
        sessions: Sessions::new(session_key(parts.service.store(), args).await?, args.cookie_secure).with_previous(
            args.session_secret_previous
                .iter()
                .map(|s| s.0.trim())
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        ),
        recorder,
        metrics_token: http::tokens::OperatorToken::new(common.metrics_token.as_ref().map(|s| s.0.as_str())),
        pollers: Arc::default(),
        admin_token: http::tokens::OperatorToken::new(args.admin_token.as_ref().map(|s| s.0.as_str())),
        workers: args.workers.workers,
        transport: args.progress_transport.into(),
        origins: http::guard::Origins::new(&args.allowed_origins, args.cookie_secure)?,
        policy: http::headers::Policy { https: args.cookie_secure },
        streams: http::live::StreamSlots::new(args.max_streams_per_user, args.max_streams),
        proxies: http::proxy::TrustedProxies::parse(&args.trusted_proxies)?,
        access: parts.access.clone(),
        auth_proxy: http::proxy::AuthProxy::parse(args.auth_proxy_header.as_deref())?,
        limits: http::limits::RunLimits::new(args.runs_per_minute_per_address, args.runs_per_minute_per_user),
        shutdown: shutdown.clone(),
    });
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let addr = listener.local_addr()?;
    // On stdout, for scripts and tests that start the server on port 0.
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, backend = parts.db.backend(), workers = args.workers.workers, "serving");

    // The peer's address is the client's for the rate limits (unless a trusted proxy names
    // another) and tells the stats whether a request comes from this machine.
    let web = http::connections::serve(
        listener,
        http::router(state),
        connections(common),
        shutdown.clone().cancelled_owned(),
    );
    let workers = async {
        if args.workers.workers > 0 {
            compose::run_workers(&parts, common, &args.workers, shutdown.clone()).await
        } else {
            Ok(())
        }
    };
    let ((), workers) = tokio::join!(web, workers);
    workers
}

/// How the web server and a worker's metrics listener treat their connections.
fn connections(common: &Common) -> http::connections::Config {
    http::connections::Config { header_read_timeout: Duration::from_secs(common.header_read_timeout_secs) }
}

pub async fn worker(common: &Common, role: &WorkerRole) -> Result<(), Error> {
    let args = &role.workers;
    if args.workers == 0 {
        return Err("a worker process needs at least one worker (--workers)".into());
    }
    let recorder = http::telemetry::recorder();
    http::telemetry::spawn_upkeep(recorder.clone());
    let parts = compose::build(common).await?;
    let shutdown = shutdown_signal();
    if let Some(addr) = role.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("metrics on http://{}", listener.local_addr()?);
        let _ = std::io::stdout().flush();
        let workers = args.workers;
        let token = http::tokens::OperatorToken::new(common.metrics_token.as_ref().map(|s| s.0.as_str()));
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let recorder = recorder.clone();
                let token = token.clone();
                async move {
                    if let Some(refused) = http::telemetry::scrape_refusal(&token, &headers) {
                        return refused;
                    }
                    metrics::gauge!(http::telemetry::WORKERS).set(workers as f64);
                    recorder.run_upkeep();
                    let body = recorder.render();
                    axum::response::IntoResponse::into_response((
                        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        body,
                    ))
                }
            }),
        );
        tokio::spawn(http::connections::serve(listener, app, connections(common), shutdown.clone().cancelled_owned()));
    }
    compose::run_workers(&parts, common, args, shutdown).await
}

pub async fn migrate(common: &Common) -> Result<(), Error> {
    let db = compose::database(common).await?;
    println!("migrations applied ({})", db.backend());
    Ok(())
}

pub async fn janitor(common: &Common, once: bool) -> Result<(), Error> {
    let db = compose::database(common).await?;
    let janitor = Janitor::new(db.queue().clone(), db.clock.clone(), common.janitor_config())?;
    if once {
        let moved = janitor.run_once().await?;
        println!("archived {} finished runs older than {} days", moved.archived, common.retention_days);
        if common.archive_retention_days > 0 {
            println!("pruned {} archived runs older than {} days", moved.pruned, common.archive_retention_days);
        }
    } else {
        janitor.run(shutdown_signal()).await;
    }
    Ok(())
}

/// Runs one analysis through the engine — a run row, a worker, checkpoints — in a database of
/// its own (a temporary SQLite file), drawing progress on the terminal.
pub async fn analyze(common: &Common, args: &AnalyzeArgs) -> Result<(), Error> {
    terminal::in_scratch_db(common, "analyze", |common| analyze_in(common, args)).await
}

async fn analyze_in(common: Common, args: &AnalyzeArgs) -> Result<(), Error> {
    let parts = compose::build(&common).await?;
    let request = StartRequest {
        symbol: Some(args.symbol.clone()),
        model_id: args.model.clone(),
        analysts: (!args.analysts.is_empty()).then(|| args.analysts.clone()),
        as_of: args.as_of.clone(),
        depth: args.depth.clone(),
        deep_model_id: args.deep_model.clone(),
        ..StartRequest::default()
    };
    let started = parts.service.start(terminal::USER, &request, None).await.map_err(terminal::invalid)?;
    let run_id = started.run_id;
    let progress = terminal::follow(&parts, &common, 1, Duration::from_millis(150), async || {
        let (p, _) = parts.service.progress(terminal::USER, run_id).await?;
        let line = terminal::run_line(&p.run);
        Ok((line, p.run.status.is_terminal().then_some(p)))
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&progress)?);
    } else {
        print!("{}", render(&progress));
    }
    if progress.run.status != JobStatus::Completed {
        return Err(format!("the analysis ended {}", progress.run.status).into());
    }
    Ok(())
}

fn render(p: &Progress) -> String {
    let mut out = String::new();
    let push = |out: &mut String, s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    match &p.result {
        Some(r) => {
            push(
                &mut out,
                format!(
                    "\n{} as of {}: {} (confidence {:.0}%)",
                    r.symbol,
                    r.as_of,
                    r.rating.as_str(),
                    r.confidence * 100.0
                ),
            );
            if let Some(t) = &r.trade {
                push(&mut out, format!("Plan: {}.", t.plan.line()));
                if let Some(proposed) = t.proposed.as_ref().filter(|_| !t.changes.is_empty()) {
                    push(&mut out, format!("Trader proposed: {}.", proposed.line()));
                }
            }
            push(&mut out, format!("\n{}", r.summary));
            push(&mut out, "\nKey risks:".into());
            for k in &r.key_risks {
                push(&mut out, format!("  - {k}"));
            }
            for a in &r.reports {
                push(
                    &mut out,
                    format!("\n{}: {} ({:.0}%)", a.analyst.step_name(), a.stance.as_str(), a.confidence * 100.0),
                );
                for f in &a.key_figures {
                    push(&mut out, format!("  {:<28} {}", f.label, f.display));
                }
                for line in app::markdown::to_terminal(&a.report).lines() {
                    push(&mut out, format!("  {line}"));
                }
            }
            if let Some(t) = &r.team {
                let rounds = if t.rounds == 1 { "one round".to_string() } else { format!("{} rounds", t.rounds) };
                push(&mut out, format!("\nThe team ({}, {rounds} of debate)", t.depth));
                for a in t.debate.iter().chain(&t.risk_debate) {
                    push(&mut out, format!("\n{}, round {}:", a.role.title(), a.round));
                    for line in app::markdown::to_terminal(&a.text).lines() {
                        push(&mut out, format!("  {line}"));
                    }
                }
                push(
                    &mut out,
                    format!(
                        "\nResearch manager: {} ({:.0}%).",
                        t.verdict.action.as_str(),
                        t.verdict.confidence * 100.0,
                    ),
                );
                if let Some(proposed) = r.trade.as_ref().and_then(|t| t.proposed.as_ref()) {
                    push(&mut out, format!("Trader: {}.", proposed.line()));
                    for line in app::markdown::to_terminal(&proposed.reasoning).lines() {
                        push(&mut out, format!("  {line}"));
                    }
                }
                push(&mut out, "\nPortfolio manager:".into());
                for line in app::markdown::to_terminal(&t.decision).lines() {
                    push(&mut out, format!("  {line}"));
                }
            }
            push(
                &mut out,
                format!(
                    "\nModel {}{} · {} model calls · {} tokens · {:.1} s",
                    r.model_id,
                    if r.rule_based { " (rule-based)" } else { "" },
                    r.llm_calls,
                    r.tokens.total(),
                    p.run.duration.unwrap_or(0) as f64 / 1000.0
                ),
            );
            if r.rule_based {
                push(&mut out, domain::RULE_BASED_NOTE.into());
            }
        }
        None => push(
            &mut out,
            format!("\nThe analysis ended {}: {}", p.run.status, p.run.error.clone().unwrap_or_default()),
        ),
    }
    out
}
