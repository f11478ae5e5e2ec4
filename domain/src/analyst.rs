//! The analysts a run can include, and the names of the pipeline's steps.
//!
//! A run's steps are always `Data Collection`, then one step per selected analyst in the
//! canonical order below, then `Final Assessment`. The job engine creates the step list when the
//! run is created, so the shape lives here, shared by everyone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{IdError, truncate};
use crate::team::{Depth, TeamRole};

pub const DATA_COLLECTION: &str = "Data Collection";
pub const FINAL_ASSESSMENT: &str = "Final Assessment";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AnalystKind {
    Invest,
    Risk,
    Sentiment,
    Technical,
}

impl AnalystKind {
    /// Every analyst, in the canonical order used for steps and reports.
    pub const ALL: [AnalystKind; 4] = [Self::Invest, Self::Risk, Self::Sentiment, Self::Technical];

    pub fn id(self) -> &'static str {
        match self {
            Self::Invest => "invest",
            Self::Risk => "risk",
            Self::Sentiment => "sentiment",
            Self::Technical => "technical",
        }
    }

    /// The name of this analyst's step in a run's progress.
    pub fn step_name(self) -> &'static str {
        match self {
            Self::Invest => "Invest Analyst",
            Self::Risk => "Risk Analyst",
            Self::Sentiment => "Sentiment Analyst",
            Self::Technical => "Technical Analyst",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::Invest => "Trend, momentum and valuation proxies, turned into an investment thesis.",
            Self::Risk => "Volatility, drawdown, value at risk and beta: how much could go wrong.",
            Self::Sentiment => {
                "Market-implied sentiment from price and volume, and headline tone when news is configured."
            }
            Self::Technical => "RSI, MACD, Bollinger bands and moving-average crossovers.",
        }
    }

    pub fn from_step_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.step_name() == name)
    }
}

impl fmt::Display for AnalystKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for AnalystKind {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|a| a.id() == t).ok_or_else(|| {
            IdError(format!(
                "'{}' is not an analyst (choose from {})",
                truncate(s),
                Self::ALL.map(|a| a.id()).join(", ")
            ))
        })
    }
}

/// The step names of a run with these analysts at this depth, in order: the team's steps
/// come between the analysts and the final assessment of `standard` and `deep` runs.
pub fn step_names(analysts: &[AnalystKind], depth: Depth) -> Vec<String> {
    let mut sorted = analysts.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut names = Vec::with_capacity(sorted.len() + 9);
    names.push(DATA_COLLECTION.to_string());
    names.extend(sorted.iter().map(|a| a.step_name().to_string()));
    if !depth.is_quick() {
        names.extend(
            TeamRole::ALL.iter().filter(|r| **r != TeamRole::PortfolioManager).map(|r| r.step_name().to_string()),
        );
    }
    names.push(FINAL_ASSESSMENT.to_string());
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_in_canonical_order_without_duplicates() {
        let steps = step_names(&[AnalystKind::Sentiment, AnalystKind::Invest, AnalystKind::Sentiment], Depth::Quick);
        assert_eq!(steps, vec!["Data Collection", "Invest Analyst", "Sentiment Analyst", "Final Assessment"]);
    }

    #[test]
    fn deeper_runs_add_the_team_between_the_analysts_and_the_final_assessment() {
        let steps = step_names(&[AnalystKind::Risk], Depth::Standard);
        assert_eq!(
            steps,
            vec![
                "Data Collection",
                "Risk Analyst",
                "Bull Researcher",
                "Bear Researcher",
                "Research Manager",
                "Trader",
                "Aggressive Risk Analyst",
                "Conservative Risk Analyst",
                "Neutral Risk Analyst",
                "Final Assessment"
            ]
        );
        assert_eq!(step_names(&[AnalystKind::Risk], Depth::Deep), steps);
    }

    #[test]
    fn analyst_ids_parse_case_insensitively_and_name_the_choices() {
        assert_eq!("RISK".parse::<AnalystKind>().unwrap(), AnalystKind::Risk);
        let e = "fundamentals".parse::<AnalystKind>().unwrap_err();
        assert!(e.0.contains("invest, risk, sentiment, technical"), "{e}");
        assert_eq!(AnalystKind::from_step_name("Technical Analyst"), Some(AnalystKind::Technical));
    }

    #[test]
    fn each_analyst_is_shown_by_its_id_and_described_in_words_of_its_own() {
        for a in AnalystKind::ALL {
            assert_eq!(a.to_string(), a.id());
            assert_eq!(a.to_string().parse::<AnalystKind>().unwrap(), a);
        }
        assert!(AnalystKind::Technical.description().starts_with("RSI, MACD"));
        assert!(AnalystKind::Risk.description().contains("value at risk"));
        let info = crate::AnalystInfo::all();
        let ids: Vec<AnalystKind> = info.iter().map(|i| i.id).collect();
        assert_eq!(ids, AnalystKind::ALL);
        for (i, a) in info.iter().zip(AnalystKind::ALL) {
            assert_eq!((i.name.as_str(), i.description.as_str()), (a.step_name(), a.description()));
        }
        let distinct: std::collections::HashSet<&str> = info.iter().map(|i| i.description.as_str()).collect();
        assert_eq!(distinct.len(), 4, "four descriptions, none empty or shared");
    }
}
