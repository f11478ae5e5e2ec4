//! The Trading Agents team beyond the analysts: research depth, the roles that debate and
//! decide after the analysts, and what each of them hands on.
//!
//! A `quick` run is the blueprint's pipeline (data, analysts, final assessment). `standard` and
//! `deep` runs add, in order, a bull/bear debate, the research manager's verdict, the trader's
//! plan, a debate of three risk analysts over that plan, and the portfolio manager's decision
//! (which keeps the blueprint's step name, `Final Assessment`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{IdError, ModelId, truncate};

/// How far a run goes after the analysts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Depth {
    /// The blueprint's pipeline: analysts, then the final assessment.
    #[default]
    Quick,
    /// The whole team, one round of each debate.
    Standard,
    /// The whole team, several rounds of each debate (three unless configured otherwise).
    Deep,
}

impl Depth {
    pub const ALL: [Depth; 3] = [Self::Quick, Self::Standard, Self::Deep];

    pub fn id(self) -> &'static str {
        match self {
            Self::Quick => "quick",
            Self::Standard => "standard",
            Self::Deep => "deep",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Quick => "Quick — analysts and a final assessment",
            Self::Standard => "Standard — the whole team, one round of debate",
            Self::Deep => "Deep — the whole team, several rounds of debate",
        }
    }

    pub fn is_quick(&self) -> bool {
        *self == Self::Quick
    }
}

impl fmt::Display for Depth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Depth {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|d| d.id() == t).ok_or_else(|| {
            IdError(format!("'{}' is not a research depth (choose from quick, standard, deep)", truncate(s)))
        })
    }
}

/// What a run is asked to do beyond its symbol, model and analysts; stored with the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunOptions {
    #[serde(default, skip_serializing_if = "Depth::is_quick")]
    pub depth: Depth,
    /// Rounds of each debate, fixed when the run is created (none for `quick`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
    /// A second, stronger model for the research manager and the portfolio manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep_model_id: Option<ModelId>,
    /// The run fails with "budget exceeded" once its model calls cost more than this (USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// The run fails with "budget exceeded" once its model calls used more tokens than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
}

impl RunOptions {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Rounds of each debate: 0 for `quick`, at least 1 otherwise.
    pub fn debate_rounds(&self) -> u32 {
        match self.depth {
            Depth::Quick => 0,
            Depth::Standard => self.rounds.unwrap_or(1).max(1),
            Depth::Deep => self.rounds.unwrap_or(DEEP_ROUNDS_DEFAULT).max(1),
        }
    }

    /// Model calls a run with `analysts` analysts makes at this depth: one per analyst and the
    /// final assessment; deeper runs add per round the bull and the bear and the three risk
    /// analysts, and once the research manager and the trader.
    pub fn expected_calls(&self, analysts: usize) -> u32 {
        let base = analysts as u32 + 1;
        match self.depth {
            Depth::Quick => base,
            _ => base + 5 * self.debate_rounds() + 2,
        }
    }
}

/// Rounds of each debate in a `deep` run unless configured otherwise.
pub const DEEP_ROUNDS_DEFAULT: u32 = 3;

/// The teams of TradingAgents, as the progress view groups steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Team {
    Analysts,
    Research,
    Trading,
    Risk,
    Portfolio,
}

impl Team {
    /// In the order they work.
    pub const ALL: [Team; 5] = [Team::Analysts, Team::Research, Team::Trading, Team::Risk, Team::Portfolio];

    /// As the API names it: `analysts`, `research`, `trading`, `risk`, `portfolio`.
    pub fn id(self) -> &'static str {
        match self {
            Self::Analysts => "analysts",
            Self::Research => "research",
            Self::Trading => "trading",
            Self::Risk => "risk",
            Self::Portfolio => "portfolio",
        }
    }

    pub fn parse(id: &str) -> Option<Team> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Analysts => "Analysts",
            Self::Research => "Research",
            Self::Trading => "Trading",
            Self::Risk => "Risk",
            Self::Portfolio => "Portfolio",
        }
    }

    /// The team a step belongs to; data collection counts with the analysts.
    pub fn of_step(step: &str) -> Team {
        match TeamRole::from_step_name(step) {
            Some(role) => role.team(),
            None if step == crate::FINAL_ASSESSMENT => Team::Portfolio,
            None => Team::Analysts,
        }
    }
}

/// A member of the team after the analysts, with the name of its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum TeamRole {
    BullResearcher,
    BearResearcher,
    ResearchManager,
    Trader,
    AggressiveRisk,
    ConservativeRisk,
    NeutralRisk,
    /// Decides in the step `Final Assessment`.
    PortfolioManager,
}

impl TeamRole {
    /// Every role in step order.
    pub const ALL: [TeamRole; 8] = [
        Self::BullResearcher,
        Self::BearResearcher,
        Self::ResearchManager,
        Self::Trader,
        Self::AggressiveRisk,
        Self::ConservativeRisk,
        Self::NeutralRisk,
        Self::PortfolioManager,
    ];
    pub const RESEARCHERS: [TeamRole; 2] = [Self::BullResearcher, Self::BearResearcher];
    pub const RISK_DEBATERS: [TeamRole; 3] = [Self::AggressiveRisk, Self::ConservativeRisk, Self::NeutralRisk];

    pub fn step_name(self) -> &'static str {
        match self {
            Self::BullResearcher => "Bull Researcher",
            Self::BearResearcher => "Bear Researcher",
            Self::ResearchManager => "Research Manager",
            Self::Trader => "Trader",
            Self::AggressiveRisk => "Aggressive Risk Analyst",
            Self::ConservativeRisk => "Conservative Risk Analyst",
            Self::NeutralRisk => "Neutral Risk Analyst",
            Self::PortfolioManager => crate::FINAL_ASSESSMENT,
        }
    }

    /// The role's name for people ("Portfolio Manager" rather than its step's name).
    pub fn title(self) -> &'static str {
        match self {
            Self::PortfolioManager => "Portfolio Manager",
            other => other.step_name(),
        }
    }

    pub fn team(self) -> Team {
        match self {
            Self::BullResearcher | Self::BearResearcher | Self::ResearchManager => Team::Research,
            Self::Trader => Team::Trading,
            Self::AggressiveRisk | Self::ConservativeRisk | Self::NeutralRisk => Team::Risk,
            Self::PortfolioManager => Team::Portfolio,
        }
    }

    /// Roles whose step is their own (the portfolio manager's is `Final Assessment`).
    pub fn from_step_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().filter(|r| *r != Self::PortfolioManager).find(|r| r.step_name() == name)
    }
}

/// The research manager's and the trader's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Action {
    Buy,
    Hold,
    Sell,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "Buy",
            Self::Hold => "Hold",
            Self::Sell => "Sell",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Buy, Self::Hold, Self::Sell].into_iter().find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
    }

    pub fn score(self) -> f64 {
        match self {
            Self::Buy => 1.0,
            Self::Hold => 0.0,
            Self::Sell => -1.0,
        }
    }
}

/// One turn of a debate: a researcher's or a risk analyst's argument in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Argument {
    pub role: TeamRole,
    /// From 1.
    pub round: u32,
    /// Markdown, written by a model: render it as untrusted text.
    pub text: String,
    /// A risk analyst's proposed position, as a fraction of the portfolio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_size: Option<f64>,
    /// A risk analyst's proposed stop-loss price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<f64>,
    /// The debater had nothing new to say and rested its case: the debate ends after this round.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rests: bool,
}

/// The research manager's judgement of the bull/bear debate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub action: Action,
    /// 0–1.
    pub confidence: f64,
    /// Markdown.
    pub reasoning: String,
}

/// What the team after the analysts did, for the result page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TeamReport {
    pub depth: Depth,
    pub rounds: u32,
    /// The bull/bear debate, round by round (bull first within a round).
    pub debate: Vec<Argument>,
    pub verdict: Verdict,
    // The trader's plan and the final one are the result's `trade`.
    /// The risk debate, round by round (aggressive, conservative, neutral within a round).
    pub risk_debate: Vec<Argument>,
    /// The portfolio manager's reasoning (Markdown); the rating is the result's.
    pub decision: String,
    /// The model of the two managers when the run named one (`deepModelId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep_model_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_parses_and_rounds_follow_it() {
        assert_eq!("Deep".parse::<Depth>().unwrap(), Depth::Deep);
        assert!("thorough".parse::<Depth>().unwrap_err().0.contains("quick, standard, deep"));
        let deep = RunOptions { depth: Depth::Deep, ..RunOptions::default() };
        assert_eq!(deep.debate_rounds(), 3);
        assert_eq!(RunOptions { rounds: Some(5), ..deep.clone() }.debate_rounds(), 5);
        assert_eq!(RunOptions { depth: Depth::Standard, ..RunOptions::default() }.debate_rounds(), 1);
        assert_eq!(RunOptions::default().debate_rounds(), 0);
        assert_eq!(RunOptions::default().expected_calls(4), 5, "four analysts and the final assessment");
        let standard = RunOptions { depth: Depth::Standard, ..RunOptions::default() };
        assert_eq!(standard.expected_calls(2), 2 + 2 + 3 + 1 + 2);
        assert_eq!(deep.expected_calls(1), 1 + 3 * (2 + 3) + 2 + 1);
        assert_eq!(serde_json::to_string(&RunOptions::default()).unwrap(), "{}");
        assert!(RunOptions::default().is_default());
        assert!(!deep.is_default());
        assert!(!RunOptions { max_tokens: Some(100), ..RunOptions::default() }.is_default());
    }

    #[test]
    fn depths_and_teams_are_named_for_people() {
        for d in [Depth::Quick, Depth::Standard, Depth::Deep] {
            assert_eq!(d.to_string(), d.id());
            assert_eq!(d.to_string().parse::<Depth>().unwrap(), d);
        }
        assert_eq!(Depth::Standard.label(), "Standard — the whole team, one round of debate");
        assert!(Depth::Deep.label().starts_with("Deep — "));
        let teams: Vec<&str> = [Team::Analysts, Team::Research, Team::Trading, Team::Risk, Team::Portfolio]
            .iter()
            .map(|t| t.label())
            .collect();
        assert_eq!(teams, ["Analysts", "Research", "Trading", "Risk", "Portfolio"]);
        assert_eq!(TeamRole::PortfolioManager.title(), "Portfolio Manager");
        assert_eq!(TeamRole::Trader.title(), "Trader");
    }

    #[test]
    fn actions_read_back_what_they_write_and_score_their_direction() {
        for (a, word, score) in [(Action::Buy, "Buy", 1.0), (Action::Hold, "Hold", 0.0), (Action::Sell, "Sell", -1.0)] {
            assert_eq!(a.as_str(), word);
            assert_eq!(Action::parse(&format!(" {} ", word.to_lowercase())), Some(a));
            assert_eq!(a.score(), score);
        }
        assert_eq!(Action::parse("short"), None);
    }

    #[test]
    fn steps_belong_to_teams() {
        assert_eq!(Team::of_step("Data Collection"), Team::Analysts);
        assert_eq!(Team::of_step("Invest Analyst"), Team::Analysts);
        assert_eq!(Team::of_step("Bear Researcher"), Team::Research);
        assert_eq!(Team::of_step("Trader"), Team::Trading);
        assert_eq!(Team::of_step("Neutral Risk Analyst"), Team::Risk);
        assert_eq!(Team::of_step("Final Assessment"), Team::Portfolio);
        assert_eq!(TeamRole::from_step_name("Final Assessment"), None);
    }
}
