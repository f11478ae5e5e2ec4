//! The step list of a running analysis, as its worker keeps it, and what a step list adds up to.
//!
//! Only the worker holding the lease changes a running job's steps, so it keeps them in memory
//! and writes the whole list each time: no read-modify-write against the database. Changes are
//! plain state transitions here; the reporter decides when they are written.

use chrono::{DateTime, Utc};
use domain::{AnalystKind, StepProgress, StepStatus};

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

    pub fn into_steps(self) -> Vec<StepProgress> {
        self.steps
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
                s.text = None;
                s.last_output_at = Some(now);
                s.set_stall(None);
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
                s.text = None;
                s.last_output_at = None;
                s.set_stall(None);
                true
            }
            _ => false,
        }
    }

    /// Notes that a running step's model wrote something at `now`.
    pub fn heard(&mut self, name: &str, now: DateTime<Utc>) {
        if let Some(s) = self.step_mut(name).filter(|s| s.status == StepStatus::InProgress) {
            s.last_output_at = Some(now);
        }
    }

    /// Marks a running step's model stalled (`Some`) or no longer (`None`). Returns whether
    /// anything changed.
    pub fn stall(&mut self, name: &str, stall: Option<&domain::Stall>) -> bool {
        match self.step_mut(name) {
            Some(s) if s.status == StepStatus::InProgress && s.stall.as_ref() != stall => {
                s.set_stall(stall.cloned());
                true
            }
            _ => false,
        }
    }

    /// Shows `tail` as the end of a running step's text. Returns whether anything changed.
    pub fn show_text(&mut self, name: &str, tail: &str) -> bool {
        match self.step_mut(name) {
            Some(s) if s.status == StepStatus::InProgress && s.text.as_deref() != Some(tail) => {
                s.text = Some(tail.to_string());
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
}

/// The steps of a run that ended: finished steps keep their state, an unfinished step named in
/// `failed` becomes `failed`, and every other unfinished step becomes `skipped`.
pub fn close_steps(steps: &[StepProgress], failed: &[&str], now: DateTime<Utc>) -> Vec<StepProgress> {
    steps
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if !s.status.is_finished() {
                s.status = if failed.contains(&s.name.as_str()) { StepStatus::Failed } else { StepStatus::Skipped };
                s.detail = None;
                s.text = None;
                s.last_output_at = None;
                s.set_stall(None);
                if s.started_at.is_some() {
                    s.completed_at = Some(now);
                    s.duration_ms = s.started_at.map(|t| (now - t).num_milliseconds().max(0) as u64);
                }
            }
            s
        })
        .collect()
}

/// The steps of a run going back to `pending` for another attempt: completed steps stay
/// completed (their checkpoints will be reused), everything else starts over.
pub fn reset_unfinished_steps(steps: &[StepProgress]) -> Vec<StepProgress> {
    steps
        .iter()
        .map(|s| if s.status == StepStatus::Completed { s.clone() } else { StepProgress::pending(s.name.clone()) })
        .collect()
}

/// Overall percent of a step list whose steps are weighted: data collection, the final
/// assessment and the team's steps count one share each, every analyst two (in a quick run
/// they are where the model time goes).
pub fn overall_percent(steps: &[StepProgress]) -> u8 {
    let weight = |s: &StepProgress| if AnalystKind::from_step_name(&s.name).is_some() { 2.0 } else { 1.0 };
    let total: f64 = steps.iter().map(weight).sum();
    if total == 0.0 {
        return 0;
    }
    let done: f64 = steps
        .iter()
        .map(|s| {
            let p = if s.status == StepStatus::Completed { 100.0 } else { f64::from(s.progress.min(100)) };
            weight(s) * p
        })
        .sum();
    (done / total).floor().clamp(0.0, 100.0) as u8
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
        assert_eq!(overall_percent(t.steps()), 83);
    }

    #[test]
    fn a_stall_belongs_to_a_running_step_and_ends_with_it() {
        let mut t = tracker();
        let now = Utc::now();
        let stall =
            domain::Stall { model: "Grok 4".into(), since: now, gives_up_at: now + chrono::Duration::seconds(180) };
        assert!(!t.stall("Invest Analyst", Some(&stall)), "a pending step is not stalled");
        t.start("Invest Analyst", None, now);
        assert!(t.stall("Invest Analyst", Some(&stall)));
        assert!(!t.stall("Invest Analyst", Some(&stall)), "the same stall again changes nothing");
        let s = &t.steps()[1];
        assert!(s.stalled && s.stall.as_ref() == Some(&stall));
        assert!(t.stall("Invest Analyst", None));
        assert!(!t.steps()[1].stalled && t.steps()[1].stall.is_none());
        t.stall("Invest Analyst", Some(&stall));
        t.complete("Invest Analyst", now);
        assert!(!t.steps()[1].stalled && t.steps()[1].stall.is_none(), "a finished step is not stalled");
        t.start("Risk Analyst", None, now);
        t.stall("Risk Analyst", Some(&stall));
        let closed = close_steps(t.steps(), &["Risk Analyst"], now);
        assert!(!closed[2].stalled && closed[2].stall.is_none(), "nor a failed one");
    }

    fn step(name: &str, status: StepStatus, progress: u8) -> StepProgress {
        StepProgress { status, progress, ..StepProgress::pending(name) }
    }

    #[test]
    fn percent_weights_analysts_double() {
        let steps = vec![
            step("Data Collection", StepStatus::Completed, 100),
            step("Invest Analyst", StepStatus::InProgress, 50),
            step("Risk Analyst", StepStatus::Pending, 0),
            step("Final Assessment", StepStatus::Pending, 0),
        ];
        // (1*100 + 2*50 + 0 + 0) / 6 = 33.3
        assert_eq!(overall_percent(&steps), 33);
        assert_eq!(overall_percent(&[]), 0);
    }

    #[test]
    fn closing_marks_the_failed_step_and_skips_the_rest() {
        let t = Utc::now();
        let mut running = step("Risk Analyst", StepStatus::InProgress, 40);
        running.started_at = Some(t - chrono::Duration::seconds(2));
        let steps = vec![
            step("Data Collection", StepStatus::Completed, 100),
            running,
            step("Final Assessment", StepStatus::Pending, 0),
        ];
        let closed = close_steps(&steps, &["Risk Analyst"], t);
        assert_eq!(
            closed.iter().map(|s| s.status).collect::<Vec<_>>(),
            vec![StepStatus::Completed, StepStatus::Failed, StepStatus::Skipped]
        );
        assert_eq!(closed[1].duration_ms, Some(2000));
        let reset = reset_unfinished_steps(&steps);
        assert_eq!(reset[1], StepProgress::pending("Risk Analyst"));
        assert_eq!(reset[0].status, StepStatus::Completed);
    }
}
