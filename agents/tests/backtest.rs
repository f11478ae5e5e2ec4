//! The scorecard against values computed here, independently, from the bundled CSV files:
//! closes, forward and benchmark returns, hit rates, and the strategy's and baselines' metrics.

use std::path::Path;

use agents::backtest::strategy::{SMA_FAST, SMA_SLOW};
use agents::backtest::{CellInput, scorecard};
use agents::market::bundled::BundledData;
use chrono::NaiveDate;
use domain::Rating;
use domain::backtest::{BearishPosition, Benchmark};

fn market() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/market")
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// (date, adjusted close) rows of one CSV file, read with nothing but `split`.
fn csv(file: &str) -> Vec<(NaiveDate, f64)> {
    let text = std::fs::read_to_string(market().join(file)).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (day(f[0]), f[6].parse().unwrap())
        })
        .collect()
}

fn index_at_or_before(rows: &[(NaiveDate, f64)], date: NaiveDate) -> usize {
    rows.iter().rposition(|(d, _)| *d <= date).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

macro_rules! assert_close {
    ($a:expr, $b:expr) => {{
        let (a, b): (f64, f64) = ($a, $b);
        assert!(close(a, b), "{} = {a}, expected {b}", stringify!($a));
    }};
}

const DATES: [&str; 6] = ["2019-01-05", "2019-02-04", "2019-03-04", "2019-04-01", "2019-05-01", "2019-06-03"];
const RATINGS: [Rating; 6] =
    [Rating::Buy, Rating::Sell, Rating::Hold, Rating::Overweight, Rating::Underweight, Rating::Buy];
const EVERY: usize = 20;

fn nvda_cells() -> Vec<CellInput> {
    DATES
        .iter()
        .zip(RATINGS)
        .map(|(d, r)| CellInput { symbol: "NVDA".into(), as_of: day(d), rating: Some(r) })
        .collect()
}

/// Per cell: the close on the last trading day at or before the as-of date (2019-01-05 was a
/// Saturday), the closes 5 and 20 trading days on, the forward returns, the S&P 500's return
/// between the same dates, and alpha. Per rating: count, hit rate, means.
#[test]
fn forward_returns_benchmark_and_hit_rates() {
    let data = BundledData::load(&market()).unwrap();
    let card = scorecard(&data, &nvda_cells(), &[5, 20], EVERY as u32, BearishPosition::Flat);
    assert_eq!(card.benchmark, Benchmark::Index { symbol: "^GSPC".into() });

    let nvda = csv("stocks_2013_2023/NVDA.csv");
    let spx = csv("index/GSPC.csv");
    let outcomes = agents::backtest::scorecard::outcomes(&data, &nvda_cells(), &[5, 20], &card.benchmark);
    assert_eq!(outcomes.len(), 6);
    assert_eq!(outcomes[0].trading_day, day("2019-01-04"));
    let mut expected_returns = Vec::new();
    for (o, d) in outcomes.iter().zip(DATES) {
        let i = index_at_or_before(&nvda, day(d));
        assert_eq!(o.trading_day, nvda[i].0);
        assert_close!(o.close, nvda[i].1);
        let mut per_horizon = Vec::new();
        for h in [5usize, 20] {
            let (end_day, end_close) = nvda[i + h];
            let forward = end_close / nvda[i].1 - 1.0;
            let s0 = spx[index_at_or_before(&spx, nvda[i].0)].1;
            let s1 = spx[index_at_or_before(&spx, end_day)].1;
            let bench = s1 / s0 - 1.0;
            let k = h.to_string();
            assert_close!(o.closes_after[&k], end_close);
            assert_close!(o.forward_returns[&k], forward);
            assert_close!(o.benchmark_returns[&k], bench);
            assert_close!(o.alphas[&k], forward - bench);
            per_horizon.push((forward, forward - bench));
        }
        expected_returns.push(per_horizon);
    }

    // Buy: cells 0 and 5. Hit when the return is positive.
    for (hi, h) in [5u32, 20].into_iter().enumerate() {
        let buys = [expected_returns[0][hi], expected_returns[5][hi]];
        let stats = card.by_rating.iter().find(|s| s.rating == Rating::Buy && s.horizon == h).unwrap();
        assert_eq!(stats.count, 2);
        let hits = buys.iter().filter(|(r, _)| *r > 0.0).count() as f64 / 2.0;
        assert_close!(stats.hit_rate.unwrap(), hits);
        assert_close!(stats.mean_return.unwrap(), (buys[0].0 + buys[1].0) / 2.0);
        assert_close!(stats.mean_alpha.unwrap(), (buys[0].1 + buys[1].1) / 2.0);

        // Sell (cell 1): right when the return is negative.
        let sell = card.by_rating.iter().find(|s| s.rating == Rating::Sell && s.horizon == h).unwrap();
        assert_eq!(sell.count, 1);
        assert_eq!(sell.hit_rate, Some(if expected_returns[1][hi].0 < 0.0 { 1.0 } else { 0.0 }));
        // Hold (cell 2): counted, not scored.
        let hold = card.by_rating.iter().find(|s| s.rating == Rating::Hold && s.horizon == h).unwrap();
        assert_eq!((hold.count, hold.hit_rate), (1, None));
        assert_close!(hold.mean_return.unwrap(), expected_returns[2][hi].0);
    }
    // Over 20 days from 2019-02-04 NVDA rose (Sell wrong); from 2019-05-01 it fell
    // (Underweight right): the test data has both outcomes.
    let at = |r: Rating| card.by_rating.iter().find(|s| s.rating == r && s.horizon == 20).unwrap().hit_rate;
    assert_eq!((at(Rating::Sell), at(Rating::Underweight)), (Some(0.0), Some(1.0)));
    assert_eq!(card.by_rating.len(), 10, "every rating at every horizon");
}

/// Daily (position, return) pairs of one symbol's holding periods, built period by period.
fn periods(rows: &[(NaiveDate, f64)], starts: &[usize], positions: &[f64]) -> Vec<f64> {
    let mut daily = Vec::new();
    for (j, &k) in starts.iter().enumerate() {
        let end = starts.get(j + 1).copied().unwrap_or(k + EVERY);
        for d in k + 1..=end {
            daily.push(positions[j] * (rows[d].1 / rows[d - 1].1 - 1.0));
        }
    }
    daily
}

fn sharpe(daily: &[f64]) -> f64 {
    let n = daily.len() as f64;
    let m = daily.iter().sum::<f64>() / n;
    let var = daily.iter().map(|r| (r - m) * (r - m)).sum::<f64>() / (n - 1.0);
    m / var.sqrt() * 252f64.sqrt()
}

fn max_drawdown(daily: &[f64]) -> f64 {
    let (mut eq, mut peak, mut worst) = (1.0f64, 1.0f64, 0.0f64);
    for r in daily {
        eq *= 1.0 + r;
        peak = peak.max(eq);
        worst = worst.max(1.0 - eq / peak);
    }
    worst
}

/// The strategy follows the ratings period by period: long from 2019-01-04 to 2019-02-04,
/// out until 2019-04-01 (Sell, then Hold), long to 2019-05-01, out (or short) to 2019-06-03,
/// then long for 20 trading days. Its cumulative return telescopes into ratios of closes;
/// Sharpe and drawdown come from the daily returns; Buy & Hold is the ratio of the end points.
#[test]
fn strategy_metrics_and_buy_and_hold() {
    let data = BundledData::load(&market()).unwrap();
    let nvda = csv("stocks_2013_2023/NVDA.csv");
    let starts: Vec<usize> = DATES.iter().map(|d| index_at_or_before(&nvda, day(d))).collect();
    let end = starts[5] + EVERY;
    let ratio = |a: usize, b: usize| nvda[b].1 / nvda[a].1;

    let flat = scorecard(&data, &nvda_cells(), &[5, 20], EVERY as u32, BearishPosition::Flat);
    let s = flat.strategy.clone().unwrap();
    let cumulative = ratio(starts[0], starts[1]) * ratio(starts[3], starts[4]) * ratio(starts[5], end) - 1.0;
    assert_close!(s.cumulative_return, cumulative);
    let days = (end - starts[0]) as f64;
    assert_close!(s.annualized_return, (1.0 + cumulative).powf(252.0 / days) - 1.0);
    let daily = periods(&nvda, &starts, &[1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
    assert_eq!(daily.len(), end - starts[0]);
    assert_close!(s.sharpe.unwrap(), sharpe(&daily));
    assert_close!(s.max_drawdown, max_drawdown(&daily));

    let b = flat.baselines.clone().unwrap();
    assert_close!(b.buy_and_hold.cumulative_return, ratio(starts[0], end) - 1.0);
    let all_in = periods(&nvda, &starts, &[1.0; 6]);
    assert_close!(b.buy_and_hold.max_drawdown, max_drawdown(&all_in));
    assert_eq!(flat.curves.dates.first(), Some(&nvda[starts[0]].0));
    assert_eq!(flat.curves.dates.last(), Some(&nvda[end].0));
    assert_close!(*flat.curves.strategy.last().unwrap(), 1.0 + cumulative);

    // Short on Underweight/Sell: the bearish periods now earn the fall, compounded daily.
    let short = scorecard(&data, &nvda_cells(), &[5, 20], EVERY as u32, BearishPosition::Short);
    let daily = periods(&nvda, &starts, &[1.0, -1.0, 0.0, 1.0, -1.0, 1.0]);
    let compounded = daily.iter().fold(1.0, |eq, r| eq * (1.0 + r)) - 1.0;
    let s = short.strategy.unwrap();
    assert_close!(s.cumulative_return, compounded);
    assert_close!(s.sharpe.unwrap(), sharpe(&daily));
    assert!((s.cumulative_return - flat.strategy.unwrap().cumulative_return).abs() > 1e-3);
}

/// SMA 20/50 and MACD 12/26/9 on the adjusted closes, recomputed here from the whole file:
/// long on a day when yesterday's fast line was above the slow one.
#[test]
fn sma_crossover_and_macd_baselines() {
    let data = BundledData::load(&market()).unwrap();
    let nvda = csv("stocks_2013_2023/NVDA.csv");
    let closes: Vec<f64> = nvda.iter().map(|r| r.1).collect();
    let starts: Vec<usize> = DATES.iter().map(|d| index_at_or_before(&nvda, day(d))).collect();
    let end = starts[5] + EVERY;
    let avg = |i: usize, n: usize| closes[i + 1 - n..=i].iter().sum::<f64>() / n as f64;
    // EMAs seeded with the first close: years of history make the seed irrelevant.
    let ema = |n: usize| {
        let a = 2.0 / (n as f64 + 1.0);
        let mut out = vec![closes[0]];
        for c in &closes[1..] {
            out.push(a * c + (1.0 - a) * out.last().unwrap());
        }
        out
    };
    let (e12, e26) = (ema(12), ema(26));
    let line: Vec<f64> = e12.iter().zip(&e26).map(|(a, b)| a - b).collect();
    let mut signal = vec![line[0]];
    for x in &line[1..] {
        signal.push(0.2 * x + 0.8 * signal.last().unwrap());
    }
    let (mut sma_eq, mut macd_eq) = (1.0, 1.0);
    for d in starts[0] + 1..=end {
        let r = closes[d] / closes[d - 1] - 1.0;
        if avg(d - 1, SMA_FAST) > avg(d - 1, SMA_SLOW) {
            sma_eq *= 1.0 + r;
        }
        if line[d - 1] > signal[d - 1] {
            macd_eq *= 1.0 + r;
        }
    }
    let card = scorecard(&data, &nvda_cells(), &[5], EVERY as u32, BearishPosition::Flat);
    let b = card.baselines.unwrap();
    assert!((b.sma_crossover.cumulative_return - (sma_eq - 1.0)).abs() < 1e-9, "{b:?} vs {sma_eq}");
    assert!((b.macd.cumulative_return - (macd_eq - 1.0)).abs() < 1e-6, "{b:?} vs {macd_eq}");
    assert!(sma_eq != 1.0 && macd_eq != 1.0, "both baselines traded");
}

/// After the bundled S&P 500 ends (2020-04-17) the benchmark is the equal-weight mean of the
/// bundled stocks covering the dates, each over the same two days.
#[test]
fn equal_weight_benchmark_where_the_index_ends() {
    let data = BundledData::load(&market()).unwrap();
    let cells = vec![CellInput { symbol: "NVDA".into(), as_of: day("2021-03-01"), rating: Some(Rating::Buy) }];
    let card = scorecard(&data, &cells, &[5], 5, BearishPosition::Flat);
    let basket = ["AAPL", "AMZN", "GOOG", "META", "NFLX", "NVDA"];
    assert_eq!(card.benchmark, Benchmark::EqualWeight { symbols: basket.iter().map(|s| s.to_string()).collect() });
    let outcomes = agents::backtest::scorecard::outcomes(&data, &cells, &[5], &card.benchmark);
    let nvda = csv("stocks_2013_2023/NVDA.csv");
    let i = index_at_or_before(&nvda, day("2021-03-01"));
    let (start, end) = (nvda[i].0, nvda[i + 5].0);
    let mean = basket
        .iter()
        .map(|s| {
            let rows = csv(&format!("stocks_2013_2023/{s}.csv"));
            rows[index_at_or_before(&rows, end)].1 / rows[index_at_or_before(&rows, start)].1 - 1.0
        })
        .sum::<f64>()
        / basket.len() as f64;
    assert_close!(outcomes[0].benchmark_returns["5"], mean);
}
