//! A run's log: what its worker did, event by event — the data it read, each model call with
//! what it cost and how soon it answered, each retry with the wait it honoured, stalls,
//! checkpoints taken over after a crash, cancellation, the end. Read at
//! `GET /api/trading/runs/{runId}/log` and, folded, on the run page. Nothing secret is in it:
//! no keys, no prompts.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{JobStatus, RunId};

/// The body of `GET /api/trading/runs/{runId}/log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunLog {
    pub run_id: RunId,
    /// In the order they happened.
    pub entries: Vec<LogEntry>,
}

/// One event of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub at: DateTime<Utc>,
    /// The step it happened in, as in `steps[]`; none for the run as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(flatten)]
    pub event: LogEvent,
}

/// What happened; `kind` names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum LogEvent {
    /// A worker took the run up (attempt 1, or a later one after a crash or a lost lease).
    #[serde(rename_all = "camelCase")]
    Started { attempt: u32 },
    /// Steps an earlier attempt completed, taken over from their checkpoints: not run again,
    /// not paid for again.
    #[serde(rename_all = "camelCase")]
    Resumed { steps: Vec<String> },
    /// Steps taken over from the run this one reruns (`from`), as that run left them.
    #[serde(rename_all = "camelCase")]
    Reused { from: RunId, steps: Vec<String> },
    /// Daily prices read for `symbol`.
    #[serde(rename_all = "camelCase")]
    Data { source: String, symbol: String, rows: u32, first: NaiveDate, last: NaiveDate },
    /// Headlines read from the news feeds, or why none were.
    #[serde(rename_all = "camelCase")]
    News {
        headlines: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// One answered model call.
    #[serde(rename_all = "camelCase")]
    Call {
        /// The catalog id.
        model: String,
        tokens_in: u64,
        tokens_out: u64,
        /// US dollars at the catalog's prices.
        cost_usd: f64,
        /// From the request to the answer's end.
        latency_ms: u64,
        /// From the request to the first text; none when no text came.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_output_ms: Option<u64>,
    },
    /// A model call failed and is tried again after `wait_ms`.
    #[serde(rename_all = "camelCase")]
    Retry {
        model: String,
        /// This retry's number, from 1, of `of`.
        retry: u32,
        of: u32,
        /// What went wrong, as the provider or the transport said it.
        reason: String,
        /// The provider's HTTP status, when it answered with one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// What the provider asked for with `Retry-After`, when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// The wait before the retry: `Retry-After`, else the backoff, at most the policy's cap.
        wait_ms: u64,
    },
    /// The model has produced nothing since `since`; the call is given up at `gives_up_at`.
    #[serde(rename_all = "camelCase")]
    Stalled { model: String, since: DateTime<Utc>, gives_up_at: DateTime<Utc> },
    /// Someone asked the run to stop.
    #[serde(rename_all = "camelCase")]
    Cancelled {},
    /// The run ended: completed or failed (with why).
    #[serde(rename_all = "camelCase")]
    Ended {
        status: JobStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        calls: u32,
        tokens: u64,
        cost_usd: f64,
    },
}

impl LogEvent {
    /// The `kind` as serialized.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::Resumed { .. } => "resumed",
            Self::Reused { .. } => "reused",
            Self::Data { .. } => "data",
            Self::News { .. } => "news",
            Self::Call { .. } => "call",
            Self::Retry { .. } => "retry",
            Self::Stalled { .. } => "stalled",
            Self::Cancelled {} => "cancelled",
            Self::Ended { .. } => "ended",
        }
    }

    /// One line for a reader: "Retry 1 of 3 in 2 s: rate limited (429, Retry-After 2 s)".
    pub fn describe(&self) -> String {
        match self {
            Self::Started { attempt: 1 } => "A worker started the run".into(),
            Self::Started { attempt } => format!("A worker took the run up again (attempt {attempt})"),
            Self::Resumed { steps } => {
                format!("Taken over from the last attempt, not run again: {}", steps.join(", "))
            }
            Self::Reused { from, steps } => {
                format!("Taken over from run {}, not run again: {}", &from.to_string()[..8], steps.join(", "))
            }
            Self::Data { source, symbol, rows, first, last } => {
                let source = match source.as_str() {
                    "bundled" => "the bundled data",
                    "yahoo" => "Yahoo Finance",
                    "stooq" => "Stooq",
                    other => other,
                };
                format!("{rows} daily prices of {symbol} from {source}, {first} to {last}")
            }
            Self::News { headlines, error: None } => format!("{headlines} headlines read"),
            Self::News { error: Some(e), .. } => format!("No headlines: {e}"),
            Self::Call { model, tokens_in, tokens_out, cost_usd, latency_ms, first_output_ms } => {
                let first = first_output_ms.map(|ms| format!(", first text after {}", secs(ms))).unwrap_or_default();
                // The offline model counts no tokens and costs nothing: nothing to say of either.
                let spent = match (tokens_in + tokens_out, *cost_usd > 0.0) {
                    (0, _) => String::new(),
                    (_, false) => format!(": {tokens_in} tokens in, {tokens_out} out"),
                    (_, true) => format!(": {tokens_in} tokens in, {tokens_out} out, ${cost_usd:.4}"),
                };
                format!("{model} answered in {}{first}{spent}", secs(*latency_ms))
            }
            Self::Retry { model, retry, of, reason, status, retry_after_ms, wait_ms } => {
                let asked = match (status, retry_after_ms) {
                    (Some(s), Some(ms)) => format!(" (HTTP {s}, Retry-After {})", secs(*ms)),
                    (Some(s), None) => format!(" (HTTP {s})"),
                    (None, _) => String::new(),
                };
                format!("{model}: {reason}{asked}; retry {retry} of {of} after {}", secs(*wait_ms))
            }
            Self::Stalled { model, since, gives_up_at } => format!(
                "No output from {model} for a while; giving up at {} s of silence",
                (*gives_up_at - *since).num_seconds().max(0)
            ),
            Self::Cancelled {} => "Cancelled".into(),
            Self::Ended { status, message, calls, tokens, cost_usd } => {
                let calls = if *calls == 1 { "1 model call".to_string() } else { format!("{calls} model calls") };
                let spent = match (*tokens, *cost_usd > 0.0) {
                    (0, _) => calls,
                    (_, false) => format!("{calls}, {tokens} tokens"),
                    (_, true) => format!("{calls}, {tokens} tokens, ${cost_usd:.4}"),
                };
                match message {
                    Some(m) => format!("{}: {m} ({spent})", status.label()),
                    None => format!("{} ({spent})", status.label()),
                }
            }
        }
    }
}

/// "0.35 s", "2 s", "12.5 s".
fn secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else if ms < 10_000 {
        format!("{:.2} s", ms as f64 / 1000.0)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_one_flat_object_named_by_kind() {
        let entry = LogEntry {
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            step: Some("Market Analyst".into()),
            event: LogEvent::Retry {
                model: "grok".into(),
                retry: 1,
                of: 3,
                reason: "rate limited".into(),
                status: Some(429),
                retry_after_ms: Some(2_000),
                wait_ms: 2_000,
            },
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["kind"], "retry");
        assert_eq!(json["step"], "Market Analyst");
        assert_eq!(json["retryAfterMs"], 2_000);
        assert_eq!(json["waitMs"], 2_000);
        assert_eq!(serde_json::from_value::<LogEntry>(json).unwrap(), entry);
        assert_eq!(entry.event.describe(), "grok: rate limited (HTTP 429, Retry-After 2 s); retry 1 of 3 after 2 s");
        let offline = LogEvent::Call {
            model: "offline".into(),
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            latency_ms: 3_010,
            first_output_ms: Some(100),
        };
        assert_eq!(offline.describe(), "offline answered in 3.01 s, first text after 0.10 s");
        let ended = |tokens, cost_usd| LogEvent::Ended {
            status: JobStatus::Completed,
            message: None,
            calls: 2,
            tokens,
            cost_usd,
        };
        assert_eq!(ended(0, 0.0).describe(), "Completed (2 model calls)");
        assert_eq!(ended(1_200, 0.0036).describe(), "Completed (2 model calls, 1200 tokens, $0.0036)");
        let cancelled = serde_json::to_value(LogEvent::Cancelled {}).unwrap();
        assert_eq!(cancelled, serde_json::json!({"kind": "cancelled"}));
    }

    #[test]
    fn durations_read_as_seconds() {
        assert_eq!(secs(350), "0.35 s");
        assert_eq!(secs(2_000), "2 s");
        assert_eq!(secs(12_540), "12.5 s");
    }
}
