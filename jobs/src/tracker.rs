//! The step list of a running job, as its worker keeps it.
//!
//! Only the worker holding the lease changes a running job's steps, so it keeps them in memory
//! and writes the whole list each time: no read-modify-write against the database. Changes are
//! plain state transitions here; `JobContext` decides when they are written.

use chrono::{DateTime, Utc};
use domain::{StepProgress, StepStatus};

use crate::model::{ProgressSnapshot, overall_percent};

#[derive(Debug, Clone)]
pub struct Tracker {
    steps: Vec<StepProgress>,
}

impl Tracker {
    pub fn new(steps: Vec<StepProgress>) -> Self {
        Self { steps }
    }

    pub fn steps(&self) -> &[StepProgress] {
        &self.steps
    }

    fn step_mut(&mut self, name: &str) -> Option<&mut StepProgress> {
        self.steps.iter_mut().find(|s| s.name == name)
    }

    /// Marks a step in progress. Returns false for an unknown or already finished step.
    pub fn start(&mut self, name: &str, detail: Option<String>, now: DateTime<Utc>) -> bool {
        match self.step_mut(name) {
            Some(s) if !s.status.is_finished() => {
                s.status = StepStatus::InProgress;
                s.progress = 0;
                s.started_at = Some(now);
                s.completed_at = None;
                s.duration_ms = None;
                s.detail = detail;
                true
            }
            _ => false,
        }
    }

    /// Moves a step's own progress forward (never back: a report that arrives late is ignored).
    /// Returns whether anything visible changed.
    pub fn advance(&mut self, name: &str, percent: u8, detail: Option<String>) -> bool {
        match self.step_mut(name) {
            Some(s) if s.status == StepStatus::InProgress => {
                let percent = percent.min(99); // 100 means completed, which only `complete` says
                let mut changed = false;
                if percent > s.progress {
                    s.progress = percent;
                    changed = true;
                }
                if detail.is_some() && detail != s.detail {
                    s.detail = detail;
                    changed = true;
                }
                changed
            }
            _ => false,
        }
    }

    pub fn complete(&mut self, name: &str, now: DateTime<Utc>) -> bool {
        match self.step_mut(name) {
            Some(s) if !s.status.is_finished() => {
                let started = s.started_at.unwrap_or(now);
                s.status = StepStatus::Completed;
                s.progress = 100;
                s.started_at = Some(started);
                s.completed_at = Some(now);
                s.duration_ms = Some((now - started).num_milliseconds().max(0) as u64);
                s.detail = None;
                true
            }
            _ => false,
        }
    }

    /// The steps in progress, in order, as one label ("Invest Analyst, Risk Analyst"); the next
    /// pending step when none is.
    pub fn current_step(&self) -> Option<String> {
        let running: Vec<&str> =
            self.steps.iter().filter(|s| s.status == StepStatus::InProgress).map(|s| s.name.as_str()).collect();
        if !running.is_empty() {
            return Some(running.join(", "));
        }
        self.steps.iter().find(|s| s.status == StepStatus::Pending).map(|s| s.name.clone())
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            steps: self.steps.clone(),
            progress_percent: overall_percent(&self.steps),
            current_step: self.current_step(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Tracker {
        Tracker::new(
            domain::step_names(&[domain::AnalystKind::Invest, domain::AnalystKind::Risk], domain::Depth::Quick)
                .into_iter()
                .map(StepProgress::pending)
                .collect(),
        )
    }

    #[test]
    fn progress_only_moves_forward_and_stops_short_of_done() {
        let mut t = tracker();
        let now = Utc::now();
        assert!(t.start("Invest Analyst", None, now));
        assert!(t.advance("Invest Analyst", 60, None));
        assert!(!t.advance("Invest Analyst", 40, None));
        assert!(t.advance("Invest Analyst", 100, None));
        assert_eq!(t.steps()[1].progress, 99);
        assert!(!t.advance("Risk Analyst", 50, None), "a pending step has no progress");
        assert!(!t.start("Nope", None, now));
    }

    #[test]
    fn current_step_lists_concurrent_steps_then_the_next_pending_one() {
        let mut t = tracker();
        let now = Utc::now();
        assert_eq!(t.current_step().as_deref(), Some("Data Collection"));
        t.start("Data Collection", None, now);
        t.complete("Data Collection", now);
        t.start("Invest Analyst", None, now);
        t.start("Risk Analyst", None, now);
        assert_eq!(t.current_step().as_deref(), Some("Invest Analyst, Risk Analyst"));
        t.complete("Invest Analyst", now);
        t.complete("Risk Analyst", now);
        assert_eq!(t.current_step().as_deref(), Some("Final Assessment"));
        assert!(!t.complete("Risk Analyst", now), "completing twice changes nothing");
        // 1 + 2 + 2 of 6 shares done
        assert_eq!(t.snapshot().progress_percent, 83);
    }
}
