//! The offline model's rules for the analysts and the final assessment: deterministic
//! functions of the computed figures. The team's, after the
//! analysts, are in [`crate::team`].
//!
//! - An analyst's view: its signals ([`crate::analysts::signals`]) weighed into a stance and a
//!   confidence, and written out one reason a line.
//! - The final assessment: the analysts' stances weighted by their confidence and role, on the
//!   five-level rating, with the risks the figures show.

use domain::{AnalystKind, AnalystReport, Rating, Stance};

use crate::analysts::{signals, weigh};
use crate::assessment::{AnalystView, Assessment, Decision};
use crate::format::{pct, signed_pct};
use crate::plan::settle;
use crate::snapshot::MarketSnapshot;

/// How much each analyst counts in the final rating.
pub fn analyst_weight(kind: AnalystKind) -> f64 {
    match kind {
        AnalystKind::Invest => 0.35,
        AnalystKind::Technical => 0.25,
        AnalystKind::Risk => 0.25,
        AnalystKind::Sentiment => 0.15,
    }
}

fn stance_word(s: Stance) -> &'static str {
    match s {
        Stance::Bullish => "Bullish",
        Stance::Neutral => "Neutral",
        Stance::Bearish => "Bearish",
    }
}

/// The offline view of one analyst: its signals, weighed, written out.
pub fn view(kind: AnalystKind, data: &MarketSnapshot) -> AnalystView {
    let signals = signals(kind, data);
    let (score, stance, confidence) = weigh(&signals);
    let lead = match (kind, stance) {
        (AnalystKind::Risk, Stance::Bullish) => "Risk is contained: the figures support holding the position.",
        (AnalystKind::Risk, Stance::Neutral) => "Risk is ordinary for an equity: size the position accordingly.",
        (AnalystKind::Risk, Stance::Bearish) => "Risk is elevated: losses could be large and sudden.",
        (_, Stance::Bullish) => "The evidence leans positive.",
        (_, Stance::Neutral) => "The evidence is mixed.",
        (_, Stance::Bearish) => "The evidence leans negative.",
    };
    let mut report = format!(
        "**{}: {}** (score {score:+.2}, confidence {})\n\n{lead}\n\n",
        kind.step_name(),
        stance_word(stance),
        pct(confidence)
    );
    for s in &signals {
        report.push_str(&format!("- {}\n", s.reason));
    }
    if signals.is_empty() {
        report.push_str("- Not enough history to read any signal.\n");
    }
    AnalystView { stance, confidence, report: report.trim_end().to_string() }
}

/// The offline final assessment: analysts' stances weighted by their confidence and role.
pub fn assess(data: &MarketSnapshot, reports: &[AnalystReport]) -> Assessment {
    let (mut num, mut den) = (0.0, 0.0);
    for r in reports {
        let w = analyst_weight(r.analyst) * r.confidence;
        num += w * r.stance.score();
        den += analyst_weight(r.analyst);
    }
    let score = if den > 0.0 { num / den } else { 0.0 };
    let rating = Rating::from_score(score);
    let agreeing = reports
        .iter()
        .filter(|r| r.stance.score() * score > 0.0 || (score == 0.0 && r.stance == Stance::Neutral))
        .count();
    let mean_conf = reports.iter().map(|r| r.confidence).sum::<f64>() / reports.len().max(1) as f64;
    let confidence = (mean_conf * (0.6 + 0.4 * agreeing as f64 / reports.len().max(1) as f64)).clamp(0.2, 0.9);

    let views: Vec<String> = reports
        .iter()
        .map(|r| format!("{} {}", r.analyst.step_name().trim_end_matches(" Analyst").to_lowercase(), r.stance.as_str()))
        .collect();
    let mut summary = format!(
        "{} as of {}: {} (score {score:+.2}). Analysts: {}.",
        data.symbol,
        data.as_of,
        rating.as_str(),
        views.join(", ")
    );
    if let Some(m) = data.momentum_12m {
        summary.push_str(&format!(" Twelve-month return {}.", signed_pct(m)));
    }
    summary.push_str(" Rule-based assessment from price data alone.");
    Assessment { rating, confidence, summary, key_risks: key_risks(data) }
}

/// The offline final step of a quick run: the assessment, and the desk's plan for its rating,
/// quoted in the summary.
pub fn final_assessment(data: &MarketSnapshot, reports: &[AnalystReport]) -> Decision {
    let mut assessment = assess(data, reports);
    let trade = settle(data, None, &[], assessment.rating);
    let tail = " Rule-based assessment from price data alone.";
    let head = assessment.summary.strip_suffix(tail).unwrap_or(&assessment.summary).to_string();
    assessment.summary = format!("{head} Plan: {}.{tail}", trade.plan.line());
    Decision { assessment, reasoning: String::new(), trade }
}

/// The risks the figures show, most serious first; never empty.
pub fn key_risks(d: &MarketSnapshot) -> Vec<String> {
    let mut risks = Vec::new();
    if let Some(v) = d.volatility_1y.filter(|v| *v >= 0.45) {
        risks.push(format!("High volatility: {} a year, annualised.", pct(v)));
    }
    if let Some(dd) = d.max_drawdown_1y.filter(|x| *x >= 0.25) {
        risks.push(format!("Deep drawdown: the stock fell {} within the last year.", pct(dd)));
    }
    if let Some(v) = d.var95.filter(|v| *v >= 0.035) {
        risks.push(format!("Large daily losses: one day in twenty lost {} or more.", pct(v)));
    }
    if let Some(b) = d.beta.filter(|b| *b >= 1.3) {
        risks.push(format!("High market sensitivity: beta {b:.2} to the S&P 500."));
    }
    if let (Some(m), c) = (d.sma200, d.last_close)
        && c < m
    {
        risks.push(format!("Below the 200-day average ({}): the long-term trend is down.", signed_pct(c / m - 1.0)));
    }
    if let Some(r) = d.rsi14.filter(|r| *r > 70.0) {
        risks.push(format!("Overbought: RSI(14) at {r:.0} often precedes a pullback."));
    }
    if d.crossover.as_ref().is_some_and(|c| c.kind == "death") {
        risks.push("A recent death cross: the 50-day average fell below the 200-day.".into());
    }
    if d.beta.is_none() {
        risks.push("Market sensitivity unknown: no S&P 500 data overlaps this window.".into());
    }
    risks.push("Prices only: no fundamentals, earnings or news were considered.".into());
    risks
}
