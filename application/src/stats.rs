//! Figures for operators, computed from the runs that finished in the last day: the
//! blueprint's figures for the last hour and day, runs and duration percentiles per hour, the
//! slowest steps and the latest failures.
//!
//! A plain function of rows and the current time ([`Stats::compute`]), so it is tested with
//! exact values; [`crate::RunService::stats`] reads the rows.

use chrono::{DateTime, Duration, Utc};
use domain::{JobStatus, Rating, RunId, StepStatus};
use serde::Serialize;

use crate::run::Run;

/// Finished runs read for the figures at most; past it the day's figures are of the latest.
pub const STATS_ROWS_MAX: u32 = 20_000;
const SLOWEST_STEPS: usize = 5;
const RECENT_FAILURES: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub generated_at: DateTime<Utc>,
    pub last_hour: Figures,
    pub last_day: Figures,
    /// The last 24 hours, oldest first, each starting on the hour.
    pub per_hour: Vec<HourBucket>,
    pub queue: Queue,
    pub slowest_steps: Vec<StepFigure>,
    pub recent_failures: Vec<Failure>,
    /// Per model, its answered calls of the last day: how soon it began to write, how fast.
    pub models: Vec<ModelPace>,
}

/// One model's answered calls in a window, from the runs' logs ([`crate::store::Store::model_pace`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPace {
    pub model: String,
    pub calls: u64,
    /// The mean time from a request to its first text, in milliseconds.
    pub first_output_ms: f64,
    /// Completion tokens a second while writing (from the first text to the end); none when
    /// the model reported no tokens (the offline model).
    pub tokens_per_sec: Option<f64>,
}

/// The blueprint's figures over one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub finished: u64,
    pub completed: u64,
    /// Completed runs whose final decision could not be read into the scale (rated `Review`).
    pub review: u64,
    /// Failed and timed out.
    pub failed: u64,
    pub cancelled: u64,
    /// Mean duration of the completed runs, in milliseconds.
    pub average_duration_ms: Option<u64>,
    pub jobs_per_hour: f64,
    /// Failed and timed-out runs over finished runs, 0–1.
    pub failure_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HourBucket {
    pub start: DateTime<Utc>,
    pub finished: u64,
    pub failed: u64,
    /// Percentiles of the completed runs' durations, in milliseconds.
    pub p50_ms: Option<u64>,
    pub p90_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Queue {
    pub pending: u64,
    pub running: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepFigure {
    pub step: String,
    pub count: u64,
    pub average_ms: u64,
    pub max_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub run_id: RunId,
    pub status: JobStatus,
    pub symbol: String,
    pub model_id: String,
    pub completed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl Stats {
    /// The figures of `runs` (finished in the last day, any order) as of `now`.
    pub fn compute(runs: &[Run], counts: &[(JobStatus, u64)], now: DateTime<Utc>) -> Stats {
        let since = |d: Duration| {
            runs.iter().filter(move |j| j.completed_at.is_some_and(|t| t > now - d && t <= now)).collect::<Vec<_>>()
        };
        let day = since(Duration::hours(24));
        let hour = since(Duration::hours(1));
        let start = hour_floor(now) - Duration::hours(23);
        let per_hour = (0..24)
            .map(|i| {
                let from = start + Duration::hours(i);
                let runs: Vec<&Run> = day
                    .iter()
                    .copied()
                    .filter(|j| j.completed_at.is_some_and(|t| t >= from && t < from + Duration::hours(1)))
                    .collect();
                let mut ms = completed_durations(&runs);
                ms.sort_unstable();
                HourBucket {
                    start: from,
                    finished: runs.len() as u64,
                    failed: runs.iter().filter(|j| is_failure(j.status)).count() as u64,
                    p50_ms: percentile(&ms, 0.50),
                    p90_ms: percentile(&ms, 0.90),
                    p99_ms: percentile(&ms, 0.99),
                }
            })
            .collect();
        let count = |s: JobStatus| counts.iter().filter(|(c, _)| *c == s).map(|(_, n)| n).sum();
        let mut failures: Vec<&&Run> = day.iter().filter(|j| is_failure(j.status)).collect();
        failures.sort_by_key(|j| std::cmp::Reverse(j.completed_at));
        Stats {
            generated_at: now,
            last_hour: figures(&hour, 1.0),
            last_day: figures(&day, 24.0),
            per_hour,
            queue: Queue { pending: count(JobStatus::Pending), running: count(JobStatus::Running) },
            slowest_steps: slowest_steps(&day),
            recent_failures: failures
                .into_iter()
                .take(RECENT_FAILURES)
                .map(|j| Failure {
                    run_id: j.run_id,
                    status: j.status,
                    symbol: j.start.symbol.to_string(),
                    model_id: j.start.model_id.to_string(),
                    completed_at: j.completed_at,
                    error: j.error.clone(),
                })
                .collect(),
            models: Vec::new(),
        }
    }
}

fn is_failure(s: JobStatus) -> bool {
    matches!(s, JobStatus::Failed | JobStatus::Timeout)
}

fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp() - t.timestamp().rem_euclid(3600);
    DateTime::from_timestamp(secs, 0).expect("in range")
}

fn completed_durations(runs: &[&Run]) -> Vec<u64> {
    runs.iter().filter(|j| j.status == JobStatus::Completed).filter_map(|j| j.duration_ms()).collect()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn figures(runs: &[&Run], hours: f64) -> Figures {
    let durations = completed_durations(runs);
    let failed = runs.iter().filter(|j| is_failure(j.status)).count() as u64;
    let finished = runs.len() as u64;
    Figures {
        finished,
        completed: runs.iter().filter(|j| j.status == JobStatus::Completed).count() as u64,
        review: runs.iter().filter(|j| j.result.as_ref().is_some_and(|r| r.rating == Rating::Review)).count() as u64,
        failed,
        cancelled: runs.iter().filter(|j| j.status == JobStatus::Cancelled).count() as u64,
        average_duration_ms: (!durations.is_empty())
            .then(|| (durations.iter().sum::<u64>() as f64 / durations.len() as f64).round() as u64),
        jobs_per_hour: finished as f64 / hours,
        failure_rate: (finished > 0).then(|| failed as f64 / finished as f64),
    }
}

fn slowest_steps(runs: &[&Run]) -> Vec<StepFigure> {
    let mut by_step: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
    for job in runs {
        for step in job.progress.steps.iter().filter(|s| s.status == StepStatus::Completed) {
            if let Some(ms) = step.duration_ms {
                by_step.entry(step.name.as_str()).or_default().push(ms);
            }
        }
    }
    let mut steps: Vec<StepFigure> = by_step
        .into_iter()
        .map(|(step, ms)| StepFigure {
            step: step.to_string(),
            count: ms.len() as u64,
            average_ms: (ms.iter().sum::<u64>() as f64 / ms.len() as f64).round() as u64,
            max_ms: ms.iter().copied().max().unwrap_or(0),
        })
        .collect();
    steps.sort_by(|a, b| b.average_ms.cmp(&a.average_ms).then_with(|| a.step.cmp(&b.step)));
    steps.truncate(SLOWEST_STEPS);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.9), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn hours_start_on_the_hour() {
        let t = DateTime::parse_from_rfc3339("2026-11-29T16:41:07Z").unwrap().with_timezone(&Utc);
        assert_eq!(hour_floor(t).to_rfc3339(), "2026-11-29T16:00:00+00:00");
    }
}
