//! Technical and risk indicators over daily series, as pure functions.
//!
//! Conventions, chosen to match TA-Lib and common charting tools so that numbers shown to
//! users can be cross-checked elsewhere:
//!
//! - Series indicators (`sma`, `ema`, `rsi`, `macd`, `bollinger`, `atr`) return a
//!   `Vec<Option<f64>>` as long as the input, `None` until enough data exists. A period of 0
//!   or one longer than the input yields all `None`, never a panic.
//! - EMA uses alpha = 2/(period+1); RSI and ATR use Wilder smoothing,
//!   `avg = (prev*(period-1) + x)/period`. All three are seeded with the simple mean of the
//!   first `period` observations rather than with the first value.
//! - Bollinger bands use the *population* standard deviation (divide by n) of the window;
//!   annualized volatility and beta use *sample* statistics (divide by n-1).
//! - Quantiles (VaR, CVaR) interpolate linearly between order statistics at position
//!   `(n-1)*p` of the sorted sample, i.e. numpy's default `quantile` method.
//! - Risk numbers (drawdown, VaR, CVaR) are positive loss fractions.
//! - Inputs are assumed finite; NaN is not filtered and may silently distort results.

/// Simple returns: r_t = c_t / c_{t-1} - 1. Length n-1 (empty for n < 2). A zero previous
/// close yields inf/NaN rather than being skipped, so r_t stays paired with c_t.
pub fn daily_returns(closes: &[f64]) -> Vec<f64> {
    closes.windows(2).map(|w| w[1] / w[0] - 1.0).collect()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Recursive smoother shared by EMA, RSI and ATR: the mean of the first `period` values sits at
/// index period-1, then each later value updates it through `step(previous, x)`.
fn seeded(xs: &[f64], period: usize, step: impl Fn(f64, f64) -> f64) -> Vec<Option<f64>> {
    let mut out = vec![None; xs.len()];
    if period == 0 || xs.len() < period {
        return out;
    }
    let mut acc = mean(&xs[..period]);
    out[period - 1] = Some(acc);
    for (slot, &x) in out[period..].iter_mut().zip(&xs[period..]) {
        acc = step(acc, x);
        *slot = Some(acc);
    }
    out
}

fn wilder(xs: &[f64], period: usize) -> Vec<Option<f64>> {
    let p = period as f64;
    seeded(xs, period, |prev, x| (prev * (p - 1.0) + x) / p)
}

/// Element-wise difference of two aligned series, `None` wherever either side is missing.
fn difference(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<Option<f64>> {
    a.iter().zip(b).map(|(&x, &y)| Some(x? - y?)).collect()
}

/// Simple moving average aligned with the input: None until `period` values are available.
/// period 0 → all None. Each window is summed afresh, not kept as a running sum, so rounding
/// error cannot build up over a long history.
pub fn sma(values: &[f64], period: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; values.len()];
    if period > 0 {
        for (i, w) in values.windows(period).enumerate() {
            out[i + period - 1] = Some(mean(w));
        }
    }
    out
}

/// Exponential moving average, alpha = 2/(period+1), seeded with the SMA of the first
/// `period` values (so the first Some is at index period-1). Aligned with input. The SMA seed
/// (TA-Lib's choice) keeps early values from hinging on a single observation.
pub fn ema(values: &[f64], period: usize) -> Vec<Option<f64>> {
    let alpha = 2.0 / (period as f64 + 1.0);
    seeded(values, period, |prev, x| alpha * x + (1.0 - alpha) * prev)
}

fn rsi_value(avg_gain: f64, avg_loss: f64) -> f64 {
    if avg_loss != 0.0 {
        100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    } else if avg_gain != 0.0 {
        100.0
    } else {
        50.0 // a completely flat stretch is neutral, not overbought
    }
}

/// Wilder's RSI on the usual 0–100 scale: first average gain/loss = simple mean of the first
/// `period` changes, then Wilder smoothing avg = (prev*(period-1) + x)/period. First Some at
/// index `period`, since `period` changes need `period + 1` closes. avg_loss == 0 → 100 (or 50
/// when avg_gain is 0 too).
pub fn rsi(closes: &[f64], period: usize) -> Vec<Option<f64>> {
    let changes: Vec<f64> = closes.windows(2).map(|w| w[1] - w[0]).collect();
    let gains: Vec<f64> = changes.iter().map(|d| d.max(0.0)).collect();
    let losses: Vec<f64> = changes.iter().map(|d| (-d).max(0.0)).collect();
    // Changes are one shorter than closes; the leading None restores the alignment.
    let mut out = vec![None; closes.len().min(1)];
    let (gain, loss) = (wilder(&gains, period), wilder(&losses, period));
    let values = gain.iter().zip(&loss).map(|(&g, &l)| Some(rsi_value(g?, l?)));
    out.extend(values);
    out
}

/// MACD line, signal line and histogram, each aligned with the input closes.
#[derive(Debug, Clone, PartialEq)]
pub struct Macd {
    pub macd: Vec<Option<f64>>,
    pub signal: Vec<Option<f64>>,
    pub histogram: Vec<Option<f64>>,
}

/// MACD = EMA(fast) - EMA(slow) (Some from index slow-1, or fast-1 if fast is the longer);
/// signal = EMA(signal) of the defined MACD values only, seeded with the SMA of the first
/// `signal` of them, so its first Some is at index slow-1 + signal-1; histogram = macd -
/// signal. All aligned with input.
pub fn macd(closes: &[f64], fast: usize, slow: usize, signal: usize) -> Macd {
    let macd = difference(&ema(closes, fast), &ema(closes, slow));
    let mut signal_line = vec![None; closes.len()];
    if let Some(start) = macd.iter().position(Option::is_some) {
        // Both EMAs stay defined once they start, so flattening the tail drops nothing.
        let tail: Vec<f64> = macd[start..].iter().flatten().copied().collect();
        signal_line.truncate(start);
        signal_line.extend(ema(&tail, signal));
    }
    let histogram = difference(&macd, &signal_line);
    let signal = signal_line;
    Macd { macd, signal, histogram }
}

/// Bollinger bands, each aligned with the input closes.
#[derive(Debug, Clone, PartialEq)]
pub struct Bollinger {
    pub middle: Vec<Option<f64>>,
    pub upper: Vec<Option<f64>>,
    pub lower: Vec<Option<f64>>,
}

/// Middle = SMA(period); bands = middle ± k × population standard deviation of the window
/// (as TA-Lib and most charting tools do), taken around the window mean rather than by the
/// sum-of-squares shortcut, which cancels badly on price levels.
pub fn bollinger(closes: &[f64], period: usize, k: f64) -> Bollinger {
    let middle = sma(closes, period);
    let (mut upper, mut lower) = (vec![None; closes.len()], vec![None; closes.len()]);
    for (i, m) in middle.iter().enumerate() {
        if let &Some(m) = m {
            let window = &closes[i + 1 - period..=i];
            let var = window.iter().map(|x| (x - m).powi(2)).sum::<f64>() / period as f64;
            upper[i] = Some(m + k * var.sqrt());
            lower[i] = Some(m - k * var.sqrt());
        }
    }
    Bollinger { middle, upper, lower }
}

/// Average True Range with Wilder smoothing: TR_0 = high-low, TR_t = max(h-l, |h-c_{t-1}|,
/// |l-c_{t-1}|); first ATR = mean of TR over the first `period` bars (indices 0..period), Some
/// at index period-1; then (prev*(period-1)+TR)/period. In price units.
///
/// # Panics
/// If the slices differ in length: misaligned bars are a caller bug no value could represent.
pub fn atr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<Option<f64>> {
    let same = high.len() == low.len() && low.len() == close.len();
    assert!(same, "atr: high, low and close must have the same length");
    let tr: Vec<f64> = (0..high.len())
        .map(|i| {
            // The first bar has no previous close, so its true range is just its range.
            let (range, prev) = (high[i] - low[i], close[i.saturating_sub(1)]);
            let gaps = (high[i] - prev).abs().max((low[i] - prev).abs());
            if i == 0 { range } else { range.max(gaps) }
        })
        .collect();
    wilder(&tr, period)
}

/// Sample standard deviation (n-1) of the returns times sqrt(periods_per_year), e.g. 252 for
/// daily returns: the returns are a sample of an unknown distribution, unlike a Bollinger
/// window. None for fewer than 2 returns.
pub fn annualized_volatility(returns: &[f64], periods_per_year: f64) -> Option<f64> {
    if returns.len() < 2 {
        return None;
    }
    let m = mean(returns);
    let var = returns.iter().map(|r| (r - m).powi(2)).sum::<f64>() / (returns.len() - 1) as f64;
    Some(var.sqrt() * periods_per_year.sqrt())
}

/// The largest peak-to-trough fall of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawdown {
    pub depth: f64,
    pub peak: usize,
    pub trough: usize,
}

/// Largest peak-to-trough fall of the series, as a positive fraction (0.25 = fell 25 %), with
/// the indices of the peak and the trough. None for an empty series; a series that never falls
/// gives depth 0 with peak = trough = 0. Ties go to the earliest peak and trough. Falls from a
/// non-positive peak are ignored: the series should be prices or equity.
pub fn max_drawdown(values: &[f64]) -> Option<Drawdown> {
    if values.is_empty() {
        return None;
    }
    let (mut depth, mut peak, mut trough, mut running_peak) = (0.0, 0, 0, 0);
    for (i, &x) in values.iter().enumerate() {
        if x > values[running_peak] {
            running_peak = i;
        }
        let top = values[running_peak];
        if top > 0.0 && (top - x) / top > depth {
            (depth, peak, trough) = ((top - x) / top, running_peak, i);
        }
    }
    Some(Drawdown { depth, peak, trough })
}

/// Sorted copy of the returns and their `1 - confidence` quantile (numpy's linear method).
fn lower_tail(returns: &[f64], confidence: f64) -> Option<(Vec<f64>, f64)> {
    if returns.is_empty() || !(0.0..=1.0).contains(&confidence) {
        return None;
    }
    let mut sorted = returns.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = (sorted.len() - 1) as f64 * (1.0 - confidence);
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let q = sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64);
    Some((sorted, q))
}

/// Historical value at risk at `confidence` (e.g. 0.95): the loss not exceeded on `confidence`
/// of days, as a positive number: -q where q is the (1-confidence) quantile of the returns,
/// with linear interpolation between order statistics (numpy's default: position (n-1)*p in
/// the sorted array). None for an empty slice or a confidence outside [0, 1]. Not clamped: a
/// quantile that is a gain gives a negative VaR.
pub fn historical_var(returns: &[f64], confidence: f64) -> Option<f64> {
    lower_tail(returns, confidence).map(|(_, q)| -q)
}

/// Conditional VaR (expected shortfall): minus the mean of the returns less than or equal to
/// the (1-confidence) quantile defined as in historical_var. Positive number. None for empty
/// or a confidence outside [0, 1]. The tail is never empty (the quantile is ≥ the minimum).
pub fn historical_cvar(returns: &[f64], confidence: f64) -> Option<f64> {
    let (sorted, q) = lower_tail(returns, confidence)?;
    let tail: Vec<f64> = sorted.into_iter().filter(|&r| r <= q).collect();
    Some(-mean(&tail))
}

/// Beta and correlation of an asset's returns against a market's.
#[derive(Debug, Clone, PartialEq)]
pub struct BetaCorrelation {
    pub beta: f64,
    pub correlation: f64,
    pub observations: usize,
}

/// Beta = cov(asset, market) / var(market) and Pearson correlation, over paired returns (same
/// length required; return None if lengths differ, fewer than 20 pairs, or the market variance
/// is 0, tested as "all market returns equal" because rounding in the mean would leave a tiny
/// spurious variance and an absurd beta). A constant asset gives beta 0 and correlation 0.
pub fn beta_correlation(asset: &[f64], market: &[f64]) -> Option<BetaCorrelation> {
    let observations = asset.len();
    let constant = |xs: &[f64]| xs.iter().all(|&x| x == xs[0]);
    if observations != market.len() || observations < 20 || constant(market) {
        return None;
    }
    let (mean_a, mean_m) = (mean(asset), mean(market));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &m) in asset.iter().zip(market) {
        let (da, dm) = (a - mean_a, m - mean_m);
        sxy += da * dm;
        sxx += da * da;
        syy += dm * dm;
    }
    // The 1/(n-1) factors cancel in both ratios.
    let beta = sxy / syy;
    // Rounding can push a perfect correlation a hair past ±1; a constant asset has none.
    let r = (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0);
    let correlation = if constant(asset) { 0.0 } else { r };
    Some(BetaCorrelation { beta, correlation, observations })
}

/// Return over the last `lookback` periods: last / values[len-1-lookback] - 1. None when the
/// series is too short (fewer than lookback+1 values) or the base value is 0.
pub fn momentum(values: &[f64], lookback: usize) -> Option<f64> {
    let last_index = values.len().checked_sub(1)?;
    let base = values[last_index.checked_sub(lookback)?];
    (base != 0.0).then(|| values[last_index] / base - 1.0)
}

/// Mean volume of the last `short` days over the mean of the last `long` days, minus 1 (0.2 =
/// recent volume 20 % above the longer average). None when too short (fewer than
/// max(short, long) values), when either window is 0, or the long mean is 0.
pub fn volume_trend(volumes: &[f64], short: usize, long: usize) -> Option<f64> {
    let n = volumes.len();
    if short == 0 || long == 0 || n < short.max(long) {
        return None;
    }
    let long_mean = mean(&volumes[n - long..]);
    (long_mean != 0.0).then(|| mean(&volumes[n - short..]) / long_mean - 1.0)
}

/// Last close relative to the highest high of the last `window` bars (including the last),
/// minus 1: 0 at a new high, -0.1 when 10 % below. None for empty input, window 0, a non-positive
/// high, or highs and closes of different lengths (misaligned bars). A longer window uses all.
pub fn distance_from_high(highs: &[f64], closes: &[f64], window: usize) -> Option<f64> {
    let n = highs.len();
    let &close = closes.last()?;
    if window == 0 || n != closes.len() {
        return None;
    }
    let recent = &highs[n.saturating_sub(window)..];
    let high = recent.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    (high > 0.0).then(|| close / high - 1.0)
}

/// Value of the last element of an aligned indicator series, if present (the "current" value).
pub fn last(series: &[Option<f64>]) -> Option<f64> {
    series.last().copied().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative tolerance, with a tiny absolute floor so that expected zeros can be checked.
    fn close(actual: f64, expected: f64) {
        let ok = (actual - expected).abs() <= 1e-9 * expected.abs() + 1e-15;
        assert!(ok, "got {actual}, expected {expected}");
    }

    fn close_opt(actual: Option<f64>, expected: f64) {
        close(actual.expect("indicator value missing"), expected);
    }

    // AAPL daily closes, first 60 trading days of 2013
    // (data/market/stocks_2013_2023/AAPL.csv, column Close).
    const AAPL_CLOSE: [f64; 60] = [
        19.60821, 19.36071, 18.82143, 18.71071, 18.76107, 18.46786, 18.69679, 18.58214, 17.91964, 17.35429, 18.07464,
        17.95286, 17.85714, 18.0275, 18.3575, 16.08929, 15.71, 16.06536, 16.36679, 16.31536, 16.2675, 16.20071,
        15.79714, 16.35143, 16.33393, 16.72214, 16.96357, 17.14036, 16.71071, 16.67893, 16.66393, 16.43429, 16.42821,
        16.03036, 15.93071, 16.10036, 15.81429, 16.03464, 15.8775, 15.76429, 15.37393, 15.00179, 15.39786, 15.20214,
        15.37786, 15.41857, 15.63821, 15.30107, 15.29821, 15.44643, 15.845, 16.27571, 16.23179, 16.14571, 16.16893,
        16.49679, 16.55643, 16.46929, 16.14571, 15.80929,
    ];
    // Same file, first 20 rows, columns High and Low.
    const AAPL_HIGH: [f64; 20] = [
        19.82143, 19.63107, 19.23679, 18.90357, 18.99607, 18.75036, 18.88286, 18.76143, 18.125, 17.82107, 18.19429,
        18.24107, 17.93643, 18.13857, 18.3925, 16.63321, 16.29393, 16.18607, 16.43571, 16.52143,
    ];
    const AAPL_LOW: [f64; 20] = [
        19.34393, 19.32143, 18.77964, 18.4, 18.61607, 18.42821, 18.41143, 18.53643, 17.80393, 17.26357, 17.58929,
        17.92964, 17.72857, 17.73679, 18.0275, 16.08036, 15.53571, 15.56643, 16.14714, 16.23214,
    ];
    // GOOG closes on the first 21 of those dates (data/market/stocks_2013_2023/GOOG.csv).
    const GOOG_CLOSE: [f64; 21] = [
        18.01373, 18.02419, 18.38036, 18.30016, 18.26404, 18.38409, 18.46778, 18.43067, 18.01373, 18.05557, 17.81298,
        17.71659, 17.54698, 17.50613, 18.46828, 18.78484, 18.77139, 18.69817, 18.77164, 18.77538, 18.8217,
    ];

    // "reference" numbers below come from an independent Python 3 implementation (stdlib
    // only: plain loops, math.fsum, statistics.pstdev/stdev/variance/correlation) run on the
    // literal arrays above and printed with repr(); "by hand" ones are worked out in comments.

    #[test]
    fn daily_returns_values_and_edges() {
        let r = daily_returns(&[100.0, 110.0, 99.0]);
        assert_eq!(r.len(), 2);
        close(r[0], 0.1);
        close(r[1], -0.1);
        assert!(daily_returns(&[]).is_empty() && daily_returns(&[5.0]).is_empty());
        let r = daily_returns(&AAPL_CLOSE);
        assert_eq!(r.len(), 59);
        close(r[0], -0.012622263837443581); // reference
        close(r[58], -0.02083649464780435); // reference
    }

    #[test]
    fn sma_values_and_edges() {
        let s = sma(&[1.0, 2.0, 3.0, 4.0, 6.0], 3);
        assert_eq!(s[..2], [None, None]);
        close_opt(s[2], 2.0);
        close_opt(s[3], 3.0);
        close_opt(s[4], 13.0 / 3.0);
        assert_eq!(sma(&[1.0, 2.0], 0), [None, None]);
        assert_eq!(sma(&[1.0, 2.0], 3), [None, None]);
        assert!(sma(&[], 3).is_empty());
        let s = sma(&AAPL_CLOSE, 20);
        assert_eq!(s[18], None);
        close_opt(s[19], 17.8549645); // reference
        close_opt(s[59], 15.780036); // reference
    }

    #[test]
    fn ema_values_and_edges() {
        // By hand: alpha = 0.5, seed = mean(2,4,6) = 4, then 0.5*8+0.5*4 = 6, 0.5*12+0.5*6 = 9.
        let e = ema(&[2.0, 4.0, 6.0, 8.0, 12.0], 3);
        assert_eq!(e[..2], [None, None]);
        close_opt(e[2], 4.0);
        close_opt(e[3], 6.0);
        close_opt(e[4], 9.0);
        assert_eq!(ema(&[1.0, 2.0], 0), [None, None]);
        assert_eq!(ema(&[1.0, 2.0], 3), [None, None]);
        assert!(ema(&[], 2).is_empty());
        // reference: Python EMA(12) seeded with the mean of the first 12 closes.
        let e = ema(&AAPL_CLOSE, 12);
        assert_eq!(e[10], None);
        close_opt(e[11], 18.5258625);
        close_opt(e[12], 18.422982115384613);
        close_opt(e[59], 16.07763616618948);
    }

    #[test]
    fn rsi_values_and_edges() {
        // By hand, period 2: changes +1 +1 -1 +1. Seed gain 1, loss 0 → 100; then gain 0.5,
        // loss 0.5 → 50; then gain 0.75, loss 0.25 → RS 3 → 75.
        let r = rsi(&[1.0, 2.0, 3.0, 2.0, 3.0], 2);
        assert_eq!(r[..2], [None, None]);
        close_opt(r[2], 100.0);
        close_opt(r[3], 50.0);
        close_opt(r[4], 75.0);
        assert_eq!(rsi(&[5.0, 5.0, 5.0], 2)[2], Some(50.0));
        assert_eq!(rsi(&[1.0, 2.0], 2), [None, None]);
        assert_eq!(rsi(&[1.0, 2.0], 0), [None, None]);
        assert!(rsi(&[], 14).is_empty());
        // reference: independent Python implementation of Wilder's RSI(14), stdlib only.
        let r = rsi(&AAPL_CLOSE, 14);
        assert_eq!((r.len(), r[13]), (60, None));
        close_opt(r[14], 35.288222438133886);
        close_opt(r[30], 40.04811577674471);
        close_opt(r[59], 44.49698384564495);
    }

    #[test]
    fn macd_values_and_edges() {
        // reference: Python MACD(12, 26, 9) with SMA-seeded EMAs, signal over MACD[25..].
        let m = macd(&AAPL_CLOSE, 12, 26, 9);
        assert!(m.macd.len() == 60 && m.signal.len() == 60 && m.histogram.len() == 60);
        assert!(m.macd[24].is_none() && m.signal[32].is_none() && m.histogram[32].is_none());
        close_opt(m.macd[25], -0.8766084052529557);
        close_opt(m.macd[59], -0.016863015250610403);
        close_opt(m.signal[33], -0.6365100091555358);
        close_opt(m.signal[59], -0.11204949855988078);
        close_opt(m.histogram[59], 0.09518648330927038);
        // Too short for the signal line: MACD exists from index 25, signal never.
        let m = macd(&AAPL_CLOSE[..30], 12, 26, 9);
        assert!(m.macd[25].is_some() && m.signal.iter().all(Option::is_none));
        assert!(m.histogram.iter().all(Option::is_none));
        let m = macd(&AAPL_CLOSE, 0, 26, 9);
        assert!(m.macd.iter().all(Option::is_none) && m.signal.iter().all(Option::is_none));
        assert_eq!(macd(&[], 12, 26, 9).macd.len(), 0);
    }

    #[test]
    fn bollinger_values_and_edges() {
        // By hand: window 1,2,3,4 has mean 2.5 and population variance 5/4.
        let b = bollinger(&[1.0, 2.0, 3.0, 4.0], 4, 2.0);
        assert_eq!(b.upper[2], None);
        close_opt(b.middle[3], 2.5);
        close_opt(b.upper[3], 2.5 + 2.0 * 1.25_f64.sqrt());
        close_opt(b.lower[3], 2.5 - 2.0 * 1.25_f64.sqrt());
        let flat = bollinger(&[7.0; 5], 3, 2.0);
        assert_eq!((flat.upper[4], flat.lower[4]), (Some(7.0), Some(7.0)));
        assert!(bollinger(&[1.0], 0, 2.0).middle.iter().all(Option::is_none));
        assert!(bollinger(&[1.0], 5, 2.0).upper.iter().all(Option::is_none));
        // reference: Python, middle = mean, bands = mean ± 2 * statistics.pstdev(window).
        let b = bollinger(&AAPL_CLOSE, 20, 2.0);
        close_opt(b.upper[19], 20.11517866375064);
        close_opt(b.middle[59], 15.780036);
        close_opt(b.upper[59], 16.739317577356722);
        close_opt(b.lower[59], 14.82075442264328);
    }

    #[test]
    fn atr_values_and_edges() {
        // By hand: TR = 2, max(1, 3, 2) = 3, max(2, 3.5, 1.5) = 3.5; ATR(2) = 2.5, then
        // (2.5 + 3.5) / 2 = 3.
        let (h, l, c) = ([10.0, 12.0, 15.0], [8.0, 11.0, 13.0], [9.0, 11.5, 14.0]);
        let a = atr(&h, &l, &c, 2);
        assert_eq!(a[0], None);
        close_opt(a[1], 2.5);
        close_opt(a[2], 3.0);
        assert_eq!(atr(&h, &l, &c, 4), [None, None, None]);
        assert_eq!(atr(&h, &l, &c, 0), [None, None, None]);
        assert!(atr(&[], &[], &[], 14).is_empty());
        // reference: independent Python implementation of Wilder's ATR(14), stdlib only.
        let a = atr(&AAPL_HIGH, &AAPL_LOW, &AAPL_CLOSE[..20], 14);
        assert_eq!(a[12], None);
        close_opt(a[13], 0.4637750000000003);
        close_opt(a[14], 0.45671964285714306);
        close_opt(a[19], 0.5629815290045762);
    }

    #[test]
    #[should_panic(expected = "same length")]
    fn atr_panics_on_length_mismatch() {
        atr(&[1.0, 2.0], &[0.5], &[0.7, 1.5], 1);
    }

    #[test]
    fn annualized_volatility_values_and_edges() {
        // By hand: mean 0, sample variance (1e-4 + 1e-4) / 1 = 2e-4; sqrt(2e-4) * sqrt(4).
        let v = annualized_volatility(&[0.01, -0.01], 4.0);
        close_opt(v, 0.0282842712474619);
        assert_eq!(annualized_volatility(&[0.01], 252.0), None);
        assert_eq!(annualized_volatility(&[], 252.0), None);
        // reference: statistics.stdev(returns) * math.sqrt(252).
        let r = daily_returns(&AAPL_CLOSE);
        close_opt(annualized_volatility(&r, 252.0), 0.3762694816614239);
    }

    #[test]
    fn max_drawdown_values_and_edges() {
        // By hand: 120→90 is 25 %, but 130→60 is 70/130.
        let d = max_drawdown(&[100.0, 120.0, 90.0, 130.0, 110.0, 60.0, 80.0]).unwrap();
        close(d.depth, 70.0 / 130.0);
        assert_eq!((d.peak, d.trough), (3, 5));
        let up = max_drawdown(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((up.depth, up.peak, up.trough), (0.0, 0, 0));
        let tie = max_drawdown(&[100.0, 80.0, 100.0, 50.0]).unwrap(); // earliest equal peak
        assert_eq!((tie.depth, tie.peak, tie.trough), (0.5, 0, 3));
        assert_eq!(max_drawdown(&[]), None);
        // reference: Python running-peak scan; peak 19.60821 (day 0), trough 15.00179 (day 41).
        let d = max_drawdown(&AAPL_CLOSE).unwrap();
        close(d.depth, 0.23492302459020997);
        assert_eq!((d.peak, d.trough), (0, 41));
    }

    #[test]
    fn var_cvar_values_and_edges() {
        let r = [0.03, -0.05, 0.0, 0.01, -0.02];
        // By hand, sorted -0.05 -0.02 0 0.01 0.03. p = 0.25 → position 1 → q = -0.02; tail
        // {-0.05, -0.02}. p = 0.1 → position 0.4 → q = -0.05 + 0.4 * 0.03 = -0.038; tail {-0.05}.
        close_opt(historical_var(&r, 0.75), 0.02);
        close_opt(historical_cvar(&r, 0.75), 0.035);
        close_opt(historical_var(&r, 0.9), 0.038);
        close_opt(historical_cvar(&r, 0.9), 0.05);
        assert!(historical_var(&[], 0.95).is_none() && historical_cvar(&[], 0.95).is_none());
        assert_eq!(historical_var(&r, 1.5), None);
        // reference: Python numpy-style linear quantile of the 59 returns (pos = 58 * p),
        // CVaR = -statistics.fmean of returns <= q (3 returns at 95 %).
        let r = daily_returns(&AAPL_CLOSE);
        close_opt(historical_var(&r, 0.95), 0.028223833635299577);
        close_opt(historical_cvar(&r, 0.95), 0.06358645684437032);
        close_opt(historical_var(&r, 0.99), 0.07257268098670838);
        close_opt(historical_cvar(&r, 0.99), 0.12355767397521467);
    }

    #[test]
    fn beta_correlation_values_and_edges() {
        // By hand: an exact affine function of the market with slope 2 has beta 2, correlation 1.
        let market: Vec<f64> = (0..20).map(|i| f64::from((i * 7) % 11) / 100.0).collect();
        let asset: Vec<f64> = market.iter().map(|m| 2.0 * m + 0.001).collect();
        let b = beta_correlation(&asset, &market).unwrap();
        close(b.beta, 2.0);
        close(b.correlation, 1.0);
        assert_eq!(b.observations, 20);
        let inverse: Vec<f64> = market.iter().map(|m| -0.5 * m).collect();
        let b = beta_correlation(&inverse, &market).unwrap();
        close(b.beta, -0.5);
        close(b.correlation, -1.0);
        assert_eq!(beta_correlation(&asset[..19], &market[..19]), None);
        assert_eq!(beta_correlation(&asset, &market[..19]), None);
        assert_eq!(beta_correlation(&asset, &[0.01; 20]), None);
        // reference: Python, sample covariance / statistics.variance(goog) and
        // statistics.correlation over the 20 paired daily returns (the minimum accepted).
        let (a, g) = (daily_returns(&AAPL_CLOSE[..21]), daily_returns(&GOOG_CLOSE));
        let b = beta_correlation(&a, &g).unwrap();
        close(b.beta, -0.22950630402248268);
        close(b.correlation, -0.10664099873268199);
        assert_eq!(b.observations, 20);
        assert_eq!(beta_correlation(&a[1..], &g[1..]), None);
    }

    #[test]
    fn momentum_values_and_edges() {
        let v = [100.0, 105.0, 110.0, 121.0];
        close_opt(momentum(&v, 2), 121.0 / 105.0 - 1.0);
        close_opt(momentum(&v, 3), 0.21);
        assert_eq!(momentum(&v, 0), Some(0.0));
        assert_eq!((momentum(&v, 4), momentum(&v, usize::MAX)), (None, None));
        assert_eq!(momentum(&[], 0), None);
        assert_eq!(momentum(&[0.0, 1.0], 1), None);
        // reference: 15.80929 / 15.76429 - 1 (closes of days 59 and 39).
        close_opt(momentum(&AAPL_CLOSE, 20), 0.002854552916750519);
    }

    #[test]
    fn volume_trend_values_and_edges() {
        // By hand: last 2 average 20, all 6 average 80/6, ratio 1.5.
        let v = [10.0, 10.0, 10.0, 10.0, 20.0, 20.0];
        close_opt(volume_trend(&v, 2, 6), 0.5);
        close_opt(volume_trend(&v, 6, 2), -1.0 / 3.0);
        assert_eq!(volume_trend(&v, 2, 7), None);
        assert_eq!(volume_trend(&v, 0, 6), None);
        assert_eq!(volume_trend(&[0.0; 5], 2, 5), None);
    }

    #[test]
    fn distance_from_high_values_and_edges() {
        let (highs, closes) = ([10.0, 12.0, 11.0, 9.0], [9.5, 11.0, 10.5, 8.4]);
        close_opt(distance_from_high(&highs, &closes, 3), 8.4 / 12.0 - 1.0);
        close_opt(distance_from_high(&highs, &closes, 1), 8.4 / 9.0 - 1.0);
        close_opt(distance_from_high(&highs, &closes, 100), -0.3);
        assert_eq!(distance_from_high(&[5.0, 6.0], &[5.0, 6.0], 2), Some(0.0));
        assert_eq!(distance_from_high(&[], &[], 5), None);
        assert_eq!(distance_from_high(&highs, &closes, 0), None);
        assert_eq!(distance_from_high(&highs, &closes[..3], 3), None);
    }

    #[test]
    fn last_values() {
        assert_eq!(last(&[None, Some(1.0), Some(2.5)]), Some(2.5));
        assert_eq!((last(&[Some(1.0), None]), last(&[])), (None, None));
    }
}
