//! The final assessment of a run.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::analyst::AnalystKind;
use crate::plan::Trade;
use crate::rating::{Rating, Stance};
use crate::team::TeamReport;

/// Said once wherever an analysis by the offline model is shown (a page, a Markdown export, the
/// terminal), never in each of its reports.
pub const RULE_BASED_NOTE: &str = "Rule-based analysis by the offline model: no language model was used.";

/// A named figure with its display form, e.g. `{label: "RSI(14)", value: 61.2, display: "61.2"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Figure {
    pub label: String,
    pub value: Option<f64>,
    pub display: String,
}

/// Tokens spent on model calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    pub prompt: u64,
    pub completion: u64,
}

impl TokenUsage {
    pub fn total(&self) -> u64 {
        self.prompt + self.completion
    }

    pub fn add(&mut self, other: TokenUsage) {
        self.prompt += other.prompt;
        self.completion += other.completion;
    }
}

/// Model calls made, tokens spent, and what they cost in US dollars at the catalog's prices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub calls: u32,
    pub tokens: TokenUsage,
    #[serde(default)]
    pub cost_usd: f64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.calls += other.calls;
        self.tokens.add(other.tokens);
        self.cost_usd += other.cost_usd;
    }
}

/// A limit of tokens and one of cost; `None` is no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AnalystReport {
    pub analyst: AnalystKind,
    pub stance: Stance,
    /// 0–1.
    pub confidence: f64,
    pub key_figures: Vec<Figure>,
    /// Markdown, written by a model: render it as untrusted text.
    pub report: String,
}

/// One day of the price chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PricePoint {
    pub date: NaiveDate,
    pub close: f64,
    pub sma50: Option<f64>,
    pub sma200: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AnalysisResult {
    pub symbol: String,
    pub as_of: NaiveDate,
    pub model_id: String,
    pub rating: Rating,
    /// 0–1.
    pub confidence: f64,
    pub summary: String,
    /// The plan to act on (its direction is the rating's) and, in a team run, the trader's
    /// proposal it came from. Runs finished before plans existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade: Option<Trade>,
    pub key_risks: Vec<String>,
    pub reports: Vec<AnalystReport>,
    /// Headline figures of the data, for the figures table.
    pub figures: Vec<Figure>,
    /// About a year of closes up to the as-of date.
    pub chart: Vec<PricePoint>,
    pub llm_calls: u32,
    pub tokens: TokenUsage,
    /// True when the rule-based offline model wrote the reports.
    pub rule_based: bool,
    /// What the model calls cost in US dollars, from the catalog's prices; `None` for the
    /// offline model.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// The debates, the trader's plan and the portfolio manager's reasoning of a `standard` or
    /// `deep` run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<TeamReport>,
    // The blueprint's result shape, alongside the fields above, so a client written to the
    // blueprint reads it: one object per analyst that ran, and the final assessment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invest_analyst: Option<AnalystReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_analyst: Option<AnalystReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment_analyst: Option<AnalystReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technical_analyst: Option<AnalystReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_assessment: Option<FinalAssessment>,
}

/// The blueprint's `finalAssessment` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FinalAssessment {
    pub rating: Rating,
    pub confidence: f64,
    pub summary: String,
    pub key_risks: Vec<String>,
    /// The portfolio manager's reasoning, in `standard` and `deep` runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
}

impl AnalysisResult {
    /// Fills the blueprint's per-analyst and `finalAssessment` objects from the fields above.
    pub fn with_blueprint_fields(mut self) -> Self {
        let report = |kind: AnalystKind| self.reports.iter().find(|r| r.analyst == kind).cloned();
        self.invest_analyst = report(AnalystKind::Invest);
        self.risk_analyst = report(AnalystKind::Risk);
        self.sentiment_analyst = report(AnalystKind::Sentiment);
        self.technical_analyst = report(AnalystKind::Technical);
        self.final_assessment = Some(FinalAssessment {
            rating: self.rating,
            confidence: self.confidence,
            summary: self.summary.clone(),
            key_risks: self.key_risks.clone(),
            reasoning: self.team.as_ref().map(|t| t.decision.clone()),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rating_bands_are_symmetric_and_ordered() {
        assert_eq!(Rating::from_score(0.9), Rating::Buy);
        assert_eq!(Rating::from_score(0.2), Rating::Overweight);
        assert_eq!(Rating::from_score(0.0), Rating::Hold);
        assert_eq!(Rating::from_score(-0.2), Rating::Underweight);
        assert_eq!(Rating::from_score(-0.9), Rating::Sell);
        assert_eq!(Rating::from_score(0.15), Rating::Overweight);
        assert_eq!(Rating::from_score(-0.15), Rating::Underweight);
        assert_eq!(Rating::parse(" overweight"), Some(Rating::Overweight));
        // The band edges belong to the stronger rating on both sides.
        assert_eq!(Rating::from_score(0.45), Rating::Buy);
        assert_eq!(Rating::from_score(-0.45), Rating::Sell);
    }

    #[test]
    fn stances_read_back_what_they_write_and_score_their_direction() {
        for (s, word, score) in
            [(Stance::Bullish, "bullish", 1.0), (Stance::Neutral, "neutral", 0.0), (Stance::Bearish, "bearish", -1.0)]
        {
            assert_eq!(s.as_str(), word);
            assert_eq!(Stance::parse(word), Some(s));
            assert_eq!(Stance::parse(&format!(" {} ", word.to_uppercase())), Some(s));
            assert_eq!(s.score(), score);
        }
        assert_eq!(Stance::parse("bull"), None);
    }

    #[test]
    fn usage_adds_up_field_by_field() {
        let mut tokens = TokenUsage { prompt: 7, completion: 5 };
        assert_eq!(tokens.total(), 12);
        tokens.add(TokenUsage { prompt: 3, completion: 2 });
        assert_eq!(tokens, TokenUsage { prompt: 10, completion: 7 });
        let mut usage = Usage { calls: 2, tokens, cost_usd: 0.25 };
        usage.add(Usage { calls: 3, tokens: TokenUsage { prompt: 1, completion: 1 }, cost_usd: 0.5 });
        assert_eq!(usage, Usage { calls: 5, tokens: TokenUsage { prompt: 11, completion: 8 }, cost_usd: 0.75 });
    }
}
