//! Schedules: a named watchlist started as a batch on every tick of a cron expression, in a
//! time zone. What a cron means and when it fires next is the server's to compute; these are
//! the bodies the API and the pages exchange.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::batch::BatchRequest;
use crate::ids::{BatchId, ScheduleId};

/// A schedule's name, at most this many characters.
pub const MAX_NAME_CHARS: usize = 80;

/// `POST /api/schedules` (every field but the settings required) and `PATCH
/// /api/schedules/{id}` (only what changes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRequest {
    /// What the watchlist is called, 1–80 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// 1–50 ticker symbols, run as one batch on every tick.
    #[serde(default)]
    pub symbols: Option<Vec<String>>,
    /// A cron expression of 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds
    /// first), e.g. `30 8 * * MON-FRI`.
    #[serde(default)]
    pub cron: Option<String>,
    /// An IANA time zone the cron is read in, e.g. `America/New_York`; UTC if absent.
    #[serde(default)]
    pub timezone: Option<String>,
    /// `true` pauses it (no tick fires), `false` resumes it.
    #[serde(default)]
    pub paused: Option<bool>,
    /// Absent means the server's default model.
    #[serde(default)]
    pub model_id: Option<String>,
    /// Absent means every analyst.
    #[serde(default)]
    pub analysts: Option<Vec<String>>,
    /// `quick` (the default), `standard` or `deep`.
    #[serde(default)]
    pub depth: Option<String>,
    /// A stronger model for the managers of `standard`/`deep` runs.
    #[serde(default)]
    pub deep_model_id: Option<String>,
    /// Budget of each run in US dollars.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// Budget of each run in tokens.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// An https URL told of each batch's events (an empty string removes it); disabled after a
    /// day of failed deliveries, until it is set again.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Any of `start`, `step`, `completed` (the default).
    #[serde(default)]
    pub webhook_events: Option<Vec<String>>,
}

/// One tick a schedule fired on: the batch it started, or why none was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScheduleFire {
    /// The tick: when the cron said to fire.
    pub tick_at: DateTime<Utc>,
    /// When it did.
    pub fired_at: DateTime<Utc>,
    pub batch_id: BatchId,
    /// Earlier ticks that passed while nothing was running: not replayed, this one ran for
    /// them.
    pub missed: u32,
    /// Why no batch started (the daily budget spent, a symbol without data any more), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ScheduleFire {
    /// The tick in words: "caught up: 3 earlier ticks missed" and the like, or nothing.
    pub fn note(&self) -> Option<String> {
        match (self.missed, &self.error) {
            (_, Some(e)) => Some(format!("no batch: {e}")),
            (0, None) => None,
            (1, None) => Some("caught up: 1 earlier tick was missed while nothing was running".into()),
            (n, None) => Some(format!("caught up: {n} earlier ticks were missed while nothing was running")),
        }
    }
}

/// A schedule, as `GET /api/schedules` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub schedule_id: ScheduleId,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub paused: bool,
    /// The symbols and the settings of every batch it starts.
    pub request: BatchRequest,
    /// The next tick, in UTC; none while paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The next tick on the schedule's own clock, e.g. `2026-12-08 08:30 EST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_fire_local: Option<String>,
    /// When its webhook was given up on after a day of failed deliveries: its batches go
    /// without it until it is set again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_disabled_at: Option<DateTime<Utc>>,
    /// Its latest ticks, newest first (at most 10).
    pub last_fires: Vec<ScheduleFire>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The body of `GET /api/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleList {
    /// Oldest first.
    pub schedules: Vec<Schedule>,
}
