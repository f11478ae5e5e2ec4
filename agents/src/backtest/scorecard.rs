//! The scorecard: what happened after each rating.
//!
//! Per cell: the adjusted close on the as-of date's trading day (the last at or before it) and
//! `h` trading days later for each horizon `h`; the forward return between them; the
//! benchmark's return between the same two dates (its own last trading day at or before each);
//! and the alpha, their difference. Per rating and horizon: how many cells, how often the
//! direction was right, the mean return and the mean alpha.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use domain::Rating;
use domain::backtest::{BearishPosition, Benchmark, CellOutcome, RatingStats, Scorecard};

use super::BENCHMARK_INDEX;
use super::grid::CellInput;
use crate::market::Series;
use crate::market::bundled::BundledData;

/// The adjusted-close return of `series` from its last trading day at or before `start` to its
/// last at or before `end`.
fn return_between(series: &Series, start: NaiveDate, end: NaiveDate) -> Option<f64> {
    let (a, b) = (series.at_or_before(start)?, series.at_or_before(end)?);
    Some(series.bars[b].adj_close / series.bars[a].adj_close - 1.0)
}

/// What the backtest is measured against over `[start, end]`: `^GSPC` where the bundled index
/// covers both, otherwise the bundled stocks that do, weighted equally.
pub fn choose_benchmark(data: &BundledData, start: NaiveDate, end: NaiveDate) -> Benchmark {
    let covers = |s: &Series| s.first_date().is_some_and(|f| f <= start) && s.last_date().is_some_and(|l| l >= end);
    if data.series(BENCHMARK_INDEX).is_some_and(|s| covers(&s)) {
        return Benchmark::Index { symbol: BENCHMARK_INDEX.to_string() };
    }
    let symbols = data
        .all_series()
        .into_iter()
        .filter(|s| !s.symbol.starts_with('^') && covers(s))
        .map(|s| s.symbol.clone())
        .collect();
    Benchmark::EqualWeight { symbols }
}

fn benchmark_return(data: &BundledData, benchmark: &Benchmark, start: NaiveDate, end: NaiveDate) -> Option<f64> {
    match benchmark {
        Benchmark::Index { symbol } => return_between(&*data.series(symbol)?, start, end),
        Benchmark::EqualWeight { symbols } => {
            let returns: Vec<f64> =
                symbols.iter().filter_map(|s| return_between(&*data.series(s)?, start, end)).collect();
            mean(&returns)
        }
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Each cell's closes and returns. Cells of symbols without data are left out.
pub fn outcomes(data: &BundledData, cells: &[CellInput], horizons: &[u32], benchmark: &Benchmark) -> Vec<CellOutcome> {
    let mut out = Vec::with_capacity(cells.len());
    for cell in cells {
        let Some(series) = data.series(&cell.symbol) else { continue };
        let Some(i) = series.at_or_before(cell.as_of) else { continue };
        let start = series.bars[i];
        let mut outcome = CellOutcome {
            symbol: cell.symbol.clone(),
            as_of: cell.as_of,
            trading_day: start.date,
            close: start.adj_close,
            rating: cell.rating,
            closes_after: BTreeMap::new(),
            forward_returns: BTreeMap::new(),
            benchmark_returns: BTreeMap::new(),
            alphas: BTreeMap::new(),
        };
        for &h in horizons {
            let Some(end) = series.bars.get(i + h as usize) else { continue };
            let key = h.to_string();
            let forward = end.adj_close / start.adj_close - 1.0;
            outcome.closes_after.insert(key.clone(), end.adj_close);
            outcome.forward_returns.insert(key.clone(), forward);
            if let Some(bench) = benchmark_return(data, benchmark, start.date, end.date) {
                outcome.benchmark_returns.insert(key.clone(), bench);
                outcome.alphas.insert(key, forward - bench);
            }
        }
        out.push(outcome);
    }
    out
}

/// Whether a rating's direction was right given the forward return; None for Hold and for a
/// decision left for review.
pub fn hit(rating: Rating, forward: f64) -> Option<bool> {
    match rating {
        Rating::Buy | Rating::Overweight => Some(forward > 0.0),
        Rating::Underweight | Rating::Sell => Some(forward < 0.0),
        Rating::Hold | Rating::Review => None,
    }
}

/// How a run rated `rating` as of `as_of` turned out over each of `horizons` trading days:
/// `series` the stock's prices, `benchmark` (named `index`) the index's, whose return is taken
/// between the same two days where its prices cover both — never from a last price before
/// them. `None` when the stock's prices do not reach back to `as_of`.
pub fn realised(
    series: &Series,
    index: &str,
    benchmark: Option<&Series>,
    as_of: NaiveDate,
    rating: Rating,
    horizons: &[u32],
) -> Option<domain::Outcome> {
    let i = series.at_or_before(as_of)?;
    let start = series.bars[i];
    let horizons = horizons
        .iter()
        .map(|&days| {
            let end = series.bars.get(i + days as usize);
            let stock_return = end.map(|e| e.adj_close / start.adj_close - 1.0);
            let covers = |b: &&Series, to: NaiveDate| {
                b.first_date().is_some_and(|f| f <= start.date) && b.last_date().is_some_and(|l| l >= to)
            };
            let benchmark_return = end.and_then(|e| {
                benchmark.filter(|b| covers(b, e.date)).and_then(|b| return_between(b, start.date, e.date))
            });
            domain::HorizonOutcome {
                days,
                date: end.map(|e| e.date),
                close: end.map(|e| e.adj_close),
                stock_return,
                benchmark_return,
                excess: stock_return.zip(benchmark_return).map(|(s, b)| s - b),
                right: stock_return.and_then(|r| hit(rating, r)),
            }
        })
        .collect();
    Some(domain::Outcome {
        symbol: series.symbol.clone(),
        rating,
        trading_day: start.date,
        close: start.adj_close,
        benchmark: index.to_string(),
        data_end: series.last_date()?,
        horizons,
    })
}

/// Per rating (strongest buy first) and horizon: count, hit rate, mean return, mean alpha.
/// Every rating appears, with count 0 when no cell had it.
pub fn by_rating(outcomes: &[CellOutcome], horizons: &[u32]) -> Vec<RatingStats> {
    let mut stats = Vec::new();
    for rating in Rating::ALL {
        for &h in horizons {
            let key = h.to_string();
            let rated: Vec<&CellOutcome> =
                outcomes.iter().filter(|o| o.rating == Some(rating) && o.forward_returns.contains_key(&key)).collect();
            let returns: Vec<f64> = rated.iter().map(|o| o.forward_returns[&key]).collect();
            let alphas: Vec<f64> = rated.iter().filter_map(|o| o.alphas.get(&key).copied()).collect();
            let hits: Vec<bool> = returns.iter().filter_map(|r| hit(rating, *r)).collect();
            let hit_rate = (!hits.is_empty()).then(|| hits.iter().filter(|h| **h).count() as f64 / hits.len() as f64);
            stats.push(RatingStats {
                rating,
                horizon: h,
                count: rated.len(),
                hit_rate,
                mean_return: mean(&returns),
                mean_alpha: mean(&alphas),
            });
        }
    }
    stats
}

/// The whole scorecard of a backtest whose as-of dates are `every_days` trading days apart.
pub fn scorecard(
    data: &BundledData,
    cells: &[CellInput],
    horizons: &[u32],
    every_days: u32,
    bearish: BearishPosition,
) -> Scorecard {
    // The benchmark must cover every day any return is read on.
    let mut span: Option<(NaiveDate, NaiveDate)> = None;
    let longest = horizons.iter().copied().max().unwrap_or(0).max(every_days) as usize;
    for cell in cells {
        let Some(series) = data.series(&cell.symbol) else { continue };
        let Some(i) = series.at_or_before(cell.as_of) else { continue };
        let end = series.bars[(i + longest).min(series.bars.len() - 1)].date;
        let start = series.bars[i].date;
        span = Some(span.map_or((start, end), |(a, b)| (a.min(start), b.max(end))));
    }
    let benchmark = match span {
        Some((start, end)) => choose_benchmark(data, start, end),
        None => Benchmark::Index { symbol: BENCHMARK_INDEX.to_string() },
    };
    let outcomes = outcomes(data, cells, horizons, &benchmark);
    let symbols: BTreeSet<&str> = cells.iter().map(|c| c.symbol.as_str()).collect();
    let series: Vec<Arc<Series>> = symbols.iter().filter_map(|s| data.series(s)).collect();
    let run = super::strategy::evaluate(&series, cells, every_days, bearish);
    Scorecard {
        benchmark,
        bearish,
        by_rating: by_rating(&outcomes, horizons),
        strategy: run.strategy,
        baselines: run.baselines,
        curves: run.curves,
    }
}
