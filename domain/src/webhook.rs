//! Webhooks: where a run's (or batch's) events are sent, which events, and how each delivery
//! went. Deliveries follow the Standard Webhooks convention (the server signs and sends them).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::request::FieldError;

/// What a webhook can be told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvent {
    /// The run started (its first claim by a worker); a batch was stored.
    Start,
    /// A step of the run finished.
    Step,
    /// The run (or batch) ended, whatever its status.
    Completed,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 3] = [Self::Start, Self::Step, Self::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Step => "step",
            Self::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s.trim())
    }
}

/// A webhook as stored with what it belongs to: its URL and the events it wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub url: String,
    pub events: Vec<WebhookEvent>,
}

/// Reads `webhookEvents` as given: `completed` when absent; each unknown one named.
pub fn parse_events(given: Option<&[String]>) -> Result<Vec<WebhookEvent>, FieldError> {
    let Some(given) = given else { return Ok(vec![WebhookEvent::Completed]) };
    let mut events = Vec::new();
    for e in given {
        match WebhookEvent::parse(e) {
            Some(e) if !events.contains(&e) => events.push(e),
            Some(_) => {}
            None => {
                return Err(FieldError::new(
                    "webhookEvents",
                    format!("'{e}' is not an event (start, step or completed)"),
                ));
            }
        }
    }
    if events.is_empty() {
        return Err(FieldError::new("webhookEvents", "name at least one event: start, step or completed"));
    }
    events.sort();
    Ok(events)
}

/// One event's delivery to a webhook, as `GET /api/trading/runs/{runId}/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The `webhook-id` header: the same on every attempt of this event.
    pub webhook_id: String,
    /// `start`, `step` or `completed`.
    pub event: WebhookEvent,
    /// The step, for a `step` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub url: String,
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// Given up on, after a day and more of retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<DateTime<Utc>>,
    /// While neither delivered nor given up on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The body of `GET /api/trading/runs/{runId}/deliveries`: oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}
