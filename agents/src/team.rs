//! The offline model's rules for the team after the analysts: deterministic functions of the
//! data and of what the team said before. (That they are rule-based is said once, by whoever
//! shows them: [`domain::RULE_BASED_NOTE`].)
//!
//! - The bull argues from the strongest supporting signals of the analysts that ran, the bear
//!   from the weakest (a figure two analysts read alike counts once). In later rounds each
//!   answers the other's last opening point with the next figure in its ranking, never one it
//!   has used; a side with no new figure says so and rests, which ends the debate early.
//! - The research manager weighs the two sides' evidence into Buy, Hold or Sell.
//! - The trader turns that into a plan: entry at the last close, a stop two ATRs away, a
//!   position sized so that a 20 %-volatility stock gets 10 % of the portfolio (inverse to
//!   volatility, between 2 % and 15 %).
//! - The risk analysts argue size and stop from drawdown, VaR and trend; in later rounds each
//!   moves part of the way towards the others' last proposals, leading with a reason it has
//!   not led with before. Once each has led with all its reasons (or the proposals agree, or
//!   the plan has no position to size) they say so and rest, which ends the debate early.
//! - The portfolio manager combines the analysts' weighted score, the verdict and the risk
//!   debate's final size into the five-level rating.

use domain::plan::{self, Direction};
use domain::{Action, AnalystKind, AnalystReport, Argument, Rating, TeamRole, TradePlan, Verdict};

use crate::analysts::{Signal, signals};
use crate::assessment::{Assessment, Brief, Decision};
use crate::format::{level, pct, signed_pct};
use crate::plan::{POSITION_MAX, atr, desk_plan, settle};
use crate::rules::{analyst_weight, assess};
use crate::snapshot::MarketSnapshot;

/// Points a side makes per round.
const POINTS_PER_ROUND: usize = 3;

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
/// (weakest first). Ties keep the analysts' order, so the ranking is stable. A reading two
/// analysts share (RSI) is one piece of evidence, the first analyst's.
fn sides(data: &MarketSnapshot, reports: &[AnalystReport]) -> (Vec<Evidence>, Vec<Evidence>) {
    let mut all: Vec<Evidence> = Vec::new();
    for r in reports {
        for signal in signals(r.analyst, data) {
            if !all.iter().any(|e| e.signal.reason == signal.reason) {
                all.push(Evidence { analyst: r.analyst, signal });
            }
        }
    }
    let mut bull: Vec<Evidence> = all.iter().filter(|e| e.strength() > 0.0).cloned().collect();
    let mut bear: Vec<Evidence> = all.into_iter().filter(|e| e.strength() < 0.0).collect();
    bull.sort_by(|a, b| b.strength().total_cmp(&a.strength()));
    bear.sort_by(|a, b| a.strength().total_cmp(&b.strength()));
    (bull, bear)
}

/// The points of a round: the next ones in the ranking, none used before; empty once the side
/// has made them all.
fn points(side: &[Evidence], round: u32) -> &[Evidence] {
    let start = (round.saturating_sub(1) as usize * POINTS_PER_ROUND).min(side.len());
    &side[start..(start + POINTS_PER_ROUND).min(side.len())]
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
    let chosen = points(mine, brief.round);
    let them = if bullish { "bear" } else { "bull" };
    if brief.round == 1 {
        let (mine_total, theirs_total) = (sum_strength(mine), sum_strength(theirs));
        text.push_str(&format!(
            "My side's evidence weighs {mine_total:.2}, the {them}'s {theirs_total:.2}. {}\n\n",
            if chosen.is_empty() { "I have none to show." } else { "My strongest figures:" }
        ));
    } else if let Some(point) = last_point_of(brief.debate, other, brief.round) {
        // The answer is this round's new figures: each round answers with other evidence.
        let answer = if chosen.is_empty() { "I have no new figure to set against that." } else { "Against that:" };
        text.push_str(&format!("The {them} argued: \"{}\". {answer}\n\n", point.trim_end_matches('.')));
    }
    let rests = chosen.is_empty();
    if rests {
        let made = mine.len();
        text.push_str(&match made {
            0 => format!("No figure supports the {} case; I rest.", if bullish { "bull" } else { "bear" }),
            1 => "My one figure stands as I made it; I have nothing new and rest my case.".into(),
            n => format!("My {n} figures stand as I made them in earlier rounds; I have nothing new and rest my case."),
        });
    } else {
        for e in chosen {
            text.push_str(&format!("- {}\n", e.line()));
        }
    }
    Argument {
        role,
        round: brief.round,
        text: text.trim_end().to_string(),
        position_size: None,
        stop_loss: None,
        rests,
    }
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
         - Strongest for: {}\n- Strongest against: {}",
        action.as_str(),
        pct(confidence),
        rounds_text(brief.rounds),
        strongest(&bull),
        strongest(&bear),
    );
    Verdict { action, confidence, reasoning }
}

fn rounds_text(n: u32) -> String {
    if n == 1 { "one round".into() } else { format!("{n} rounds") }
}

/// The trader's plan from the verdict: the desk's rules in the verdict's direction.
pub fn plan(brief: &Brief<'_>, verdict: &Verdict) -> TradePlan {
    let direction = Direction::of_action(verdict.action);
    let mut plan = desk_plan(
        brief.data,
        direction,
        format!("the research manager's {} at {} confidence", verdict.action.as_str(), pct(verdict.confidence)),
    );
    plan.reasoning = format!("**Trader: {}**\n\nPlan: {}.\n\n{}", direction.label(), plan.line(), reasons(&plan));
    plan
}

/// A plan's reason for each of its numbers, one a line.
pub fn reasons(p: &TradePlan) -> String {
    let w = &p.why;
    let mut lines = vec![format!("- {}: {}.", p.direction.label(), w.direction)];
    if let Some(l) = p.levels {
        lines.push(format!("- Entry {}: {}.", level(l.entry), w.entry));
        lines.push(format!("- Stop {}: {}.", level(l.stop), w.stop));
        lines.push(format!("- Target {}: {}.", level(l.target), w.target));
    }
    lines.push(format!("- Horizon {}: {}.", plan::days(p.horizon_days), w.horizon));
    lines.push(format!("- Size {}: {}.", plan::size(p.size_pct), w.size));
    if p.levels.is_some() {
        lines.push(format!("- Risk {} of the portfolio: size × distance to the stop ÷ entry.", plan::risk(p.risk_pct)));
    }
    lines.join("\n")
}

/// The trade's way and the long-term trend's: whether the trend helps the position.
struct Trend {
    /// "the price is +12.0% above its 200-day average".
    words: String,
    /// Some(true) when the trend goes the trade's way, Some(false) against it.
    with_trade: Option<bool>,
}

fn trend(d: &MarketSnapshot, direction: Direction) -> Trend {
    match d.sma200 {
        Some(m) if direction != Direction::Flat => {
            let up = d.last_close > m;
            let side = if up { "above" } else { "below" };
            Trend {
                words: format!("the price is {} {side} its 200-day average", signed_pct(d.last_close / m - 1.0)),
                with_trade: Some(up == (direction == Direction::Long)),
            }
        }
        Some(m) => Trend {
            words: format!("the price is {} from its 200-day average", signed_pct(d.last_close / m - 1.0)),
            with_trade: None,
        },
        None => Trend { words: "the long-term trend is unknown".into(), with_trade: None },
    }
}

/// What hurts the position: a fall for a long, a rise for a short.
fn adverse_move(d: &MarketSnapshot, direction: Direction) -> String {
    match direction {
        Direction::Short => match d.high_52w {
            Some(h) if h > d.last_close => format!(
                "a short loses on a rise, and a rebound to the 52-week high of {} is {} away",
                level(h),
                signed_pct(h / d.last_close - 1.0)
            ),
            _ => "a short loses on a rise, and the price is at its 52-week high: nothing above has held it".into(),
        },
        _ => format!(
            "a long loses on a fall, and the worst fall of the last year was {}",
            pct(d.max_drawdown_1y.unwrap_or(0.0))
        ),
    }
}

/// What a risk analyst would propose on its own: (size multiple, stop in ATRs, reasons), for
/// `plan`. Each round leads with the next reason, so rounds answer with different evidence.
fn risk_stance(role: TeamRole, d: &MarketSnapshot, plan: &TradePlan) -> (f64, f64, Vec<String>) {
    let direction = plan.direction;
    let at_risk = plan::risk(plan.risk_pct);
    let t = trend(d, direction);
    let var = d.var95.unwrap_or(0.0);
    let value_at_risk = format!("one day in twenty moved {} or more", pct(var));
    let way = direction.as_str();
    match role {
        TeamRole::AggressiveRisk => {
            let with = t.with_trade == Some(true);
            let first = if with {
                format!(
                    "Take more: {}, the way this {way} bets; a trend that helps the trade is worth riding.",
                    t.words
                )
            } else {
                format!(
                    "Take somewhat more: {}, against this {way}, but the research verdict weighed that already.",
                    t.words
                )
            };
            (
                if with { 1.5 } else { 1.2 },
                3.0,
                vec![
                    first,
                    format!("Give the trade room: a tight stop is hit by noise when {value_at_risk}."),
                    format!(
                        "At the trader's size a stop-out costs {at_risk} of the portfolio: there is room for more."
                    ),
                ],
            )
        }
        TeamRole::ConservativeRisk => {
            let heavy = d.max_drawdown_1y.unwrap_or(0.0) >= 0.25 || var >= 0.03;
            (
                if heavy { 0.5 } else { 0.75 },
                1.5,
                vec![
                    format!("Take less: {}; that can happen again.", adverse_move(d, direction)),
                    format!("Keep the stop close: {value_at_risk}{}.", if heavy { ", which is a lot" } else { "" }),
                    format!("A stop-out at the trader's size costs {at_risk} of the portfolio; less size, less loss."),
                ],
            )
        }
        _ => {
            let against = t.with_trade == Some(false);
            (
                if against { 0.9 } else { 1.0 },
                2.0,
                vec![
                    format!(
                        "Balance both: {}, {} this {way}, while {}.",
                        t.words,
                        if against { "against" } else { "with" },
                        adverse_move(d, direction)
                    ),
                    format!("A stop two ATRs away sits outside daily noise ({value_at_risk})."),
                    format!("The trader's plan risks {at_risk} of the portfolio: near the middle of the desk's views."),
                ],
            )
        }
    }
}

/// A risk analyst's view of a flat plan: whether standing aside is right.
fn flat_view(role: TeamRole, d: &MarketSnapshot) -> String {
    let t = trend(d, Direction::Flat);
    match role {
        TeamRole::AggressiveRisk => format!("Standing aside leaves a move unused: {}.", t.words),
        TeamRole::ConservativeRisk => {
            format!("Standing aside risks nothing while {}.", adverse_move(d, Direction::Long))
        }
        _ => "Flat until the signals agree: the verdict was Hold, and no size is right for no view.".into(),
    }
}

/// A risk analyst's argument over the trader's plan. In later rounds each moves a share of
/// the way towards the mean of the last round's proposals.
pub fn risk(role: TeamRole, brief: &Brief<'_>, plan: &TradePlan) -> Argument {
    let d = brief.data;
    let mut text = format!("**{}, {}**\n\n", role.step_name(), round_label(brief));
    let Some(levels) = plan.levels else {
        // A plan with no position has no size or stop to argue over: each view is said once,
        // and the debate ends after its first round.
        text.push_str(&format!(
            "The trader proposes no position.\n\n- {}\n\nWith no position to size there is nothing new to argue; I rest.",
            flat_view(role, d)
        ));
        return Argument { role, round: brief.round, text, position_size: None, stop_loss: None, rests: true };
    };
    let atr = atr(d);
    let (mult, atrs, mut reasons) = risk_stance(role, d, plan);
    let previous: Vec<&Argument> = brief.risk_debate.iter().filter(|a| a.round + 1 == brief.round).collect();
    if let Some(why) = out_of_arguments(&previous, reasons.len(), brief.round, levels.entry) {
        // Nothing new to say: the last proposal stands, and the debate ends with this round.
        let mine = previous.iter().find(|a| a.role == role);
        let (size, stop) = (mine.and_then(|a| a.position_size), mine.and_then(|a| a.stop_loss));
        text.push_str(&format!("{why} I have nothing new to add and rest: my last proposal stands"));
        if let (Some(size), Some(stop)) = (size, stop) {
            text.push_str(&format!(", {} of the portfolio with a stop-loss at {}", pct(size), level(stop)));
        }
        text.push('.');
        return Argument { role, round: brief.round, text, position_size: size, stop_loss: stop, rests: true };
    }
    let lead = (brief.round as usize - 1) % reasons.len();
    reasons.rotate_left(lead);
    let trader_size = plan.size_pct / 100.0;
    let mut size = (trader_size * mult).clamp(0.0, POSITION_MAX * 1.5);
    let mut stop = levels.entry - plan.direction.sign() * atrs * atr;
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
        // Answer the other side's last lead with this round's.
        let other = match role {
            TeamRole::AggressiveRisk => TeamRole::ConservativeRisk,
            TeamRole::ConservativeRisk => TeamRole::AggressiveRisk,
            _ if brief.round.is_multiple_of(2) => TeamRole::AggressiveRisk,
            _ => TeamRole::ConservativeRisk,
        };
        if let Some(point) = last_point_of(brief.risk_debate, other, brief.round) {
            text.push_str(&format!(
                "The {} analyst said: \"{}\". My answer: {}\n\n",
                other.title().trim_end_matches(" Risk Analyst").to_lowercase(),
                point.trim_end_matches('.'),
                reasons[0]
            ));
        }
    }
    text.push_str(&format!(
        "Proposal for the {} at {}: {} of the portfolio (the trader's {}), stop-loss at {}.\n\n",
        plan.direction,
        level(levels.entry),
        pct(size),
        plan::size(plan.size_pct),
        level(stop)
    ));
    for r in reasons {
        text.push_str(&format!("- {r}\n"));
    }
    Argument {
        role,
        round: brief.round,
        text: text.trim_end().to_string(),
        position_size: Some(size),
        stop_loss: Some(stop),
        rests: false,
    }
}

/// Why the risk desk has run out of arguments in this round, if it has: every analyst has
/// led with each of its `reasons` already, or the last round's proposals agree to the
/// precision they are shown at (size to a tenth of a percent, stop within 0.1 % of the entry).
fn out_of_arguments(previous: &[&Argument], reasons: usize, round: u32, entry: f64) -> Option<String> {
    if round as usize > reasons {
        return Some(format!("Each of us has made all {reasons} of our points in the rounds before."));
    }
    let spread = |v: Vec<f64>| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        hi - lo
    };
    let sizes: Vec<f64> = previous.iter().filter_map(|a| a.position_size).collect();
    let stops: Vec<f64> = previous.iter().filter_map(|a| a.stop_loss).collect();
    let agreed = previous.len() > 1
        && sizes.len() == previous.len()
        && stops.len() == previous.len()
        && spread(sizes) < 0.0005
        && spread(stops) < 0.001 * entry;
    agreed.then(|| "Last round the desk's proposals agreed.".to_string())
}

/// The portfolio manager's decision: the analysts' weighted score, the verdict, and the risk
/// debate's last neutral proposal, on the five-level scale; then the trade settled for it.
pub fn decide(brief: &Brief<'_>, verdict: &Verdict, plan: &TradePlan) -> Decision {
    let d = brief.data;
    let base = assess(d, brief.reports);
    let analysts_score = analyst_score(brief.reports);
    let verdict_score = verdict.action.score() * verdict.confidence;
    let last_round = brief.risk_debate.iter().map(|a| a.round).max().unwrap_or(0);
    let last: Vec<&Argument> = brief.risk_debate.iter().filter(|a| a.round == last_round).collect();
    let neutral = last.iter().find(|a| a.role == TeamRole::NeutralRisk).copied();
    let trader_size = plan.size_pct / 100.0;
    let neutral_size = neutral.and_then(|a| a.position_size).unwrap_or(trader_size);
    // The risk team's appetite: more than the trader asked for leans the call up, less down.
    let appetite = if trader_size > 0.0 { ((neutral_size / trader_size) - 1.0).clamp(-1.0, 1.0) } else { 0.0 };
    let score =
        (0.45 * analysts_score + 0.45 * verdict_score + 0.10 * appetite * verdict.action.score().abs().max(0.5))
            .clamp(-1.0, 1.0);
    let rating = Rating::from_score(score);
    let confidence = ((base.confidence + verdict.confidence) / 2.0).clamp(0.2, 0.9);
    let trade = settle(d, Some(plan), brief.risk_debate, rating);
    let final_plan = &trade.plan;
    let changed = if trade.changes.is_empty() {
        "the trader's plan stands as proposed".to_string()
    } else {
        format!("the trader proposed {}", plan.line())
    };
    let summary = format!(
        "{} as of {}: {} (score {score:+.2}). Plan: {}. The research manager said {}; {changed}. \
         Rule-based decision from price data alone.",
        d.symbol,
        d.as_of,
        rating.as_str(),
        final_plan.line(),
        verdict.action.as_str(),
    );
    let mut reasoning = format!(
        "**Portfolio Manager: {}** (score {score:+.2}, confidence {})\n\n\
         - Analysts: weighted score {analysts_score:+.2} (45 %).\n\
         - Research manager: {} at {} confidence (45 %).\n\
         - Risk debate: the neutral analyst's last proposal is {} against the trader's {} (10 %).\n\n\
         Final plan: {}.\n\n{}\n\n",
        rating.as_str(),
        pct(confidence),
        verdict.action.as_str(),
        pct(verdict.confidence),
        pct(neutral_size),
        plan::size(plan.size_pct),
        final_plan.line(),
        reasons(final_plan),
    );
    if !trade.changes.is_empty() {
        reasoning.push_str(&format!("Changed from the trader's proposal ({}):\n\n", plan.line()));
        for c in &trade.changes {
            let from = if c.from.is_empty() { "none" } else { c.from.as_str() };
            let to = if c.to.is_empty() { "none" } else { c.to.as_str() };
            reasoning.push_str(&format!("- {} {from} → {to}: {}.\n", c.what, c.why));
        }
    }
    let reasoning = reasoning.trim_end().to_string();
    Decision { assessment: Assessment { rating, confidence, summary, key_risks: base.key_risks }, reasoning, trade }
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
