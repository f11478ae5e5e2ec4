//! The trade a run ends on: one typed plan, computed once and read by every place that shows
//! it (the summary, the portfolio manager's reasoning, the result page, the chart, the
//! Markdown export, the terminal).
//!
//! A plan has a direction (long, short or flat) and, unless flat, an entry, a stop and a
//! target; a horizon in trading days; a size in percent of the portfolio to one decimal; and
//! the risk it takes, `size × |entry − stop| / entry`, in percent of the portfolio. Every
//! number carries the reason it is what it is. The numbers are stored as they are shown
//! (prices to the cent, size to a tenth of a percent, risk to a hundredth), so no reader can
//! round them differently; [`price`], [`size`] and [`risk`] are the one way they are written.
//!
//! In a `standard` or `deep` run the trader proposes a plan, the risk debate adjusts it, and
//! the portfolio manager's rating fixes its direction: [`Trade`] keeps the proposal, the
//! final plan and the changes between them, named. The final plan's direction is the
//! rating's ([`Direction::of_rating`]), so the two cannot disagree.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::rating::Rating;
use crate::team::Action;

/// Which way a plan bets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Gains when the price rises.
    Long,
    /// Gains when the price falls.
    Short,
    /// No position.
    Flat,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Long => "long",
            Self::Short => "short",
            Self::Flat => "flat",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Long => "Long",
            Self::Short => "Short",
            Self::Flat => "Flat",
        }
    }

    /// Buy and Overweight are long, Hold is flat, Underweight and Sell are short; a decision
    /// left for review takes no position.
    pub fn of_rating(rating: Rating) -> Self {
        match rating {
            Rating::Buy | Rating::Overweight => Self::Long,
            Rating::Hold | Rating::Review => Self::Flat,
            Rating::Underweight | Rating::Sell => Self::Short,
        }
    }

    pub fn of_action(action: Action) -> Self {
        match action {
            Action::Buy => Self::Long,
            Action::Hold => Self::Flat,
            Action::Sell => Self::Short,
        }
    }

    /// +1 long, −1 short, 0 flat: what a rise of the price does to the position.
    pub fn sign(self) -> f64 {
        match self {
            Self::Long => 1.0,
            Self::Short => -1.0,
            Self::Flat => 0.0,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The prices of an open plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Levels {
    pub entry: f64,
    /// Where the position is closed at a loss.
    pub stop: f64,
    /// Where the position is closed at a profit.
    pub target: f64,
}

/// Why each number of a plan is what it is, one sentence each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PlanWhy {
    pub direction: String,
    /// Empty when flat, as are `stop` and `target`.
    #[serde(default)]
    pub entry: String,
    #[serde(default)]
    pub stop: String,
    #[serde(default)]
    pub target: String,
    pub horizon: String,
    pub size: String,
}

/// A trade plan. Build it with [`TradePlan::open`] or [`TradePlan::flat`], which round its
/// numbers and compute its risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TradePlan {
    pub direction: Direction,
    /// Entry, stop and target; none for a flat plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<Levels>,
    /// Trading days the plan is meant to run before it is looked at again.
    pub horizon_days: u32,
    /// Percent of the portfolio, to one decimal (`3.6` is 3.6 %); 0 when flat.
    pub size_pct: f64,
    /// Percent of the portfolio lost if the stop is hit: `size × |entry − stop| / entry`, to
    /// two decimals; 0 when flat.
    pub risk_pct: f64,
    pub why: PlanWhy,
    /// The plan in the words of whoever made it (Markdown, possibly a model's: untrusted).
    #[serde(default)]
    pub reasoning: String,
}

/// Why a plan could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

fn round_to(x: f64, decimals: i32) -> f64 {
    let k = 10f64.powi(decimals);
    (x * k).round() / k
}

/// The risk of a position of `size_pct` percent entered at `entry` and stopped at `stop`, in
/// percent of the portfolio to two decimals.
pub fn risk_of(size_pct: f64, entry: f64, stop: f64) -> f64 {
    if entry <= 0.0 {
        return 0.0;
    }
    round_to(size_pct * (entry - stop).abs() / entry, 2)
}

impl TradePlan {
    /// A long or short plan. Prices are rounded to the cent and the size (a fraction of the
    /// portfolio) to a tenth of a percent; the stop must be on the losing side of the entry and
    /// the target on the winning side.
    pub fn open(
        direction: Direction,
        levels: Levels,
        horizon_days: u32,
        size: f64,
        why: PlanWhy,
        reasoning: String,
    ) -> Result<Self, PlanError> {
        let levels = Levels {
            entry: round_to(levels.entry, 2),
            stop: round_to(levels.stop, 2),
            target: round_to(levels.target, 2),
        };
        let Levels { entry, stop, target } = levels;
        let s = direction.sign();
        if s == 0.0 {
            return Err(PlanError("a flat plan has no entry, stop or target".into()));
        }
        if !(entry.is_finite() && stop.is_finite() && target.is_finite()) || entry <= 0.0 || stop < 0.0 {
            return Err(PlanError(format!("entry {entry}, stop {stop} and target {target} must be prices")));
        }
        if (stop - entry) * s >= 0.0 {
            return Err(PlanError(format!(
                "the stop ({}) of a {direction} plan must be {} the entry ({})",
                price(stop),
                if s > 0.0 { "below" } else { "above" },
                price(entry)
            )));
        }
        if (target - entry) * s <= 0.0 {
            return Err(PlanError(format!(
                "the target ({}) of a {direction} plan must be {} the entry ({})",
                price(target),
                if s > 0.0 { "above" } else { "below" },
                price(entry)
            )));
        }
        let size_pct = round_to(size * 100.0, 1);
        if !(size_pct > 0.0 && size_pct <= 100.0) {
            return Err(PlanError(format!(
                "a position of {} of the portfolio is not a position",
                self::size(size_pct)
            )));
        }
        Ok(Self {
            direction,
            levels: Some(levels),
            horizon_days: horizon_days.max(1),
            size_pct,
            risk_pct: risk_of(size_pct, entry, stop),
            why,
            reasoning,
        })
    }

    /// No position: no entry, stop or target, nothing at risk.
    pub fn flat(horizon_days: u32, why: PlanWhy, reasoning: String) -> Self {
        Self {
            direction: Direction::Flat,
            levels: None,
            horizon_days: horizon_days.max(1),
            size_pct: 0.0,
            risk_pct: 0.0,
            why,
            reasoning,
        }
    }

    pub fn is_flat(&self) -> bool {
        self.levels.is_none()
    }

    /// The plan on one line, as every text that quotes it writes it:
    /// `short at 410.17, stop 443.24, target 344.03, 3.6% of the portfolio risking 0.29%, for 25 trading days`.
    pub fn line(&self) -> String {
        match self.levels {
            None => format!("flat: no position, look again in {}", days(self.horizon_days)),
            Some(Levels { entry, stop, target }) => format!(
                "{} at {}, stop {}, target {}, {} of the portfolio risking {}, for {}",
                self.direction,
                price(entry),
                price(stop),
                price(target),
                size(self.size_pct),
                risk(self.risk_pct),
                days(self.horizon_days)
            ),
        }
    }
}

/// A price or level to the cent with thousands separators: `4,512.08`.
pub fn price(x: f64) -> String {
    let s = format!("{:.2}", x.abs());
    let (int, frac) = s.split_once('.').expect("two decimals");
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}{grouped}.{frac}", if x < 0.0 { "-" } else { "" })
}

/// A position's size, in percent to one decimal: `3.6%`.
pub fn size(pct: f64) -> String {
    format!("{pct:.1}%")
}

/// What a position risks, in percent of the portfolio to two decimals: `0.29%`.
pub fn risk(pct: f64) -> String {
    format!("{pct:.2}%")
}

/// `1 trading day`, `25 trading days`.
pub fn days(n: u32) -> String {
    if n == 1 { "1 trading day".into() } else { format!("{n} trading days") }
}

/// One number of a plan that the risk debate or the portfolio manager changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PlanChange {
    /// `Direction`, `Entry`, `Stop`, `Target`, `Horizon`, `Size` or `Risk`.
    pub what: String,
    /// As the proposal wrote it ("" where it had none).
    pub from: String,
    /// As the final plan writes it ("" where it has none).
    pub to: String,
    /// The final plan's reason for it.
    pub why: String,
}

/// The trade of a run: the trader's proposal (in `standard` and `deep` runs), the final plan
/// to act on, and what changed from one to the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Trade {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed: Option<TradePlan>,
    /// The plan to act on; its direction is the rating's.
    #[serde(rename = "final")]
    pub plan: TradePlan,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<PlanChange>,
}

impl Trade {
    /// The final plan for `rating`, with the changes from `proposed` named. `plan`'s direction
    /// must be the rating's: a plan that disagrees with its rating is refused here, so none
    /// reaches a reader.
    pub fn new(rating: Rating, proposed: Option<TradePlan>, plan: TradePlan) -> Result<Self, PlanError> {
        let want = Direction::of_rating(rating);
        if plan.direction != want {
            return Err(PlanError(format!(
                "a {} rating needs a {want} plan, not a {} one",
                rating.as_str(),
                plan.direction
            )));
        }
        let changes = proposed.as_ref().map(|p| changes(p, &plan)).unwrap_or_default();
        Ok(Self { proposed, plan, changes })
    }
}

/// The numbers of `to` that differ from `from`, as they are written.
fn changes(from: &TradePlan, to: &TradePlan) -> Vec<PlanChange> {
    let level = |p: &TradePlan, f: fn(&Levels) -> f64| p.levels.as_ref().map(|l| price(f(l))).unwrap_or_default();
    let rows: [(&str, String, String, &str); 7] = [
        ("Direction", from.direction.label().into(), to.direction.label().into(), &to.why.direction),
        ("Entry", level(from, |l| l.entry), level(to, |l| l.entry), &to.why.entry),
        ("Stop", level(from, |l| l.stop), level(to, |l| l.stop), &to.why.stop),
        ("Target", level(from, |l| l.target), level(to, |l| l.target), &to.why.target),
        ("Horizon", days(from.horizon_days), days(to.horizon_days), &to.why.horizon),
        ("Size", size(from.size_pct), size(to.size_pct), &to.why.size),
        ("Risk", risk(from.risk_pct), risk(to.risk_pct), "size × distance to the stop ÷ entry"),
    ];
    rows.into_iter()
        .filter(|(_, a, b, _)| a != b)
        .map(|(what, from, to, why)| PlanChange { what: what.into(), from, to, why: why.to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why() -> PlanWhy {
        PlanWhy { direction: "d".into(), horizon: "h".into(), size: "s".into(), ..PlanWhy::default() }
    }

    #[test]
    fn an_open_plan_is_rounded_as_shown_and_its_risk_follows_from_size_and_stop() {
        let levels = Levels { entry: 410.1749, stop: 443.2401, target: 344.04 };
        let p = TradePlan::open(Direction::Short, levels, 25, 0.03649, why(), String::new()).unwrap();
        assert_eq!(p.size_pct, 3.6);
        assert_eq!(p.levels.unwrap().entry, 410.17);
        // 3.6 × 33.07 / 410.17 = 0.2903…
        assert_eq!(p.risk_pct, 0.29);
        assert_eq!(
            p.line(),
            "short at 410.17, stop 443.24, target 344.04, 3.6% of the portfolio risking 0.29%, for 25 trading days"
        );
    }

    #[test]
    fn stops_and_targets_must_be_on_their_sides() {
        let long_with_stop_above = Levels { entry: 100.0, stop: 105.0, target: 110.0 };
        let e = TradePlan::open(Direction::Long, long_with_stop_above, 20, 0.05, why(), String::new()).unwrap_err();
        assert!(e.0.contains("must be below"), "{e}");
        let short_with_target_above = Levels { entry: 100.0, stop: 105.0, target: 110.0 };
        let e = TradePlan::open(Direction::Short, short_with_target_above, 20, 0.05, why(), String::new()).unwrap_err();
        assert!(e.0.contains("target"), "{e}");
        assert!(TradePlan::open(Direction::Flat, long_with_stop_above, 20, 0.05, why(), String::new()).is_err());
    }

    #[test]
    fn a_trade_takes_its_direction_from_the_rating_and_names_its_changes() {
        let long = TradePlan::open(
            Direction::Long,
            Levels { entry: 100.0, stop: 94.0, target: 112.0 },
            20,
            0.054,
            why(),
            String::new(),
        )
        .unwrap();
        assert!(Trade::new(Rating::Sell, None, long.clone()).is_err());
        assert!(Trade::new(Rating::Hold, None, long.clone()).is_err());
        let flat = TradePlan::flat(20, PlanWhy { direction: "rated Hold".into(), ..why() }, String::new());
        let t = Trade::new(Rating::Hold, Some(long.clone()), flat).unwrap();
        assert!(t.plan.levels.is_none() && t.plan.size_pct == 0.0);
        let named: Vec<&str> = t.changes.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(named, ["Direction", "Entry", "Stop", "Target", "Size", "Risk"]);
        assert_eq!((t.changes[0].from.as_str(), t.changes[0].to.as_str()), ("Long", "Flat"));
        assert_eq!(t.changes[0].why, "rated Hold");
        assert!(Trade::new(Rating::Overweight, Some(long.clone()), long).unwrap().changes.is_empty());
    }

    #[test]
    fn formatters() {
        assert_eq!(price(4512.0812), "4,512.08");
        assert_eq!(price(-1234567.0), "-1,234,567.00");
        assert_eq!(size(3.6), "3.6%");
        assert_eq!(risk(0.2903), "0.29%");
        assert_eq!(days(1), "1 trading day");
    }
}
