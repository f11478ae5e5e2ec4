//! The estimated time remaining of a run, from how long the same steps took in recent
//! completed runs of the same model.
//!
//! - Each step's expected duration is the median of its recent durations; until there is
//!   history, a model step is expected to take one call of the model as the catalog expects
//!   it (a debate step one call per round), and data collection a second.
//! - Analysts run concurrently, so their phase costs as much as its slowest remaining analyst.
//! - A step in progress is expected to take the larger of its median and what its own progress
//!   projects; one that has overrun its expected duration is expected to need at least as long
//!   again as it has overrun — an estimate never pretends a late step is about to end.
//! - While the run is active the estimate is never 0 (at least one second).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{AnalystKind, DATA_COLLECTION, FINAL_ASSESSMENT, StepProgress, StepStatus, TeamRole};

const DEFAULT_DATA: Duration = Duration::from_secs(1);
const DEFAULT_ANALYST: Duration = Duration::from_secs(30);
const DEFAULT_FINAL: Duration = Duration::from_secs(15);
const FLOOR: Duration = Duration::from_secs(1);

/// Median durations per step name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepDurations {
    medians: HashMap<String, Duration>,
    /// One model call, as the catalog expects it; the defaults below when unknown.
    per_call: Option<Duration>,
    /// Rounds of each debate.
    rounds: u32,
}

impl StepDurations {
    /// From the step lists of completed runs.
    pub fn from_history(runs: &[Vec<StepProgress>]) -> Self {
        let mut samples: HashMap<String, Vec<u64>> = HashMap::new();
        for run in runs {
            for s in run {
                if let (StepStatus::Completed, Some(d)) = (s.status, s.duration_ms) {
                    samples.entry(s.name.clone()).or_default().push(d);
                }
            }
        }
        let medians = samples
            .into_iter()
            .map(|(name, mut v)| {
                v.sort_unstable();
                let mid = v.len() / 2;
                let median = if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2 };
                (name, Duration::from_millis(median))
            })
            .collect();
        Self { medians, per_call: None, rounds: 1 }
    }

    /// With the expected duration of one model call and the rounds of each debate, for steps
    /// that have no history yet.
    pub fn with_calls(mut self, per_call: Duration, rounds: u32) -> Self {
        self.per_call = Some(per_call);
        self.rounds = rounds.max(1);
        self
    }

    pub fn expected(&self, step: &str) -> Duration {
        if let Some(d) = self.medians.get(step) {
            return *d;
        }
        if step == DATA_COLLECTION {
            DEFAULT_DATA
        } else if let Some(call) = self.per_call.filter(|_| {
            // Analysts borrow each other's history before the catalog's guess.
            AnalystKind::from_step_name(step).is_none()
                || AnalystKind::ALL.iter().all(|a| !self.medians.contains_key(a.step_name()))
        }) {
            let debate = TeamRole::from_step_name(step)
                .is_some_and(|r| TeamRole::RESEARCHERS.contains(&r) || TeamRole::RISK_DEBATERS.contains(&r));
            if debate { call * self.rounds } else { call }
        } else if step == FINAL_ASSESSMENT {
            DEFAULT_FINAL
        } else if let Some(analyst) = AnalystKind::from_step_name(step) {
            // Analysts of one model tend to cost alike: borrow another analyst's median.
            AnalystKind::ALL
                .iter()
                .filter(|a| **a != analyst)
                .find_map(|a| self.medians.get(a.step_name()).copied())
                .unwrap_or(DEFAULT_ANALYST)
        } else {
            DEFAULT_ANALYST
        }
    }
}

/// Time left for one step.
fn step_remaining(step: &StepProgress, expected: Duration, now: DateTime<Utc>) -> Duration {
    match step.status {
        StepStatus::Completed | StepStatus::Failed | StepStatus::Skipped => Duration::ZERO,
        StepStatus::Pending => expected,
        StepStatus::InProgress => {
            let elapsed = step.started_at.map(|t| (now - t).to_std().unwrap_or_default()).unwrap_or_default();
            let projected_total = if step.progress > 0 {
                elapsed.mul_f64(100.0 / f64::from(step.progress)).max(expected)
            } else {
                expected
            };
            let left = projected_total.saturating_sub(elapsed);
            let overrun = elapsed.saturating_sub(expected);
            left.max(overrun).max(FLOOR)
        }
    }
}

/// Time left for a run with these steps; `None` once nothing is left to do.
pub fn remaining(steps: &[StepProgress], durations: &StepDurations, now: DateTime<Utc>) -> Option<Duration> {
    if steps.iter().all(|s| s.status.is_finished()) {
        return None;
    }
    // Steps that run side by side count once, as the longest of them: the analysts, the two
    // researchers, the three risk analysts.
    let mut sequential = Duration::ZERO;
    let mut side_by_side = [Duration::ZERO; 3];
    for s in steps {
        let left = step_remaining(s, durations.expected(&s.name), now);
        let group = if AnalystKind::from_step_name(&s.name).is_some() {
            Some(0)
        } else {
            match TeamRole::from_step_name(&s.name) {
                Some(r) if TeamRole::RESEARCHERS.contains(&r) => Some(1),
                Some(r) if TeamRole::RISK_DEBATERS.contains(&r) => Some(2),
                _ => None,
            }
        };
        match group {
            Some(g) => side_by_side[g] = side_by_side[g].max(left),
            None => sequential += left,
        }
    }
    Some((sequential + side_by_side.iter().sum::<Duration>()).max(FLOOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(name: &str, ms: u64) -> StepProgress {
        StepProgress {
            status: StepStatus::Completed,
            progress: 100,
            duration_ms: Some(ms),
            ..StepProgress::pending(name)
        }
    }

    fn running(name: &str, started: DateTime<Utc>, progress: u8) -> StepProgress {
        StepProgress {
            status: StepStatus::InProgress,
            progress,
            started_at: Some(started),
            ..StepProgress::pending(name)
        }
    }

    #[test]
    fn medians_come_from_history() {
        let d = StepDurations::from_history(&[
            vec![done("Invest Analyst", 1000)],
            vec![done("Invest Analyst", 3000)],
            vec![done("Invest Analyst", 2000), done("Final Assessment", 500)],
        ]);
        assert_eq!(d.expected("Invest Analyst"), Duration::from_millis(2000));
        assert_eq!(d.expected("Final Assessment"), Duration::from_millis(500));
        // No history of the risk analyst: another analyst's median stands in.
        assert_eq!(d.expected("Risk Analyst"), Duration::from_millis(2000));
        assert_eq!(d.expected("Data Collection"), DEFAULT_DATA);
    }

    #[test]
    fn concurrent_analysts_cost_their_slowest_and_overruns_are_not_hidden() {
        let now = Utc::now();
        let d = StepDurations::from_history(&[vec![
            done("Data Collection", 1000),
            done("Invest Analyst", 10_000),
            done("Risk Analyst", 4000),
            done("Final Assessment", 2000),
        ]]);
        let steps = vec![
            done("Data Collection", 1000),
            running("Invest Analyst", now - chrono::Duration::seconds(4), 0),
            running("Risk Analyst", now - chrono::Duration::seconds(4), 0),
            StepProgress::pending("Final Assessment"),
        ];
        // invest: 10 - 4 = 6 s left; risk: 0 left but overran by 0 → floor 1 s; + final 2 s.
        assert_eq!(remaining(&steps, &d, now), Some(Duration::from_secs(8)));

        let late = vec![
            done("Data Collection", 1000),
            running("Risk Analyst", now - chrono::Duration::seconds(10), 0),
            StepProgress::pending("Final Assessment"),
        ];
        // 10 s into a 4 s step: 6 s overrun is the least it still needs, + 2 s final.
        assert_eq!(remaining(&late, &d, now), Some(Duration::from_secs(8)));
    }

    #[test]
    fn progress_projects_the_step_and_the_estimate_is_never_zero_while_active() {
        let now = Utc::now();
        let d = StepDurations::default();
        // 20 s in at 80 %: 25 s total projected, but the 30 s default is larger → 10 s left.
        let steps = vec![running("Invest Analyst", now - chrono::Duration::seconds(20), 80)];
        assert_eq!(remaining(&steps, &d, now), Some(Duration::from_secs(10)));
        let nearly = vec![done("Data Collection", 5), running("Final Assessment", now, 99)];
        assert!(remaining(&nearly, &d, now).unwrap() >= Duration::from_secs(1));
        assert_eq!(remaining(&[done("Final Assessment", 5)], &d, now), None);
    }

    #[test]
    fn debaters_of_one_round_count_once() {
        let d = StepDurations::from_history(&[vec![
            done("Bull Researcher", 4000),
            done("Bear Researcher", 6000),
            done("Aggressive Risk Analyst", 3000),
            done("Conservative Risk Analyst", 5000),
            done("Neutral Risk Analyst", 1000),
            done("Trader", 2000),
        ]]);
        let steps: Vec<StepProgress> = [
            "Bull Researcher",
            "Bear Researcher",
            "Trader",
            "Aggressive Risk Analyst",
            "Conservative Risk Analyst",
            "Neutral Risk Analyst",
        ]
        .into_iter()
        .map(StepProgress::pending)
        .collect();
        // max(4, 6) + 2 + max(3, 5, 1)
        assert_eq!(remaining(&steps, &d, Utc::now()), Some(Duration::from_secs(13)));
    }

    /// Before any history, the catalog's expected call sets the estimate: a quick run of four
    /// analysts whose model answers in about 3 s is a second of data, one round of analysts
    /// side by side and the final call — not 30 s an analyst. A deep run's debate step is a
    /// call a round; history, once there, wins.
    #[test]
    fn without_history_the_catalogs_call_latency_sets_the_estimate() {
        let d = StepDurations::default().with_calls(Duration::from_millis(3050), 3);
        let mut steps: Vec<StepProgress> = domain::step_names(&AnalystKind::ALL, domain::Depth::Quick)
            .into_iter()
            .map(|n| StepProgress::pending(&n))
            .collect();
        assert_eq!(remaining(&steps, &d, Utc::now()), Some(Duration::from_millis(1000 + 3050 + 3050)));
        steps.push(StepProgress::pending("Bull Researcher"));
        steps.push(StepProgress::pending("Bear Researcher"));
        assert_eq!(remaining(&steps, &d, Utc::now()), Some(Duration::from_millis(1000 + 3050 + 3050 + 3 * 3050)));
        let known =
            StepDurations::from_history(&[vec![done("Invest Analyst", 500)]]).with_calls(Duration::from_secs(3), 1);
        assert_eq!(known.expected("Risk Analyst"), Duration::from_millis(500), "a known analyst's time first");
        assert_eq!(known.expected("Final Assessment"), Duration::from_secs(3));
    }
}
