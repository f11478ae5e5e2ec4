//! The vocabulary of the job state machine (see `docs/state-machine.md`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a run is in its life. `pending` and `running` are active; the rest are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Timeout,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] =
        [Self::Pending, Self::Running, Self::Completed, Self::Failed, Self::Timeout, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }

    /// A run that ended without a result can be retried (as a new run).
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Failed | Self::Timeout | Self::Cancelled)
    }

    /// A short label for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "Queued",
            Self::Running => "Running",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Timeout => "Timed out",
            Self::Cancelled => "Cancelled",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown job status '{s}'"))
    }
}

/// Where one step of a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Pending,
    InProgress,
    Completed,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "Waiting",
            Self::InProgress => "In progress",
            Self::Completed => "Done",
            Self::Failed => "Failed",
            Self::Skipped => "Skipped",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Skipped)
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialise_as_the_api_spells_them() {
        assert_eq!(serde_json::to_string(&JobStatus::Timeout).unwrap(), "\"timeout\"");
        assert_eq!(serde_json::to_string(&StepStatus::InProgress).unwrap(), "\"in-progress\"");
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
        }
        assert!(JobStatus::Cancelled.is_retryable() && !JobStatus::Completed.is_retryable());
        assert!(!JobStatus::Running.is_terminal() && JobStatus::Timeout.is_terminal());
    }

    #[test]
    fn statuses_are_shown_by_their_api_names_and_labelled_for_people() {
        let labels: Vec<&str> = JobStatus::ALL.iter().map(|s| s.label()).collect();
        assert_eq!(labels, ["Queued", "Running", "Completed", "Failed", "Timed out", "Cancelled"]);
        for s in JobStatus::ALL {
            assert_eq!(s.to_string(), s.as_str());
        }
        let steps = [
            StepStatus::Pending,
            StepStatus::InProgress,
            StepStatus::Completed,
            StepStatus::Failed,
            StepStatus::Skipped,
        ];
        let shown: Vec<(String, &str, bool)> =
            steps.iter().map(|s| (s.to_string(), s.label(), s.is_finished())).collect();
        assert_eq!(
            shown,
            [
                ("pending".to_string(), "Waiting", false),
                ("in-progress".to_string(), "In progress", false),
                ("completed".to_string(), "Done", true),
                ("failed".to_string(), "Failed", true),
                ("skipped".to_string(), "Skipped", true),
            ]
        );
        for s in steps {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
