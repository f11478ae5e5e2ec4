//! The desk's rules for a trade plan, and how a run settles on its final one.
//!
//! - A plan enters at the last close, stops two ATRs away on the losing side, aims twice as
//!   far on the winning side (two of reward for one of risk), gives itself about the time a
//!   price of this volatility takes to travel to the target, and takes a position inverse to
//!   volatility: 10 % of the portfolio at 20 % a year, between 2 % and 15 %.
//! - [`settle`] turns the trader's proposal into the final plan: the risk debate's last neutral
//!   proposal sets the size and the stop, then the portfolio manager's rating sets the
//!   direction — a Hold closes the plan to flat, a rating against the proposal's direction
//!   makes a new plan for the rating's direction by the rules above. A quick run, which has no
//!   trader, gets the rules' plan for its rating. Both models' final steps call it once per run.

use domain::plan::{Direction, Levels, PlanWhy, Trade, TradePlan, days, price, size};
use domain::{Argument, Rating, TeamRole};

use crate::format::pct;
use crate::snapshot::MarketSnapshot;

/// The stop of a plan, in ATRs from the entry.
pub const STOP_ATRS: f64 = 2.0;
/// The target's distance from the entry, in multiples of the stop's.
pub const REWARD_TO_RISK: f64 = 2.0;
/// Position at 20 % annual volatility; scaled inversely to the stock's volatility.
pub const BASE_POSITION: f64 = 0.10;
pub const BASE_VOLATILITY: f64 = 0.20;
pub const POSITION_MIN: f64 = 0.02;
pub const POSITION_MAX: f64 = 0.15;
/// Bounds of a plan's horizon, in trading days.
pub const HORIZON_MIN: u32 = 5;
pub const HORIZON_MAX: u32 = 60;
/// How long a flat plan waits before the stock is looked at again: a month of trading.
pub const FLAT_HORIZON: u32 = 20;
const TRADING_DAYS: f64 = 252.0;

/// The average true range, or 2 % of the close when there is too little history for it.
pub fn atr(d: &MarketSnapshot) -> f64 {
    d.atr14.filter(|a| *a > 0.0).unwrap_or(d.last_close * 0.02)
}

fn volatility(d: &MarketSnapshot) -> f64 {
    d.volatility_1y.filter(|v| *v > 0.0).unwrap_or(BASE_VOLATILITY)
}

/// The position a plan takes, as a fraction of the portfolio: inverse to volatility, within
/// bounds.
pub fn volatility_size(d: &MarketSnapshot) -> f64 {
    (BASE_POSITION * BASE_VOLATILITY / volatility(d)).clamp(POSITION_MIN, POSITION_MAX)
}

/// Trading days a random walk of this volatility takes, typically, to move `distance` from
/// `entry`: (move ÷ daily volatility)², within bounds.
pub fn horizon(d: &MarketSnapshot, entry: f64, distance: f64) -> u32 {
    let daily = volatility(d) / TRADING_DAYS.sqrt();
    let moves = distance / entry / daily;
    ((moves * moves).round() as u32).clamp(HORIZON_MIN, HORIZON_MAX)
}

/// The rules' plan in `direction`, for the reason given.
pub fn desk_plan(d: &MarketSnapshot, direction: Direction, why_direction: String) -> TradePlan {
    let s = direction.sign();
    if s == 0.0 {
        return flat(why_direction);
    }
    let entry = d.last_close;
    let atr = atr(d);
    let distance = STOP_ATRS * atr;
    let (losing, winning) = if s > 0.0 { ("below", "above") } else { ("above", "below") };
    let levels = Levels { entry, stop: entry - s * distance, target: entry + s * REWARD_TO_RISK * distance };
    let horizon_days = horizon(d, entry, REWARD_TO_RISK * distance);
    let position = volatility_size(d);
    let why = PlanWhy {
        direction: why_direction,
        entry: format!("the last close, on {}", d.as_of),
        stop: format!("{STOP_ATRS:.0} × ATR(14) of {} {losing} the entry, outside a day's usual range", price(atr)),
        target: format!("{REWARD_TO_RISK:.0} × the stop's distance {winning} the entry: two of reward for one of risk"),
        horizon: format!("about the time a price moving {} a year takes to travel to the target", pct(volatility(d))),
        size: format!(
            "{} of the portfolio at {} annual volatility, scaled inversely from {} at {}",
            pct(position),
            d.volatility_1y.map(pct).unwrap_or_else(|| "unknown".into()),
            pct(BASE_POSITION),
            pct(BASE_VOLATILITY)
        ),
    };
    // Stops at or below zero (an ATR larger than half the price) cannot be placed: no trade.
    TradePlan::open(direction, levels, horizon_days, position, why.clone(), String::new())
        .unwrap_or_else(|e| flat(format!("{} — but no plan fits: {e}", why.direction)))
}

fn flat(why_direction: String) -> TradePlan {
    TradePlan::flat(
        FLAT_HORIZON,
        PlanWhy {
            direction: why_direction,
            horizon: format!("look again in {}, a month of trading", days(FLAT_HORIZON)),
            size: "no position, so nothing at risk".into(),
            ..PlanWhy::default()
        },
        String::new(),
    )
}

/// The last round of the risk debate, by role.
fn last_round(risk_debate: &[Argument]) -> Vec<&Argument> {
    let last = risk_debate.iter().map(|a| a.round).max().unwrap_or(0);
    risk_debate.iter().filter(|a| a.round == last).collect()
}

/// The proposal with the risk debate's last neutral size and stop (a stop on the wrong side of
/// the entry is left as the trader had it).
fn adjusted(proposed: &TradePlan, risk_debate: &[Argument]) -> TradePlan {
    let Some(levels) = proposed.levels else { return proposed.clone() };
    let last = last_round(risk_debate);
    let by = |role| last.iter().find(|a| a.role == role).copied();
    let Some(neutral) = by(TeamRole::NeutralRisk) else { return proposed.clone() };
    let range = |f: fn(&Argument) -> Option<String>| match (
        by(TeamRole::AggressiveRisk).and_then(f),
        by(TeamRole::ConservativeRisk).and_then(f),
    ) {
        (Some(a), Some(c)) => format!(", between the aggressive analyst's {a} and the conservative's {c}"),
        _ => String::new(),
    };
    let mut why = proposed.why.clone();
    let mut position = proposed.size_pct / 100.0;
    let mut stop = levels.stop;
    let s = proposed.direction.sign();
    if let Some(n) = neutral.position_size.filter(|n| *n > 0.0) {
        position = n;
        why.size = format!(
            "the risk debate's last neutral proposal{}",
            range(|a| a.position_size.map(|p| size((p * 1000.0).round() / 10.0)))
        );
    }
    if let Some(n) = neutral.stop_loss.filter(|n| (n - levels.entry) * s < 0.0 && *n > 0.0) {
        stop = n;
        why.stop = format!("the risk debate's last neutral proposal{}", range(|a| a.stop_loss.map(price)));
    }
    let levels = Levels { stop, ..levels };
    TradePlan::open(proposed.direction, levels, proposed.horizon_days, position, why, proposed.reasoning.clone())
        .unwrap_or_else(|_| proposed.clone())
}

/// The final plan for `rating`: the proposal as the risk debate adjusted it, in the rating's
/// direction (see the module's doc). The returned trade's plan always has the rating's
/// direction.
pub fn settle(d: &MarketSnapshot, proposed: Option<&TradePlan>, risk_debate: &[Argument], rating: Rating) -> Trade {
    let want = Direction::of_rating(rating);
    if !rating.is_on_scale() {
        let why =
            "the final decision could not be read into the rating scale, so no position until a person reviews it";
        let plan = desk_plan(d, want, why.to_string());
        return Trade::new(rating, proposed.cloned(), plan).expect("a flat plan for a decision left for review");
    }
    let plan = match proposed {
        None => desk_plan(d, want, format!("the final assessment's {}", rating.as_str())),
        Some(p) => {
            let a = adjusted(p, risk_debate);
            if a.direction == want {
                a
            } else {
                desk_plan(
                    d,
                    want,
                    format!(
                        "the portfolio manager rated {}, against the trader's {} proposal",
                        rating.as_str(),
                        p.direction
                    ),
                )
            }
        }
    };
    Trade::new(rating, proposed.cloned(), plan).expect("the plan takes the rating's direction")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot with only what a plan reads (every other figure missing).
    fn snapshot(close: f64, atr14: Option<f64>, volatility_1y: Option<f64>) -> MarketSnapshot {
        serde_json::from_value(serde_json::json!({
            "symbol": "TEST", "source": "test", "asOf": "2023-09-21", "firstDate": "2020-01-02",
            "tradingDays": 900, "lastClose": close, "atr14": atr14, "volatility1y": volatility_1y,
            "betaObservations": 0, "chart": [], "headlines": [],
        }))
        .expect("a snapshot")
    }

    #[test]
    fn the_desk_plan_stops_two_atrs_away_and_aims_twice_as_far() {
        let d = snapshot(100.0, Some(2.5), Some(0.25));
        let long = desk_plan(&d, Direction::Long, "because".into());
        let l = long.levels.unwrap();
        assert_eq!((l.entry, l.stop, l.target), (100.0, 95.0, 110.0));
        assert_eq!(long.size_pct, 8.0, "10 % × 20 % / 25 %");
        assert_eq!(long.risk_pct, 0.4, "8 % × 5 / 100");
        // 10 % move at 25 %/√252 a day: (0.10 / 0.015749)² = 40.3 days.
        assert_eq!(long.horizon_days, 40);
        let short = desk_plan(&d, Direction::Short, "because".into()).levels.unwrap();
        assert_eq!((short.stop, short.target), (105.0, 90.0));
        assert!(desk_plan(&d, Direction::Flat, "because".into()).levels.is_none());
    }

    #[test]
    fn settling_takes_the_neutral_proposal_then_the_ratings_direction() {
        let d = snapshot(100.0, Some(2.5), Some(0.25));
        let proposal = desk_plan(&d, Direction::Long, "the verdict".into());
        let turn = |role, size: f64, stop: f64| Argument {
            role,
            round: 2,
            text: String::new(),
            position_size: Some(size),
            stop_loss: Some(stop),
            rests: false,
        };
        let debate = vec![
            turn(TeamRole::AggressiveRisk, 0.12, 92.5),
            turn(TeamRole::ConservativeRisk, 0.04, 96.25),
            turn(TeamRole::NeutralRisk, 0.0649, 95.5),
        ];
        let t = settle(&d, Some(&proposal), &debate, Rating::Overweight);
        assert_eq!(t.plan.size_pct, 6.5);
        assert_eq!(t.plan.levels.unwrap().stop, 95.5);
        assert_eq!(t.plan.risk_pct, 0.29, "6.5 × 4.5 / 100 = 0.2925");
        let what: Vec<&str> = t.changes.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(what, ["Stop", "Size", "Risk"]);
        assert!(t.changes[1].why.contains("between the aggressive analyst's 12.0% and the conservative's 4.0%"));

        let hold = settle(&d, Some(&proposal), &debate, Rating::Hold);
        assert!(hold.plan.is_flat() && hold.plan.size_pct == 0.0);
        assert_eq!(hold.changes[0].what, "Direction");
        let flipped = settle(&d, Some(&proposal), &debate, Rating::Sell);
        assert_eq!(flipped.plan.direction, Direction::Short);
        assert!(flipped.plan.why.direction.contains("against the trader's long proposal"));
    }
}
