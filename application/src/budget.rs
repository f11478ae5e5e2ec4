//! The per-user daily budget of model tokens and cost (`DAILY_TOKENS_PER_USER`,
//! `DAILY_COST_USD_PER_USER`).
//!
//! "Daily" is a rolling window of the last 24 hours: what counts is what the user's runs last
//! updated in that window spent. A start is refused once that reaches a limit; a running run
//! is held to what is left as a second budget beside its own, read again before each model
//! step, so that runs of one user running at once share it.

use chrono::{DateTime, Duration, Utc};

use domain::Budget;

use crate::store::UserUsage;

/// How far back a user's spending counts.
pub const WINDOW: Duration = Duration::hours(24);

/// The limits of one user's spending in [`WINDOW`]; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DailyBudget {
    pub tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}

impl DailyBudget {
    pub fn is_off(&self) -> bool {
        self.tokens.is_none() && self.cost_usd.is_none()
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.cost_usd.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
            return Err("DAILY_COST_USD_PER_USER must be a positive number".into());
        }
        if self.tokens == Some(0) {
            return Err("DAILY_TOKENS_PER_USER must be positive".into());
        }
        Ok(())
    }

    /// What is left after `used`, never below zero: the budget a run is held to.
    pub fn remaining(&self, used: &UserUsage) -> Budget {
        Budget {
            max_tokens: self.tokens.map(|max| max.saturating_sub(used.tokens)),
            max_cost_usd: self.cost_usd.map(|max| (max - used.cost_usd).max(0.0)),
        }
    }

    /// Why no run may start, when `used` has reached a limit.
    pub fn exhausted(&self, used: &UserUsage) -> Option<String> {
        if let Some(max) = self.tokens.filter(|max| used.tokens >= *max) {
            return Some(format!("{} tokens used of your {max} tokens a day", used.tokens));
        }
        if let Some(max) = self.cost_usd.filter(|max| used.cost_usd >= *max) {
            return Some(format!("${:.4} spent of your ${max:.4} a day", used.cost_usd));
        }
        None
    }

    /// How long until the oldest counted run leaves the window, in whole seconds rounded up
    /// (at least one).
    pub fn retry_after(used: &UserUsage, now: DateTime<Utc>) -> std::time::Duration {
        let until = used.oldest.map(|t| t + WINDOW - now).unwrap_or(WINDOW);
        let secs = (until.num_milliseconds().max(0) as u64).div_ceil(1000);
        std::time::Duration::from_secs(secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_and_exhausted_follow_the_limits() {
        let budget = DailyBudget { tokens: Some(1000), cost_usd: Some(0.5) };
        let used = UserUsage { runs: 2, tokens: 400, cost_usd: 0.2, oldest: None };
        assert_eq!(budget.remaining(&used), Budget { max_tokens: Some(600), max_cost_usd: Some(0.3) });
        assert_eq!(budget.exhausted(&used), None);
        let over = UserUsage { tokens: 1200, ..used };
        assert_eq!(budget.remaining(&over).max_tokens, Some(0));
        assert_eq!(budget.exhausted(&over).unwrap(), "1200 tokens used of your 1000 tokens a day");
        let spent = UserUsage { cost_usd: 0.5, ..used };
        assert_eq!(budget.exhausted(&spent).unwrap(), "$0.5000 spent of your $0.5000 a day");
        assert_eq!(DailyBudget::default().exhausted(&over), None);
    }

    #[test]
    fn retry_after_is_when_the_oldest_run_leaves_the_window() {
        let now = Utc::now();
        let used = UserUsage { oldest: Some(now - Duration::hours(23)), ..UserUsage::default() };
        assert_eq!(DailyBudget::retry_after(&used, now).as_secs(), 3600);
        let gone = UserUsage { oldest: Some(now - Duration::hours(25)), ..UserUsage::default() };
        assert_eq!(DailyBudget::retry_after(&gone, now).as_secs(), 1);
    }
}
