//! The offline model's rules for the team after the analysts: deterministic functions of the
//! data and of what the team said before, each saying that it is rule-based.
//!
//! - The bull argues from the strongest supporting signals of the analysts that ran, the bear
//!   from the weakest; in later rounds each answers the other's last opening point and brings
//!   the next figures in its ranking.
//! - The research manager weighs the two sides' evidence into Buy, Hold or Sell.
//! - The trader turns that into a plan: entry at the last close, a stop two ATRs away, a
//!   position sized so that a 20 %-volatility stock gets 10 % of the portfolio (inverse to
//!   volatility, between 2 % and 15 %).
//! - The risk analysts argue size and stop from drawdown, VaR and trend; in later rounds each
//!   moves part of the way towards the others' last proposals.
//! - The portfolio manager combines the analysts' weighted score, the verdict and the risk
//!   debate's final size into the five-level rating.

use domain::{Action, AnalystKind, AnalystReport, Argument, Rating, TeamRole, TradePlan, Verdict};

use crate::analysts::{Signal, signals};
use crate::assessment::{Assessment, Brief, Decision};
use crate::format::{level, pct, signed_pct};
use crate::rules::{RULE_BASED_NOTE, analyst_weight, assess};
use crate::snapshot::MarketSnapshot;

/// Points a side makes per round.
const POINTS_PER_ROUND: usize = 3;
/// The stop of a plan, in ATRs from the entry.
const STOP_ATRS: f64 = 2.0;
/// Position at 20 % annual volatility; scaled inversely to the stock's volatility.
const BASE_POSITION: f64 = 0.10;
const BASE_VOLATILITY: f64 = 0.20;
const POSITION_MIN: f64 = 0.02;
const POSITION_MAX: f64 = 0.15;

/// One analyst's signal, as evidence in the debate.
#[derive(Debug, Clone)]
struct Evidence {
    analyst: AnalystKind,
    signal: Signal,
}

impl Evidence {
    fn strength(&self) -> f64 {
        self.signal.score * self.signal.weight
    }

    fn line(&self) -> String {
        format!("{} (from the {}).", self.signal.reason.trim_end_matches('.'), self.analyst.step_name())
    }
}

/// Every signal of the analysts that ran; the bull's side (strongest first) and the bear's
/// (weakest first). Ties keep the analysts' order, so the ranking is stable.
fn sides(data: &MarketSnapshot, reports: &[AnalystReport]) -> (Vec<Evidence>, Vec<Evidence>) {
    let all: Vec<Evidence> = reports
        .iter()
        .flat_map(|r| signals(r.analyst, data).into_iter().map(|signal| Evidence { analyst: r.analyst, signal }))
        .collect();
    let mut bull: Vec<Evidence> = all.iter().filter(|e| e.strength() > 0.0).cloned().collect();
    let mut bear: Vec<Evidence> = all.into_iter().filter(|e| e.strength() < 0.0).collect();
    bull.sort_by(|a, b| b.strength().total_cmp(&a.strength()));
    bear.sort_by(|a, b| a.strength().total_cmp(&b.strength()));
    (bull, bear)
}

/// The points of a round: the next ones in the ranking, starting over when they run out.
fn points(side: &[Evidence], round: u32) -> Vec<&Evidence> {
    if side.is_empty() {
        return Vec::new();
    }
    let start = (round.saturating_sub(1) as usize * POINTS_PER_ROUND) % side.len();
    side.iter().cycle().skip(start).take(POINTS_PER_ROUND.min(side.len())).collect()
}

fn sum_strength(side: &[Evidence]) -> f64 {
    side.iter().map(|e| e.strength().abs()).sum()
}

/// The opening point of the other side's argument in the previous round.
fn last_point_of(debate: &[Argument], role: TeamRole, round: u32) -> Option<String> {
    let a = debate.iter().find(|a| a.role == role && a.round + 1 == round)?;
    a.text.lines().find_map(|l| l.strip_prefix("- ")).map(str::to_string)
}

fn round_label(brief: &Brief<'_>) -> String {
    format!("round {} of {}", brief.round, brief.rounds)
}

/// A researcher's argument.
pub fn research(role: TeamRole, brief: &Brief<'_>) -> Argument {
    let (bull, bear) = sides(brief.data, brief.reports);
    let bullish = role == TeamRole::BullResearcher;
    let (mine, theirs, other) =
        if bullish { (&bull, &bear, TeamRole::BearResearcher) } else { (&bear, &bull, TeamRole::BullResearcher) };
    let mut text = format!(
        "**{}, {}**: {}\n\n",
        role.step_name(),
        round_label(brief),
        if bullish { "the case for owning the stock." } else { "the case against it." }
    );
    if let Some(point) = last_point_of(brief.debate, other, brief.round) {
        let (mine_total, theirs_total) = (sum_strength(mine), sum_strength(theirs));
        let them = if bullish { "bear" } else { "bull" };
        let answer = if mine_total >= theirs_total {
            format!("but the evidence on my side weighs more, {mine_total:.2} against {theirs_total:.2}.")
        } else {
            format!(
                "their evidence weighs more ({theirs_total:.2} against {mine_total:.2}), but these figures are what \
                 it leaves out."
            )
        };
        text.push_str(&format!("The {them} argued: \"{}\" — {answer}\n\n", point.trim_end_matches('.')));
    }
    let chosen = points(mine, brief.round);
    if brief.round > 1 && mine.len() <= POINTS_PER_ROUND && !chosen.is_empty() {
        text.push_str("My points stand:\n\n");
    }
    if chosen.is_empty() {
        text.push_str(&format!(
            "No figure supports the {} case: the best I can say is that the other side's evidence may already be in the price.\n",
            if bullish { "bull" } else { "bear" }
        ));
    }
    for e in chosen {
        text.push_str(&format!("- {}\n", e.line()));
    }
    text.push('\n');
    text.push_str(RULE_BASED_NOTE);
    Argument { role, round: brief.round, text, position_size: None, stop_loss: None }
}

/// The research manager's verdict: the balance of the two sides' evidence.
pub fn judge(brief: &Brief<'_>) -> Verdict {
    let (bull, bear) = sides(brief.data, brief.reports);
    let (b, s) = (sum_strength(&bull), sum_strength(&bear));
    let net = if b + s > 0.0 { (b - s) / (b + s) } else { 0.0 };
    let action = if net > 0.15 {
        Action::Buy
    } else if net < -0.15 {
        Action::Sell
    } else {
        Action::Hold
    };
    let confidence = (0.4 + 0.5 * net.abs()).clamp(0.3, 0.9);
    let strongest = |side: &[Evidence]| side.first().map(Evidence::line).unwrap_or_else(|| "nothing".into());
    let reasoning = format!(
        "**Research Manager: {}** (balance {net:+.2}, confidence {})\n\n\
         After {} of debate, the bull's evidence weighs {b:.2} and the bear's {s:.2}.\n\n\
         - Strongest for: {}\n- Strongest against: {}\n\n{}",
        action.as_str(),
        pct(confidence),
        rounds_text(brief.rounds),
        strongest(&bull),
        strongest(&bear),
        RULE_BASED_NOTE
    );
    Verdict { action, confidence, reasoning }
}

fn rounds_text(n: u32) -> String {
    if n == 1 { "one round".into() } else { format!("{n} rounds") }
}

/// The average true range, or 2 % of the close when there is too little history for it.
fn atr(d: &MarketSnapshot) -> f64 {
    d.atr14.filter(|a| *a > 0.0).unwrap_or(d.last_close * 0.02)
}

fn stop_at(action: Action, entry: f64, atrs: f64, atr: f64) -> f64 {
    match action {
        Action::Sell => entry + atrs * atr,
        Action::Buy | Action::Hold => (entry - atrs * atr).max(0.0),
    }
}

/// The position a plan takes: inverse to volatility, within bounds.
pub fn volatility_size(d: &MarketSnapshot) -> f64 {
    let vol = d.volatility_1y.filter(|v| *v > 0.0).unwrap_or(BASE_VOLATILITY);
    (BASE_POSITION * BASE_VOLATILITY / vol).clamp(POSITION_MIN, POSITION_MAX)
}

/// The trader's plan from the verdict.
pub fn plan(brief: &Brief<'_>, verdict: &Verdict) -> TradePlan {
    let d = brief.data;
    let entry = d.last_close;
    let atr = atr(d);
    let action = verdict.action;
    let stop_loss = stop_at(action, entry, STOP_ATRS, atr);
    let size = volatility_size(d);
    let position_size = if action == Action::Hold { size / 2.0 } else { size };
    let what = match action {
        Action::Buy => format!("Buy at {}", level(entry)),
        Action::Hold => {
            format!("Hold: keep at most {} of the portfolio, add nothing at {}", pct(position_size), level(entry))
        }
        Action::Sell => format!("Sell (or go short) at {}", level(entry)),
    };
    let reasoning = format!(
        "**Trader: {}**\n\n{what}.\n\n\
         - Stop-loss at {}: {STOP_ATRS:.0} × ATR(14) of {} from the entry.\n\
         - Position {} of the portfolio: {} at {} annual volatility, scaled from {} at {}.\n\
         - Follows the research manager's {} at {} confidence.\n\n{}",
        action.as_str(),
        level(stop_loss),
        level(atr),
        pct(position_size),
        if action == Action::Hold { "half of what a new position would get" } else { "sized inversely to volatility" },
        d.volatility_1y.map(pct).unwrap_or_else(|| "unknown".into()),
        pct(BASE_POSITION),
        pct(BASE_VOLATILITY),
        verdict.action.as_str(),
        pct(verdict.confidence),
        RULE_BASED_NOTE
    );
    TradePlan { action, entry, stop_loss, position_size, reasoning }
}

/// What a risk analyst would propose on its own: (size multiple, stop in ATRs, reasons).
fn risk_stance(role: TeamRole, d: &MarketSnapshot) -> (f64, f64, Vec<String>) {
    let uptrend = d.sma200.map(|m| d.last_close > m);
    let trend = match (uptrend, d.sma200) {
        (Some(true), Some(m)) => {
            format!("the price is {} above its 200-day average", signed_pct(d.last_close / m - 1.0))
        }
        (Some(false), Some(m)) => {
            format!("the price is {} below its 200-day average", signed_pct(d.last_close / m - 1.0))
        }
        _ => "the long-term trend is unknown".into(),
    };
    let dd = d.max_drawdown_1y.unwrap_or(0.0);
    let var = d.var95.unwrap_or(0.0);
    let drawdown = format!("the worst fall of the last year was {}", pct(dd));
    let value_at_risk = format!("one day in twenty lost {} or more", pct(var));
    match role {
        TeamRole::AggressiveRisk => {
            let mult = if uptrend == Some(true) { 1.5 } else { 1.2 };
            (
                mult,
                3.0,
                vec![
                    format!("Take more: {trend}, and a trend is worth riding."),
                    format!("Give the trade room: a tight stop is hit by noise when {value_at_risk}."),
                ],
            )
        }
        TeamRole::ConservativeRisk => {
            let heavy = dd >= 0.25 || var >= 0.03;
            let mult = if heavy { 0.5 } else { 0.75 };
            (
                mult,
                1.5,
                vec![
                    format!("Take less: {drawdown}; that can happen again."),
                    format!("Keep the stop close: {value_at_risk}{}.", if heavy { ", which is a lot" } else { "" }),
                ],
            )
        }
        _ => {
            let mult = if uptrend == Some(false) { 0.9 } else { 1.0 };
            (
                mult,
                2.0,
                vec![
                    format!("Balance both: {trend}, while {drawdown}."),
                    format!("A stop two ATRs away sits outside daily noise ({value_at_risk})."),
                ],
            )
        }
    }
}

/// A risk analyst's argument over the trader's plan. In later rounds each moves a share of
/// the way towards the mean of the last round's proposals.
pub fn risk(role: TeamRole, brief: &Brief<'_>, plan: &TradePlan) -> Argument {
    let d = brief.data;
    let atr = atr(d);
    let (mult, atrs, reasons) = risk_stance(role, d);
    let mut size = (plan.position_size * mult).clamp(0.0, POSITION_MAX * 1.5);
    let mut stop = stop_at(plan.action, plan.entry, atrs, atr);
    let previous: Vec<&Argument> = brief.risk_debate.iter().filter(|a| a.round + 1 == brief.round).collect();
    let mut text = format!("**{}, {}**\n\n", role.step_name(), round_label(brief));
    if !previous.is_empty() {
        let n = previous.len() as f64;
        let mean_size = previous.iter().filter_map(|a| a.position_size).sum::<f64>() / n;
        let mean_stop = previous.iter().filter_map(|a| a.stop_loss).sum::<f64>() / n;
        let share = f64::from(brief.round - 1) / f64::from(brief.rounds.max(brief.round));
        size += (mean_size - size) * share;
        stop += (mean_stop - stop) * share;
        text.push_str(&format!(
            "Last round the desk proposed {} on average with a stop near {}; I move {} of the way towards that.\n\n",
            pct(mean_size),
            level(mean_stop),
            pct(share)
        ));
    }
    text.push_str(&format!(
        "Proposal: {} of the portfolio (the trader's {}), stop-loss at {}.\n\n",
        pct(size),
        pct(plan.position_size),
        level(stop)
    ));
    for r in reasons {
        text.push_str(&format!("- {r}\n"));
    }
    text.push('\n');
    text.push_str(RULE_BASED_NOTE);
    Argument { role, round: brief.round, text, position_size: Some(size), stop_loss: Some(stop) }
}

/// The portfolio manager's decision: the analysts' weighted score, the verdict, and the risk
/// debate's last neutral proposal, on the five-level scale.
pub fn decide(brief: &Brief<'_>, verdict: &Verdict, plan: &TradePlan) -> Decision {
    let d = brief.data;
    let base = assess(d, brief.reports);
    let analysts_score = analyst_score(brief.reports);
    let verdict_score = verdict.action.score() * verdict.confidence;
    let last_round = brief.risk_debate.iter().map(|a| a.round).max().unwrap_or(0);
    let last: Vec<&Argument> = brief.risk_debate.iter().filter(|a| a.round == last_round).collect();
    let neutral = last.iter().find(|a| a.role == TeamRole::NeutralRisk).copied();
    let final_size = neutral.and_then(|a| a.position_size).unwrap_or(plan.position_size);
    let final_stop = neutral.and_then(|a| a.stop_loss).unwrap_or(plan.stop_loss);
    // The risk team's appetite: more than the trader asked for leans the call up, less down.
    let appetite =
        if plan.position_size > 0.0 { ((final_size / plan.position_size) - 1.0).clamp(-1.0, 1.0) } else { 0.0 };
    let score =
        (0.45 * analysts_score + 0.45 * verdict_score + 0.10 * appetite * verdict.action.score().abs().max(0.5))
            .clamp(-1.0, 1.0);
    let rating = Rating::from_score(score);
    let confidence = ((base.confidence + verdict.confidence) / 2.0).clamp(0.2, 0.9);
    let summary = format!(
        "{} as of {}: {} (score {score:+.2}). The research manager said {}, the trader plans {} {} with a stop at {}; \
         the risk team settled on {} of the portfolio. Rule-based decision from price data alone.",
        d.symbol,
        d.as_of,
        rating.as_str(),
        verdict.action.as_str(),
        plan.action.as_str().to_lowercase(),
        pct(final_size),
        level(final_stop),
        pct(final_size)
    );
    let reasoning = format!(
        "**Portfolio Manager: {}** (score {score:+.2}, confidence {})\n\n\
         - Analysts: weighted score {analysts_score:+.2} (45 %).\n\
         - Research manager: {} at {} confidence (45 %).\n\
         - Risk debate: the neutral analyst's last proposal is {} against the trader's {} (10 %).\n\
         - Position {} with a stop-loss at {}.\n\n{}",
        rating.as_str(),
        pct(confidence),
        verdict.action.as_str(),
        pct(verdict.confidence),
        pct(final_size),
        pct(plan.position_size),
        pct(final_size),
        level(final_stop),
        RULE_BASED_NOTE
    );
    Decision { assessment: Assessment { rating, confidence, summary, key_risks: base.key_risks }, reasoning }
}

/// The analysts' stances weighted by role and confidence, as in the quick assessment.
fn analyst_score(reports: &[AnalystReport]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for r in reports {
        let w = analyst_weight(r.analyst);
        num += w * r.confidence * r.stance.score();
        den += w;
    }
    if den > 0.0 { num / den } else { 0.0 }
}
