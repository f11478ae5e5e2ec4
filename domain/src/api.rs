//! The other bodies of the REST API.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::analyst::AnalystKind;
use crate::ids::RunId;
use crate::rating::Rating;
use crate::request::FieldError;
use crate::status::JobStatus;
use crate::team::Depth;

/// `202` body of `POST /api/trading/run` and `POST /api/trading/retry/:runId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StartResponse {
    pub run_id: RunId,
    pub status: JobStatus,
    pub message: String,
}

/// An RFC 9457 problem details body (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One row of the history list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub run_id: RunId,
    pub symbol: String,
    pub model_id: String,
    pub analysts: Vec<AnalystKind>,
    #[serde(default)]
    pub depth: Depth,
    /// The day the analysis is as of: asked for, or the last day of the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
    pub status: JobStatus,
    pub progress: u8,
    pub rating: Option<Rating>,
    /// The result's confidence, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// What its model calls cost in US dollars at the catalog's prices (0 for the offline model).
    #[serde(default)]
    pub cost_usd: f64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration: Option<u64>,
    /// Moved to the archive (finished longer ago than the retention); still readable.
    #[serde(default)]
    pub archived: bool,
    /// Its owner's labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// How a completed run turned out, one per horizon of [`crate::OUTCOME_HORIZONS`] (as
    /// `GET /api/trading/runs/{runId}/outcome` gives them); empty before it completed or
    /// where its prices cannot be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcome: Vec<crate::HorizonOutcome>,
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunsPage {
    pub runs: Vec<RunSummary>,
    pub page: u32,
    pub per_page: u32,
    /// Every run the filters match.
    pub total: u64,
    /// The `cursor` of the next (older) page, while there is one: it stays valid, and its page
    /// the same, however many runs start in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// An entry of `GET /api/trading/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub id: String,
    pub label: String,
    pub provider: String,
    pub available: bool,
    /// Why the model cannot be used right now, e.g. "XAI_API_KEY is not set".
    pub reason: Option<String>,
    pub default: bool,
}

/// An entry of `GET /api/trading/analysts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AnalystInfo {
    pub id: AnalystKind,
    pub name: String,
    pub description: String,
}

impl AnalystInfo {
    pub fn all() -> Vec<AnalystInfo> {
        AnalystKind::ALL
            .into_iter()
            .map(|a| AnalystInfo { id: a, name: a.step_name().to_string(), description: a.description().to_string() })
            .collect()
    }
}
