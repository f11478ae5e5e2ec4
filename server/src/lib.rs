//! The Trading Agents server: the composition root and its roles. The binary (`main.rs`) only
//! calls [`run_cli`]; tests build the router and services from here.
//!
//! Reading order:
//! - [`config`]: flags and environment variables.
//! - [`compose`]: builds store, market data, models, pipeline and services from them.
//! - [`http`]: REST API, Leptos pages and server functions, sessions, problems, health.
//! - [`commands`]: `serve` (default), `worker`, `migrate`, `janitor`, `analyze`; [`backtest_cli`]:
//!   `backtest`; [`batch_cli`]: `batch`; [`schedule_cli`]: `schedule`; [`terminal`]: what the terminal commands share.

// The Leptos app's view types are deeply nested; laying them out needs more room.
#![recursion_limit = "512"]

use clap::Parser;

pub mod backtest_cli;
pub mod batch_cli;
pub mod commands;
pub mod compose;
pub mod config;
pub mod http;
pub mod schedule_cli;
pub mod terminal;

use config::{Cli, Command, LogFormat};

fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Parses the command line and runs the chosen role; exits 1 with a message on failure.
pub fn run_cli() {
    let cli = Cli::parse();
    // No subcommand means `serve`: parse again with it, so its flags and defaults apply.
    let (common, command) = match cli.command {
        Some(c) => (cli.common, c),
        None => {
            let args = std::iter::once("server".into())
                .chain(std::iter::once("serve".into()))
                .chain(std::env::args_os().skip(1));
            let again = Cli::parse_from(args);
            (again.common, again.command.expect("serve"))
        }
    };
    let quiet =
        matches!(command, Command::Analyze(_) | Command::Backtest(_) | Command::Batch(_) | Command::Schedule(_));
    init_logging(common.log_format, if quiet { "warn" } else { "info,sqlx=warn" });

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(args) => commands::serve(&common, &args).await,
            Command::Worker(role) => commands::worker(&common, &role).await,
            Command::Migrate => commands::migrate(&common).await,
            Command::Janitor { once } => commands::janitor(&common, once).await,
            Command::Analyze(args) => commands::analyze(&common, &args).await,
            Command::Backtest(args) => backtest_cli::backtest(&common, &args).await,
            Command::Batch(args) => batch_cli::batch(&common, &args).await,
            Command::Schedule(args) => schedule_cli::schedule(&common, &args).await,
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
