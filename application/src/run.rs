//! A run as the application keeps it: a job of kind [`KIND`] on the queue, whose args are the
//! validated request ([`RunArgs`]), whose progress document is [`RunProgress`] and whose output
//! is the [`AnalysisResult`]. [`Run::from_job`] reads one back.
//!
//! The queue writes how a job ended without reading its progress document, so a run that ended
//! without its handler's last word (timed out, cancelled, given up after lost workers) or went
//! back to `pending` still carries the steps as they were. They are closed when the run is
//! read: an unfinished step of a failed or timed-out run failed, one of a cancelled run was
//! skipped, and a pending run's unfinished steps start over — as its next attempt will.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::backtest::BacktestId;
use domain::webhook::Webhook;
use domain::{AnalysisResult, BatchId, JobStatus, RerunOf, RunId, StepProgress, StepStatus, Usage, ValidStart};
use jobs::{Job, JobId, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::tracker::{Tracker, close_steps, overall_percent, reset_unfinished_steps};

/// The job kind of an analysis run.
pub const KIND: &str = "analysis";

/// A run's args on the queue: the request as validated, and the run it retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunArgs {
    #[serde(flatten)]
    pub start: ValidStart,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<RunId>,
    /// The run whose stages before `from` this one took over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<RerunOf>,
    /// The batch this run was started in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<BatchId>,
    /// Where its events are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

/// A run's progress document: its steps, the overall percent and current step they make, and
/// what its stored steps cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunProgress {
    pub steps: Vec<StepProgress>,
    #[serde(default)]
    pub percent: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    #[serde(default)]
    pub usage: Usage,
}

impl RunProgress {
    /// Every step pending.
    pub fn new(start: &ValidStart) -> Self {
        let steps =
            domain::step_names(&start.analysts, start.options.depth).into_iter().map(StepProgress::pending).collect();
        Self::of(Tracker::new(steps), Usage::default())
    }

    /// The document of a tracker's steps.
    pub fn of(tracker: Tracker, usage: Usage) -> Self {
        let percent = overall_percent(tracker.steps());
        let current_step = tracker.current_step();
        Self { steps: tracker.into_steps(), percent, current_step, usage }
    }
}

/// One run, read back from its job.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub run_id: RunId,
    pub owner: String,
    pub start: ValidStart,
    pub retry_of: Option<RunId>,
    pub rerun_of: Option<RerunOf>,
    /// The backtest this run is a cell of.
    pub backtest_id: Option<BacktestId>,
    /// The batch this run was started in.
    pub batch_id: Option<BatchId>,
    /// Where its events are sent.
    pub webhook: Option<Webhook>,
    pub status: JobStatus,
    pub progress: RunProgress,
    pub checkpoints: BTreeMap<String, Value>,
    pub result: Option<AnalysisResult>,
    pub error: Option<String>,
    pub attempt: u32,
    /// The worker that holds (or last held) the run: `host:pid:…`.
    pub lease_owner: Option<String>,
    pub cancel_requested: bool,
    /// Bumped by every visible change: the progress ETag.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Read from the archive, where the janitor moved it.
    pub archived: bool,
}

impl Run {
    /// The run a job of [`KIND`] stores; a job of another kind or with args that do not decode
    /// is an internal error (never another user's mistake).
    pub fn from_job(job: Job) -> Result<Run> {
        if job.kind != KIND {
            return Err(Error::Internal(format!("job {} is a {}, not a run", job.job_id, job.kind)));
        }
        let args: RunArgs = serde_json::from_value(job.args)
            .map_err(|e| Error::Internal(format!("run {}: args do not decode: {e}", job.job_id)))?;
        let mut progress: RunProgress = serde_json::from_value(job.progress)
            .map_err(|e| Error::Internal(format!("run {}: progress does not decode: {e}", job.job_id)))?;
        let result = job
            .output
            .map(|o| serde_json::from_value(o).map_err(|e| Error::Internal(format!("run {}: result: {e}", job.job_id))))
            .transpose()?;
        let status = status_of(job.state);
        close(&mut progress, status, job.completed_at.unwrap_or(job.updated_at));
        Ok(Run {
            run_id: run_id(job.job_id),
            owner: job.owner,
            start: args.start,
            retry_of: args.retry_of,
            rerun_of: args.rerun_of,
            // A batch's runs are its children as a backtest's cells are the backtest's.
            backtest_id: job.parent.filter(|_| args.batch_id.is_none()).map(|p| BacktestId::from_uuid(p.0)),
            batch_id: args.batch_id,
            webhook: args.webhook,
            status,
            progress,
            checkpoints: job.checkpoints,
            result,
            error: job.error,
            attempt: job.attempt,
            lease_owner: job.lease_owner,
            cancel_requested: job.cancel_requested,
            version: job.version,
            created_at: job.created_at,
            started_at: job.started_at,
            completed_at: job.completed_at,
            updated_at: job.updated_at,
            archived: job.archived,
        })
    }

    /// Milliseconds from the first claim to the end.
    pub fn duration_ms(&self) -> Option<u64> {
        match (self.started_at, self.completed_at) {
            (Some(s), Some(c)) => Some((c - s).num_milliseconds().max(0) as u64),
            _ => None,
        }
    }

    pub fn is_active(&self) -> bool {
        !self.status.is_terminal()
    }
}

/// A run's status from its job's state (a run never waits for children).
pub fn status_of(state: State) -> JobStatus {
    match state {
        State::Waiting | State::Pending => JobStatus::Pending,
        State::Running => JobStatus::Running,
        State::Completed => JobStatus::Completed,
        State::Failed => JobStatus::Failed,
        State::Timeout => JobStatus::Timeout,
        State::Cancelled => JobStatus::Cancelled,
    }
}

pub fn run_id(id: JobId) -> RunId {
    RunId::from_uuid(id.0)
}

pub fn job_id(id: RunId) -> JobId {
    JobId(id.as_uuid())
}

/// Closes (or reopens) the steps a run's status no longer matches (see the module's docs).
fn close(progress: &mut RunProgress, status: JobStatus, at: DateTime<Utc>) {
    let unfinished = progress.steps.iter().any(|s| !s.status.is_finished());
    let steps = match status {
        JobStatus::Pending if progress.steps.iter().any(|s| s.status == StepStatus::InProgress) => {
            reset_unfinished_steps(&progress.steps)
        }
        JobStatus::Failed | JobStatus::Timeout if unfinished => {
            let running: Vec<&str> =
                progress.steps.iter().filter(|s| s.status == StepStatus::InProgress).map(|s| s.name.as_str()).collect();
            close_steps(&progress.steps, &running, at)
        }
        JobStatus::Cancelled if unfinished => close_steps(&progress.steps, &[], at),
        JobStatus::Completed => {
            progress.percent = 100;
            return;
        }
        _ => return,
    };
    let tracker = Tracker::new(steps);
    progress.percent = overall_percent(tracker.steps());
    progress.current_step = tracker.current_step();
    progress.steps = tracker.into_steps();
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{AnalystKind, ModelId, RunOptions};

    fn start() -> ValidStart {
        ValidStart {
            symbol: "AAPL".parse().unwrap(),
            model_id: ModelId::offline(),
            analysts: vec![AnalystKind::Invest],
            as_of: None,
            options: RunOptions::default(),
        }
    }

    /// A run whose worker stopped mid-step reads, once it timed out, with that step failed and
    /// the rest skipped; once requeued, with the step pending again.
    #[test]
    fn ended_runs_close_their_unfinished_steps_when_read() {
        let t = Utc::now();
        let mut tracker = Tracker::new(RunProgress::new(&start()).steps);
        tracker.start("Data Collection", None, t);
        tracker.complete("Data Collection", t);
        tracker.start("Invest Analyst", None, t);
        let doc = RunProgress::of(tracker, Usage::default());
        let mut timed_out = doc.clone();
        close(&mut timed_out, JobStatus::Timeout, t);
        let statuses: Vec<_> = timed_out.steps.iter().map(|s| s.status).collect();
        assert_eq!(statuses, vec![StepStatus::Completed, StepStatus::Failed, StepStatus::Skipped]);
        let mut pending = doc.clone();
        close(&mut pending, JobStatus::Pending, t);
        assert_eq!(pending.steps[1].status, StepStatus::Pending);
        assert_eq!(pending.current_step.as_deref(), Some("Invest Analyst"));
        let mut cancelled = doc;
        close(&mut cancelled, JobStatus::Cancelled, t);
        assert!(cancelled.steps[1..].iter().all(|s| s.status == StepStatus::Skipped));
    }

    #[test]
    fn args_keep_the_request_and_the_run_retried() {
        let args = RunArgs {
            start: start(),
            retry_of: Some(RunId::from_uuid(uuid::Uuid::nil())),
            rerun_of: None,
            batch_id: None,
            webhook: None,
        };
        let json = serde_json::to_value(&args).unwrap();
        assert_eq!(json["symbol"], "AAPL");
        assert_eq!(json["retryOf"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(serde_json::from_value::<RunArgs>(json).unwrap(), args);
    }
}
