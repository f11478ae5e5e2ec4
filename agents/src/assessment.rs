//! What a model writes — one analyst's view, the final assessment, the portfolio manager's
//! decision — and the brief a member of the team after the analysts reads: plain data.
//!
//! Both ways of writing them use these: the models ([`crate::model`]) and the offline rules
//! ([`crate::rules`], [`crate::team`]) that the offline model calls, so the rules need no model.

use domain::{AnalystReport, Argument, Rating, Stance, Trade, TradePlan, Verdict};

use crate::snapshot::MarketSnapshot;

/// One analyst's view: its stance, how sure it is, and its Markdown report.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalystView {
    pub stance: Stance,
    pub confidence: f64,
    pub report: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub rating: Rating,
    pub confidence: f64,
    pub summary: String,
    pub key_risks: Vec<String>,
}

/// The final step's decision: the final assessment, the reasoning behind it (the portfolio
/// manager's; empty in a quick run) and the trade it settles on ([`crate::plan::settle`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub assessment: Assessment,
    /// Markdown.
    pub reasoning: String,
    pub trade: Trade,
}

/// What a member of the team after the analysts reads: the data, the analysts' reports, and
/// what the team has said so far. `round` is the debate round being argued (from 1).
#[derive(Debug, Clone, Copy)]
pub struct Brief<'a> {
    pub data: &'a MarketSnapshot,
    pub reports: &'a [AnalystReport],
    /// The bull/bear debate so far.
    pub debate: &'a [Argument],
    pub verdict: Option<&'a Verdict>,
    pub plan: Option<&'a TradePlan>,
    /// The risk debate so far.
    pub risk_debate: &'a [Argument],
    pub round: u32,
    pub rounds: u32,
}
