//! The product: what Trading Agents does for its users, over the job queue (`jobs`) and the
//! analysis (`agents`). The REST API, the Leptos server functions and the command line all call
//! this layer and nothing below it; it knows no HTTP.
//!
//! Reading order:
//! - [`error`]: the one error type, in the product's terms.
//! - [`run`], [`tracker`]: a run as a job of the queue — its args, its progress document, its
//!   steps.
//! - [`checks`]: what a start request is checked against (market data, model catalog).
//! - [`runs`]: [`RunService`] — start, retry, cancel, read and list runs; limits and idempotency.
//! - [`rerun`]: a run started from another's stage, its earlier stages taken over.
//! - [`outcome`]: how a completed run turned out, from the prices after its as-of day.
//! - [`compare`]: runs side by side.
//! - [`transcript`]: the text a run's models wrote, and its log.
//! - [`analysis`]: the handler the workers run for each run: the pipeline, reporting its steps.
//! - [`backtests`]: a parent job over a grid of runs, and its scorecard.
//! - [`batches`]: a parent job over one ordinary run per symbol, started together.
//! - [`parent`]: the handler that completes a parent job once its children have ended.
//! - [`schedules`]: watchlists started as a batch on every tick of a cron, and the scheduler
//!   that takes each tick once however many processes run it.
//! - [`budget`]: the daily budget of model spending per identity.
//! - [`cache`], [`eta`]: progress bodies served from memory; the estimated time remaining.
//! - [`access`]: API tokens and share links, other ways to an identity than the session.
//! - [`stats`]: the operators' figures of the last day's runs.
//! - [`webhooks`]: signed deliveries of runs' and batches' events, through an outbox.
//! - [`store`]: the application's own SQL and migrations; [`telemetry`]: what it measures.

pub mod access;
pub mod analysis;
pub mod backtests;
pub mod batches;
pub mod budget;
pub mod cache;
pub mod checks;
pub mod compare;
pub mod error;
pub mod eta;
pub mod outcome;
pub mod parent;
pub mod rerun;
pub mod run;
pub mod runs;
pub mod schedules;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod tracker;
pub mod transcript;
pub mod webhooks;

pub use error::{Error, Result};
pub use runs::{RunService, ServiceConfig, Started, UserId};
