//! The output of Data Collection: every figure the analysts read, computed once from the
//! price window and stored as the step's checkpoint.
//!
//! Returns-based figures (momentum, volatility, drawdown, VaR, beta) use the adjusted close, so
//! dividends and splits do not look like losses; chart and technical figures (RSI, MACD,
//! Bollinger, ATR, moving averages) use the traded close, as charts do. A figure that needs
//! more history than the window has is `None` and is reported as unavailable, never guessed.

use chrono::NaiveDate;
use domain::PricePoint;
use serde::{Deserialize, Serialize};

use crate::indicators::{self as ind, last};
use crate::market::Series;

/// Trading days in a year, a quarter, a month.
const YEAR: usize = 252;
const QUARTER: usize = 63;
const MONTH: usize = 21;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Crossover {
    /// `golden` (50-day crosses above 200-day) or `death` (below).
    pub kind: String,
    pub date: NaiveDate,
    pub days_ago: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Headline {
    pub title: String,
    /// VADER compound score, -1 to 1.
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarketSnapshot {
    pub symbol: String,
    /// Which provider the prices came from.
    pub source: String,
    pub as_of: NaiveDate,
    pub first_date: NaiveDate,
    pub trading_days: usize,
    pub last_close: f64,
    pub change_1d: Option<f64>,
    pub momentum_1m: Option<f64>,
    pub momentum_3m: Option<f64>,
    pub momentum_6m: Option<f64>,
    pub momentum_12m: Option<f64>,
    pub sma20: Option<f64>,
    pub sma50: Option<f64>,
    pub sma200: Option<f64>,
    pub ema12: Option<f64>,
    pub ema26: Option<f64>,
    pub rsi14: Option<f64>,
    pub macd: Option<f64>,
    pub macd_signal: Option<f64>,
    pub macd_histogram: Option<f64>,
    pub bollinger_upper: Option<f64>,
    pub bollinger_middle: Option<f64>,
    pub bollinger_lower: Option<f64>,
    /// Where the close sits in the bands: 0 at the lower, 1 at the upper.
    pub percent_b: Option<f64>,
    pub atr14: Option<f64>,
    /// ATR as a fraction of the close.
    pub atr_percent: Option<f64>,
    pub volatility_1y: Option<f64>,
    pub volatility_3m: Option<f64>,
    /// Largest fall over the last year, as a positive fraction.
    pub max_drawdown_1y: Option<f64>,
    pub drawdown_peak: Option<NaiveDate>,
    pub drawdown_trough: Option<NaiveDate>,
    /// One-day historical VaR and CVaR at 95 % over the last year, positive fractions.
    pub var95: Option<f64>,
    pub cvar95: Option<f64>,
    pub beta: Option<f64>,
    pub correlation: Option<f64>,
    pub beta_observations: usize,
    /// Why beta is missing, when it is.
    pub benchmark_note: Option<String>,
    /// 20-day over 60-day average volume, minus 1.
    pub volume_trend: Option<f64>,
    pub avg_volume_20: Option<f64>,
    pub high_52w: Option<f64>,
    pub low_52w: Option<f64>,
    pub distance_from_high: Option<f64>,
    /// Share of up days in the last 20.
    pub up_days_20: Option<f64>,
    /// Volume on up days over volume on down days, last 20 days.
    pub up_down_volume_20: Option<f64>,
    /// The latest 50/200-day crossover within the last 60 trading days.
    pub crossover: Option<Crossover>,
    /// About a year of closes with the 50- and 200-day averages.
    pub chart: Vec<PricePoint>,
    pub headlines: Vec<Headline>,
}

/// Computes the snapshot of `series` (oldest first, ending on the as-of day) against the
/// benchmark's series.
pub fn compute(series: &Series, benchmark: Option<&Series>, source: &str) -> MarketSnapshot {
    let bars = &series.bars;
    assert!(!bars.is_empty(), "callers check the history first");
    let n = bars.len();
    let close: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let adj: Vec<f64> = bars.iter().map(|b| b.adj_close).collect();
    let high: Vec<f64> = bars.iter().map(|b| b.high).collect();
    let low: Vec<f64> = bars.iter().map(|b| b.low).collect();
    let volume: Vec<f64> = bars.iter().map(|b| b.volume).collect();
    let last_close = close[n - 1];
    let tail = |v: &[f64], k: usize| v[n.saturating_sub(k)..].to_vec();

    let sma50 = ind::sma(&close, 50);
    let sma200 = ind::sma(&close, 200);
    let macd = ind::macd(&close, 12, 26, 9);
    let boll = ind::bollinger(&close, 20, 2.0);
    let atr = last(&ind::atr(&high, &low, &close, 14));

    let year_adj = tail(&adj, YEAR + 1);
    let year_returns = ind::daily_returns(&year_adj);
    let quarter_returns = ind::daily_returns(&tail(&adj, QUARTER + 1));
    let drawdown = ind::max_drawdown(&year_adj);
    let year_start = n.saturating_sub(YEAR + 1);

    let (upper, lower) = (last(&boll.upper), last(&boll.lower));
    let percent_b = match (upper, lower) {
        (Some(u), Some(l)) if u > l => Some((last_close - l) / (u - l)),
        _ => None,
    };

    let (beta, benchmark_note) = beta_against(series, benchmark);
    let (up_days_20, up_down_volume_20) = up_down(&close, &volume, 20);
    let year_high = tail(&high, YEAR);
    let year_low = tail(&low, YEAR);

    MarketSnapshot {
        symbol: series.symbol.clone(),
        source: source.to_string(),
        as_of: bars[n - 1].date,
        first_date: bars[0].date,
        trading_days: n,
        last_close,
        change_1d: ind::momentum(&adj, 1),
        momentum_1m: ind::momentum(&adj, MONTH),
        momentum_3m: ind::momentum(&adj, QUARTER),
        momentum_6m: ind::momentum(&adj, 2 * QUARTER),
        momentum_12m: ind::momentum(&adj, YEAR),
        sma20: last(&ind::sma(&close, 20)),
        sma50: last(&sma50),
        sma200: last(&sma200),
        ema12: last(&ind::ema(&close, 12)),
        ema26: last(&ind::ema(&close, 26)),
        rsi14: last(&ind::rsi(&close, 14)),
        macd: last(&macd.macd),
        macd_signal: last(&macd.signal),
        macd_histogram: last(&macd.histogram),
        bollinger_upper: upper,
        bollinger_middle: last(&boll.middle),
        bollinger_lower: lower,
        percent_b,
        atr14: atr,
        atr_percent: atr.map(|a| a / last_close),
        volatility_1y: (year_returns.len() >= QUARTER)
            .then(|| ind::annualized_volatility(&year_returns, 252.0))
            .flatten(),
        volatility_3m: (quarter_returns.len() >= MONTH)
            .then(|| ind::annualized_volatility(&quarter_returns, 252.0))
            .flatten(),
        max_drawdown_1y: drawdown.as_ref().map(|d| d.depth),
        drawdown_peak: drawdown.as_ref().map(|d| bars[year_start + d.peak].date),
        drawdown_trough: drawdown.as_ref().map(|d| bars[year_start + d.trough].date),
        var95: (year_returns.len() >= QUARTER).then(|| ind::historical_var(&year_returns, 0.95)).flatten(),
        cvar95: (year_returns.len() >= QUARTER).then(|| ind::historical_cvar(&year_returns, 0.95)).flatten(),
        beta: beta.as_ref().map(|b| b.beta),
        correlation: beta.as_ref().map(|b| b.correlation),
        beta_observations: beta.as_ref().map(|b| b.observations).unwrap_or(0),
        benchmark_note,
        volume_trend: ind::volume_trend(&volume, 20, 60),
        avg_volume_20: (n >= 20).then(|| volume[n - 20..].iter().sum::<f64>() / 20.0),
        high_52w: year_high.iter().copied().reduce(f64::max),
        low_52w: year_low.iter().copied().reduce(f64::min),
        distance_from_high: ind::distance_from_high(&high, &close, YEAR),
        up_days_20,
        up_down_volume_20,
        crossover: crossover(series, &sma50, &sma200, 60),
        chart: bars[year_start..]
            .iter()
            .enumerate()
            .map(|(i, b)| PricePoint {
                date: b.date,
                close: b.close,
                sma50: sma50[year_start + i],
                sma200: sma200[year_start + i],
            })
            .collect(),
        headlines: Vec::new(),
    }
}

/// Beta and correlation over the last year of days both series traded, or why there is none.
fn beta_against(series: &Series, benchmark: Option<&Series>) -> (Option<ind::BetaCorrelation>, Option<String>) {
    let Some(bench) = benchmark else {
        return (None, Some("No S&P 500 data is available to compare against.".into()));
    };
    let bars = &series.bars[series.bars.len().saturating_sub(YEAR + 1)..];
    let bench_close: std::collections::HashMap<NaiveDate, f64> =
        bench.bars.iter().map(|b| (b.date, b.adj_close)).collect();
    let (mut asset, mut market) = (Vec::new(), Vec::new());
    for w in bars.windows(2) {
        if let (Some(m0), Some(m1)) = (bench_close.get(&w[0].date), bench_close.get(&w[1].date)) {
            asset.push(w[1].adj_close / w[0].adj_close - 1.0);
            market.push(m1 / m0 - 1.0);
        }
    }
    match ind::beta_correlation(&asset, &market) {
        Some(b) => (Some(b), None),
        None => {
            let note = match bench.last_date() {
                Some(end) if end < bars[0].date => format!(
                    "The bundled S&P 500 series ends {end}, before this window starts; beta cannot be measured."
                ),
                _ => format!("Only {} days overlap with the S&P 500 series; beta needs at least 20.", asset.len()),
            };
            (None, Some(note))
        }
    }
}

/// Share of up days and up-day over down-day volume in the last `days` days.
fn up_down(close: &[f64], volume: &[f64], days: usize) -> (Option<f64>, Option<f64>) {
    let n = close.len();
    if n <= days {
        return (None, None);
    }
    let (mut ups, mut up_vol, mut down_vol) = (0usize, 0.0, 0.0);
    for i in n - days..n {
        if close[i] > close[i - 1] {
            ups += 1;
            up_vol += volume[i];
        } else if close[i] < close[i - 1] {
            down_vol += volume[i];
        }
    }
    let ratio = (down_vol > 0.0).then(|| up_vol / down_vol);
    (Some(ups as f64 / days as f64), ratio)
}

/// The most recent day within `within` days where the 50-day average crossed the 200-day one.
fn crossover(series: &Series, fast: &[Option<f64>], slow: &[Option<f64>], within: usize) -> Option<Crossover> {
    let n = fast.len();
    let start = n.saturating_sub(within).max(1);
    (start..n).rev().find_map(|i| match (fast[i - 1], slow[i - 1], fast[i], slow[i]) {
        (Some(f0), Some(s0), Some(f1), Some(s1)) if f0 <= s0 && f1 > s1 => {
            Some(Crossover { kind: "golden".into(), date: series.bars[i].date, days_ago: n - 1 - i })
        }
        (Some(f0), Some(s0), Some(f1), Some(s1)) if f0 >= s0 && f1 < s1 => {
            Some(Crossover { kind: "death".into(), date: series.bars[i].date, days_ago: n - 1 - i })
        }
        _ => None,
    })
}
