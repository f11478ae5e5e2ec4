//! The body of `GET /api/trading/progress/:runId`, field for field as the blueprint's API.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::analyst::AnalystKind;
use crate::ids::{ModelId, RunId, Symbol};
use crate::result::AnalysisResult;
use crate::status::{JobStatus, StepStatus};
use crate::team::{Depth, Team};

/// A run started from another's finished stages ([`crate::RerunRequest`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RerunOf {
    pub run_id: RunId,
    /// The first stage run anew (`analysts`, `research`, `trading`, `risk`, `portfolio`); the
    /// steps of the stages before it were taken over.
    pub from: Team,
}

/// One step of a run as the progress view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StepProgress {
    pub name: String,
    pub status: StepStatus,
    /// 0–100, this step's own progress.
    pub progress: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Milliseconds from the step's start to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// What the step is doing right now, e.g. "Waiting for the model".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// While the step runs: the end of the text its model has written so far (at most
    /// [`TEXT_TAIL_MAX`] bytes; the whole text is the run's transcript).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// While the step runs: when its model last wrote anything (its start, before it has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_output_at: Option<DateTime<Utc>>,
    /// While the step runs: its model has written nothing for a while (see [`Stall`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stalled: bool,
    /// Whose silence it is, since when, and when the call is given up; set exactly when
    /// `stalled` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall: Option<Stall>,
    /// Taken over from the run this one reruns: not run again, not paid for again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
}

/// A model call that has produced no output for a while: the page says "no output from
/// `model` for 45 s — still waiting (gives up at 180 s)".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Stall {
    /// The model's name as the catalog shows it.
    pub model: String,
    /// When the model last produced anything, or the call began if it has not.
    pub since: DateTime<Utc>,
    /// When the call is abandoned (and retried, or the step failed) if the silence goes on.
    pub gives_up_at: DateTime<Utc>,
}

impl Stall {
    /// Whole seconds of silence at `now`.
    pub fn silent_secs(&self, now: DateTime<Utc>) -> i64 {
        (now - self.since).num_seconds().max(0)
    }

    /// Whole seconds of silence after which the call is given up.
    pub fn limit_secs(&self) -> i64 {
        (self.gives_up_at - self.since).num_seconds().max(0)
    }

    /// "No output from Grok 4 for 45 s — still waiting (gives up at 180 s)".
    pub fn sentence(&self, now: DateTime<Utc>) -> String {
        format!(
            "No output from {} for {} s — still waiting (gives up at {} s)",
            self.model,
            self.silent_secs(now),
            self.limit_secs()
        )
    }
}

/// The most of a running step's text its step object carries: its last bytes.
pub const TEXT_TAIL_MAX: usize = 2_000;

/// The last at most `max` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

impl StepProgress {
    /// Marks the step stalled by `stall`, or not stalled: `stalled` and `stall` agree.
    pub fn set_stall(&mut self, stall: Option<Stall>) {
        self.stalled = stall.is_some();
        self.stall = stall;
    }

    pub fn pending(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: StepStatus::Pending,
            progress: 0,
            started_at: None,
            completed_at: None,
            duration_ms: None,
            detail: None,
            text: None,
            last_output_at: None,
            stalled: false,
            stall: None,
            reused: false,
        }
    }
}

/// Everything the progress view shows of a run, without its result: what the browser polls
/// and keeps in memory (the result is rendered by the server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    pub run_id: RunId,
    pub status: JobStatus,
    /// 0–100 over the whole run, weighted by step.
    pub progress: u8,
    pub current_step: Option<String>,
    pub steps: Vec<StepProgress>,
    pub started_at: Option<DateTime<Utc>>,
    /// Seconds, while the run is active; never 0 while it is still going.
    pub estimated_time_remaining: Option<u64>,
    /// When the run is expected to end, as estimated at its last write (`updatedAt`); a page
    /// counts down to it between writes.
    #[serde(default)]
    pub estimated_completion_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Milliseconds from start to end, once the run has ended.
    pub duration: Option<u64>,
    // Beyond the blueprint: what the run is, so a page can be rebuilt from this body alone.
    pub symbol: Symbol,
    pub model_id: ModelId,
    pub analysts: Vec<AnalystKind>,
    pub as_of: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempt: u32,
    pub cancel_requested: bool,
    pub retry_of: Option<RunId>,
    /// The run this one reruns, and the stage it ran anew from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<RerunOf>,
    /// The batch this run was started in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<crate::ids::BatchId>,
    pub llm_calls: u32,
    #[serde(default)]
    pub depth: Depth,
    /// What the model calls so far cost in US dollars, at the catalog's prices (0 for the
    /// offline model).
    #[serde(default)]
    pub cost_usd: f64,
    /// Tokens the model calls so far used.
    #[serde(default)]
    pub tokens: u64,
}

/// The body of `GET /api/trading/progress/:runId`: the run's state and, once it completed, its
/// result — one flat JSON object, field for field as the blueprint's API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    #[serde(flatten)]
    pub run: RunState,
    pub result: Option<AnalysisResult>,
}

/// How run pages follow progress: the `PROGRESS_TRANSPORT` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProgressTransport {
    /// A live stream (Server-Sent Events), falling back to polling when the stream fails or
    /// stays silent, and returning to it later.
    #[default]
    Auto,
    /// A live stream only, reconnecting as `EventSource` does (hosts known to stream).
    Sse,
    /// Polling every 2 s only: no stream is opened (serverless hosts, buffering proxies).
    Poll,
}

/// The `data` of an `event: text` message of the event stream: the next piece of a step's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextDelta {
    /// The step's name, as in `steps[]`.
    pub step: String,
    /// The piece's place in the step's text, from 0.
    pub seq: u32,
    pub delta: String,
}

/// `GET /api/trading/runs/:runId/transcript`: the whole text the run's models wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    pub run_id: RunId,
    /// One entry per step that calls a model, in the order of `steps[]`.
    pub steps: Vec<TranscriptEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TranscriptEntry {
    /// The step's name, as in `steps[]`.
    pub step: String,
    /// Who speaks in it ("Bull Researcher", "Portfolio Manager").
    pub agent: String,
    /// The catalog id of the model that wrote it.
    pub model: String,
    /// Everything written so far: the `delta`s of the step's text events, joined.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
}

/// A duration for people: `0.4 s`, `42 s`, `3 min 05 s`, `1 h 02 min`.
pub fn duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    if ms < 1000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration_ms(420), "0.4 s");
        assert_eq!(duration_ms(42_300), "42 s");
        assert_eq!(duration_ms(185_000), "3 min 05 s");
        assert_eq!(duration_ms(3_720_000), "1 h 02 min");
    }

    #[test]
    fn a_stall_counts_whole_seconds_from_its_start() {
        let since = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").unwrap().with_timezone(&Utc);
        let stall = Stall { model: "Grok 4".into(), since, gives_up_at: since + chrono::Duration::seconds(180) };
        let now = since + chrono::Duration::milliseconds(45_900);
        assert_eq!(stall.silent_secs(now), 45);
        assert_eq!(stall.limit_secs(), 180);
        assert_eq!(stall.sentence(now), "No output from Grok 4 for 45 s — still waiting (gives up at 180 s)");
        // A clock a little behind the worker's does not count backwards.
        assert_eq!(stall.silent_secs(since - chrono::Duration::seconds(2)), 0);
    }
}
