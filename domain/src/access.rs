//! Ways to a run other than the browser's session: personal API tokens as their owner sees
//! them listed (never the secret, which is shown once, when made), and read-only share links.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A personal API token, as listed on the settings page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// The longest name a token may have.
pub const TOKEN_NAME_MAX: usize = 64;

/// A read-only link to a run, as its owner sees it listed: never the secret, which is in the
/// link's address and shown once, when it is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ShareLink {
    pub id: String,
    pub run_id: crate::RunId,
    pub created_at: DateTime<Utc>,
}
