//! The strategy that follows the ratings, and the baselines it is compared with.
//!
//! Each symbol is held from the first as-of day's close. On each following trading day `d` a
//! symbol's position is set by what was known at the close of day `d - 1`:
//! - the strategy: the rating of the symbol's latest cell whose trading day is before `d` —
//!   long (1) on Buy/Overweight, flat (0) on Hold, flat or short (-1) on Underweight/Sell
//!   ([`BearishPosition`]); a cell without a rating (its run did not complete) is flat;
//! - Buy & Hold: long every day;
//! - SMA crossover: long while the 20-day average of adjusted closes is above the 50-day one;
//! - MACD (12, 26, 9): long while the MACD line is above its signal line.
//!
//! A symbol's days end `every_days` trading days after its last as-of date (where its last
//! rating stops being the latest), or where its data ends. The portfolio holds the symbols in
//! equal parts, rebalanced daily: its return on a day is the mean over the symbols of position
//! × that day's return (a symbol without that day counts 0). Metrics are the paper's:
//! cumulative return, annualised return, Sharpe ratio (daily, annualised by √252, no risk-free
//! rate) and maximum drawdown of the equity.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::Rating;
use domain::backtest::{Baselines, BearishPosition, EquityCurves, Metrics};

use super::TRADING_DAYS_PER_YEAR;
use super::grid::CellInput;
use crate::indicators;
use crate::market::Series;

pub const SMA_FAST: usize = 20;
pub const SMA_SLOW: usize = 50;
pub const MACD_FAST: usize = 12;
pub const MACD_SLOW: usize = 26;
pub const MACD_SIGNAL: usize = 9;

/// The strategy's and baselines' metrics and curves; None when there is no day to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub strategy: Option<Metrics>,
    pub baselines: Option<Baselines>,
    pub curves: EquityCurves,
}

/// The position a rating takes.
pub fn position(rating: Option<Rating>, bearish: BearishPosition) -> f64 {
    match rating {
        Some(Rating::Buy | Rating::Overweight) => 1.0,
        Some(Rating::Underweight | Rating::Sell) if bearish == BearishPosition::Short => -1.0,
        _ => 0.0,
    }
}

/// Runs the four strategies over `series` (one per symbol of `cells`).
pub fn evaluate(series: &[Arc<Series>], cells: &[CellInput], every_days: u32, bearish: BearishPosition) -> Evaluation {
    // Per trading day: the summed position × return of [strategy, buy & hold, SMA, MACD].
    let mut days: BTreeMap<chrono::NaiveDate, [f64; 4]> = BTreeMap::new();
    let mut start = None;
    let mut held = 0usize;
    for s in series {
        // (trading-day index, rating) of the symbol's cells; a later duplicate wins.
        let mut marks: Vec<(usize, Option<Rating>)> = cells
            .iter()
            .filter(|c| c.symbol == s.symbol)
            .filter_map(|c| Some((s.at_or_before(c.as_of)?, c.rating)))
            .collect();
        marks.sort_by_key(|(i, _)| *i);
        marks.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = later.1;
            }
            same
        });
        let (Some(&(first, _)), Some(&(last, _))) = (marks.first(), marks.last()) else { continue };
        held += 1;
        let end = (last + every_days as usize).min(s.bars.len() - 1);
        start = Some(start.map_or(s.bars[first].date, |d: chrono::NaiveDate| d.min(s.bars[first].date)));

        let closes: Vec<f64> = s.bars.iter().map(|b| b.adj_close).collect();
        let (fast, slow) = (indicators::sma(&closes, SMA_FAST), indicators::sma(&closes, SMA_SLOW));
        let macd = indicators::macd(&closes, MACD_FAST, MACD_SLOW, MACD_SIGNAL);
        let above = |a: Option<f64>, b: Option<f64>| matches!((a, b), (Some(a), Some(b)) if a > b);
        let mut mark = 0;
        for d in first + 1..=end {
            while mark + 1 < marks.len() && marks[mark + 1].0 < d {
                mark += 1;
            }
            let r = closes[d] / closes[d - 1] - 1.0;
            let positions = [
                position(marks[mark].1, bearish),
                1.0,
                f64::from(u8::from(above(fast[d - 1], slow[d - 1]))),
                f64::from(u8::from(above(macd.macd[d - 1], macd.signal[d - 1]))),
            ];
            let sums = days.entry(s.bars[d].date).or_default();
            for (sum, p) in sums.iter_mut().zip(positions) {
                *sum += p * r;
            }
        }
    }
    let (Some(start), false) = (start, days.is_empty()) else {
        return Evaluation { strategy: None, baselines: None, curves: EquityCurves::default() };
    };
    let returns: [Vec<f64>; 4] = std::array::from_fn(|k| days.values().map(|sums| sums[k] / held as f64).collect());
    let mut curves = EquityCurves { dates: vec![start], ..EquityCurves::default() };
    curves.dates.extend(days.keys().copied());
    curves.strategy = equity(&returns[0]);
    curves.buy_and_hold = equity(&returns[1]);
    curves.sma_crossover = equity(&returns[2]);
    curves.macd = equity(&returns[3]);
    Evaluation {
        strategy: metrics(&returns[0]),
        baselines: Some(Baselines {
            buy_and_hold: metrics(&returns[1]).expect("days"),
            sma_crossover: metrics(&returns[2]).expect("days"),
            macd: metrics(&returns[3]).expect("days"),
        }),
        curves,
    }
}

/// Equity from 1 through each daily return: one more value than returns.
pub fn equity(returns: &[f64]) -> Vec<f64> {
    let mut curve = Vec::with_capacity(returns.len() + 1);
    curve.push(1.0);
    for r in returns {
        curve.push(curve.last().expect("non-empty") * (1.0 + r));
    }
    curve
}

/// The paper's metrics of daily returns; None without a day.
pub fn metrics(returns: &[f64]) -> Option<Metrics> {
    if returns.is_empty() {
        return None;
    }
    let curve = equity(returns);
    let n = returns.len() as f64;
    let cumulative = curve.last().expect("non-empty") - 1.0;
    let mean = returns.iter().sum::<f64>() / n;
    let sharpe = (returns.len() > 1)
        .then(|| (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt())
        .filter(|sd| *sd > 1e-12)
        .map(|sd| mean / sd * TRADING_DAYS_PER_YEAR.sqrt());
    Some(Metrics {
        cumulative_return: cumulative,
        annualized_return: (1.0 + cumulative).powf(TRADING_DAYS_PER_YEAR / n) - 1.0,
        sharpe,
        max_drawdown: indicators::max_drawdown(&curve).map_or(0.0, |d| d.depth),
    })
}
