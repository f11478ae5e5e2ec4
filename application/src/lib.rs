//! The product: what Trading Agents does for its users, over the job queue (`jobs`) and the
//! analysis (`agents`). The REST API, the Leptos server functions and the command line all call
//! this layer and nothing below it; it knows no HTTP.
//!
//! Reading order:
//! - [`error`]: the one error type, in the product's terms.
//! - [`checks`]: what a start request is checked against (market data, model catalog).
//! - [`runs`]: [`RunService`] — start, retry, cancel, read and list runs; limits and idempotency.
//! - [`budget`]: the daily budget of model spending per identity.
//! - [`cache`], [`eta`]: progress bodies served from memory; the estimated time remaining.
//! - [`analysis`]: the analysis pipeline as the job the workers run, reporting its progress.
//! - [`backtests`]: a grid of runs over symbols and dates, and its scorecard.
//! - [`access`]: API tokens and share links, other ways to an identity than the session.
//! - [`stats`]: the operators' figures of the last day's runs.

pub mod access;
pub mod analysis;
pub mod backtests;
pub mod budget;
pub mod cache;
pub mod checks;
pub mod error;
pub mod eta;
pub mod runs;
pub mod stats;

pub use error::{Error, Result};
pub use runs::{RunService, ServiceConfig, Started, UserId};
