//! What each analyst looks at: its key figures and the signals it reads from them.
//!
//! Key figures are taken from the data, not from a model, so they are always right. The
//! signals (each a score in [-1, 1] with a weight and a reason in words) are what the offline
//! model's rules conclude from; language models get the same figures and write their own view.

use domain::{AnalystKind, Figure, Stance};

use crate::format::{figure, level, pct, signed_pct, volume};
use crate::snapshot::MarketSnapshot;

/// One reading of the data, e.g. "price 12 % above its 200-day average: uptrend" → +1.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub score: f64,
    pub weight: f64,
    pub reason: String,
}

fn signal(score: f64, weight: f64, reason: String) -> Signal {
    Signal { score: score.clamp(-1.0, 1.0), weight, reason }
}

/// What RSI(14) says, the one reading every analyst who looks at it gives: over 70
/// overbought, under 30 oversold, else momentum with the side of 50 it is on.
pub fn rsi_reading(rsi: f64) -> (f64, String) {
    let (score, words) = if rsi > 70.0 {
        (-0.6, "overbought, a pullback is likely")
    } else if rsi < 30.0 {
        (0.6, "oversold, sellers may be exhausted")
    } else if rsi >= 50.0 {
        (0.4, "positive momentum")
    } else {
        (-0.4, "negative momentum")
    };
    (score, format!("RSI(14) is {rsi:.1}: {words}."))
}

/// What the analyst is asked to do, in a sentence (for prompts and the analysts endpoint).
pub fn focus(kind: AnalystKind) -> &'static str {
    match kind {
        AnalystKind::Invest => {
            "Judge the investment case from trend, momentum and valuation proxies (price against long averages and the 52-week range)."
        }
        AnalystKind::Risk => {
            "Judge how much could go wrong: volatility, drawdown, value at risk, expected shortfall and beta to the S&P 500."
        }
        AnalystKind::Sentiment => {
            "Judge market sentiment from price and volume behaviour (up days, up-day volume, volume trend, RSI extremes) and headline tone when headlines are given."
        }
        AnalystKind::Technical => {
            "Judge the technical picture: RSI, MACD, Bollinger bands and moving-average crossovers."
        }
    }
}

pub fn key_figures(kind: AnalystKind, s: &MarketSnapshot) -> Vec<Figure> {
    let px = |v: f64| level(v);
    let num1 = |v: f64| format!("{v:.1}");
    let num2 = |v: f64| format!("{v:.2}");
    match kind {
        AnalystKind::Invest => vec![
            figure("Last close", Some(s.last_close), px),
            figure("Momentum 3M", s.momentum_3m, signed_pct),
            figure("Momentum 12M", s.momentum_12m, signed_pct),
            figure("vs 200-day average", s.sma200.map(|m| s.last_close / m - 1.0), signed_pct),
            figure("From 52-week high", s.distance_from_high, signed_pct),
        ],
        AnalystKind::Risk => vec![
            figure("Volatility (1Y, annualised)", s.volatility_1y, pct),
            figure("Max drawdown (1Y)", s.max_drawdown_1y, |v| signed_pct(-v)),
            figure("VaR 95% (1 day)", s.var95, pct),
            figure("CVaR 95% (1 day)", s.cvar95, pct),
            figure("Beta vs S&P 500", s.beta, num2),
        ],
        AnalystKind::Sentiment => vec![
            figure("Up days (20D)", s.up_days_20, pct),
            figure("Up/down volume (20D)", s.up_down_volume_20, num2),
            figure("Volume trend (20D vs 60D)", s.volume_trend, signed_pct),
            figure("Momentum 1M", s.momentum_1m, signed_pct),
            figure("Average volume (20D)", s.avg_volume_20, volume),
        ],
        AnalystKind::Technical => vec![
            figure("RSI(14)", s.rsi14, num1),
            figure("MACD histogram", s.macd_histogram, num2),
            figure("Bollinger %B", s.percent_b, num2),
            figure("50-day average", s.sma50, px),
            figure("ATR(14)", s.atr_percent, pct),
        ],
    }
}

pub fn signals(kind: AnalystKind, s: &MarketSnapshot) -> Vec<Signal> {
    let mut out = Vec::new();
    match kind {
        AnalystKind::Invest => {
            if let Some(m) = s.sma200 {
                let gap = s.last_close / m - 1.0;
                if gap > 0.25 {
                    out.push(signal(
                        -0.3,
                        1.0,
                        format!(
                            "The price is {} above its 200-day average: a strong trend, but stretched.",
                            signed_pct(gap)
                        ),
                    ));
                } else if gap > 0.0 {
                    out.push(signal(
                        1.0,
                        1.5,
                        format!(
                            "The price is {} above its 200-day average: the long-term trend is up.",
                            signed_pct(gap)
                        ),
                    ));
                } else {
                    out.push(signal(
                        -1.0,
                        1.5,
                        format!("The price is {} below its 200-day average: the long-term trend is down.", pct(-gap)),
                    ));
                }
            }
            if let (Some(f), Some(sl)) = (s.sma50, s.sma200) {
                let up = f > sl;
                out.push(signal(
                    if up { 0.6 } else { -0.6 },
                    1.0,
                    format!(
                        "The 50-day average ({}) is {} the 200-day average ({}).",
                        level(f),
                        if up { "above" } else { "below" },
                        level(sl)
                    ),
                ));
            }
            if let Some(m) = s.momentum_12m {
                out.push(signal(m / 0.3, 1.0, format!("Over twelve months the stock returned {}.", signed_pct(m))));
            }
            if let Some(m) = s.momentum_3m {
                out.push(signal(m / 0.15, 0.75, format!("Over three months it returned {}.", signed_pct(m))));
            }
            if let Some(d) = s.distance_from_high {
                if d > -0.05 {
                    out.push(signal(
                        0.5,
                        0.75,
                        format!("It trades {} from its 52-week high: buyers are in control.", signed_pct(d)),
                    ));
                } else if d < -0.3 {
                    out.push(signal(
                        -0.6,
                        0.75,
                        format!("It trades {} below its 52-week high: a broken trend until proven otherwise.", pct(-d)),
                    ));
                } else {
                    out.push(signal(0.0, 0.5, format!("It trades {} below its 52-week high.", pct(-d))));
                }
            }
        }
        AnalystKind::Risk => {
            if let Some(v) = s.volatility_1y {
                let (score, words) = if v < 0.25 {
                    (0.6, "low")
                } else if v < 0.45 {
                    (0.0, "moderate")
                } else {
                    (-0.8, "high")
                };
                out.push(signal(
                    score,
                    1.5,
                    format!("Annualised volatility over the last year is {} ({words}).", pct(v)),
                ));
            }
            if let Some(d) = s.max_drawdown_1y {
                let score = if d < 0.1 {
                    0.5
                } else if d < 0.25 {
                    0.0
                } else {
                    -(d / 0.5).min(1.0)
                };
                let when = match (s.drawdown_peak, s.drawdown_trough) {
                    (Some(p), Some(t)) if d > 0.0 => format!(" (from {p} to {t})"),
                    _ => String::new(),
                };
                out.push(signal(score, 1.0, format!("The worst fall within the last year was {}{when}.", pct(d))));
            }
            if let (Some(v), Some(c)) = (s.var95, s.cvar95) {
                let score = if v < 0.02 {
                    0.4
                } else if v < 0.035 {
                    0.0
                } else {
                    -0.7
                };
                out.push(signal(
                    score,
                    1.0,
                    format!(
                        "On one day in twenty the stock lost at least {}; on those days {} on average.",
                        pct(v),
                        pct(c)
                    ),
                ));
            }
            match (s.beta, &s.benchmark_note) {
                (Some(b), _) => {
                    let score = if b < 0.8 {
                        0.4
                    } else if b < 1.3 {
                        0.0
                    } else {
                        -0.5
                    };
                    out.push(signal(
                        score,
                        0.75,
                        format!(
                            "Beta to the S&P 500 is {b:.2} (correlation {:.2}): it moves {} the market.",
                            s.correlation.unwrap_or(0.0),
                            if b > 1.2 {
                                "more than"
                            } else if b < 0.8 {
                                "less than"
                            } else {
                                "about with"
                            }
                        ),
                    ));
                }
                (None, Some(note)) => out.push(signal(0.0, 0.0, note.clone())),
                (None, None) => {}
            }
        }
        AnalystKind::Sentiment => {
            if let Some(u) = s.up_days_20 {
                out.push(signal((u - 0.5) / 0.2, 1.0, format!("{} of the last 20 sessions closed higher.", pct(u))));
            }
            if let Some(r) = s.up_down_volume_20 {
                out.push(signal(
                    (r - 1.0) / 0.6,
                    1.0,
                    format!(
                        "Volume on up days was {r:.2}× the volume on down days: {}.",
                        if r > 1.1 {
                            "accumulation"
                        } else if r < 0.9 {
                            "distribution"
                        } else {
                            "no clear pressure"
                        }
                    ),
                ));
            }
            if let Some(v) = s.volume_trend {
                let direction = s.momentum_1m.unwrap_or(0.0).signum();
                out.push(signal(
                    direction * (v / 0.5).clamp(-1.0, 1.0),
                    0.5,
                    format!("Recent volume is {} against the 60-day average.", signed_pct(v)),
                ));
            }
            if let Some(rsi) = s.rsi14 {
                let (score, reason) = rsi_reading(rsi);
                out.push(signal(score, 0.75, reason));
            }
            if let Some(m) = s.momentum_1m {
                out.push(signal(m / 0.08, 0.75, format!("The last month returned {}.", signed_pct(m))));
            }
            if !s.headlines.is_empty() {
                let mean = s.headlines.iter().map(|h| h.score).sum::<f64>() / s.headlines.len() as f64;
                out.push(signal(
                    mean / 0.3,
                    1.5,
                    format!(
                        "The tone of {} recent headlines averages {mean:+.2} (VADER compound, -1 to 1).",
                        s.headlines.len()
                    ),
                ));
            }
        }
        AnalystKind::Technical => {
            if let Some(rsi) = s.rsi14 {
                let (score, reason) = rsi_reading(rsi);
                out.push(signal(score, 1.0, reason));
            }
            if let (Some(m), Some(sig), Some(h)) = (s.macd, s.macd_signal, s.macd_histogram) {
                let up = h > 0.0;
                out.push(signal(
                    if up { 0.7 } else { -0.7 },
                    1.0,
                    format!("MACD ({m:.2}) is {} its signal line ({sig:.2}).", if up { "above" } else { "below" }),
                ));
            }
            if let Some(b) = s.percent_b {
                let (score, words) = if b > 1.0 {
                    (-0.5, "above the upper band: stretched")
                } else if b < 0.0 {
                    (0.5, "below the lower band: stretched to the downside")
                } else if b > 0.5 {
                    (0.3, "in the upper half of the bands")
                } else {
                    (-0.3, "in the lower half of the bands")
                };
                out.push(signal(score, 0.75, format!("The close is {words} (%B {b:.2}).")));
            }
            if let Some(m) = s.sma50 {
                let above = s.last_close > m;
                out.push(signal(
                    if above { 0.5 } else { -0.5 },
                    0.75,
                    format!(
                        "The close is {} the 50-day average ({}).",
                        if above { "above" } else { "below" },
                        level(m)
                    ),
                ));
            }
            if let Some(c) = &s.crossover {
                let golden = c.kind == "golden";
                out.push(signal(
                    if golden { 0.8 } else { -0.8 },
                    1.0,
                    format!(
                        "A {} cross (50-day over 200-day) happened on {}, {} sessions ago.",
                        if golden { "golden" } else { "death" },
                        c.date,
                        c.days_ago
                    ),
                ));
            }
        }
    }
    out
}

/// The weighted mean score of the signals, the share of weight that had data, and the
/// resulting stance and confidence.
pub fn weigh(signals: &[Signal]) -> (f64, Stance, f64) {
    let total: f64 = signals.iter().map(|s| s.weight).sum();
    if total == 0.0 {
        return (0.0, Stance::Neutral, 0.3);
    }
    let score = signals.iter().map(|s| s.score * s.weight).sum::<f64>() / total;
    // Agreement: how much of the weight points the same way as the result.
    let agree = signals.iter().filter(|s| s.score * score > 0.0).map(|s| s.weight).sum::<f64>() / total;
    let stance = if score > 0.2 {
        Stance::Bullish
    } else if score < -0.2 {
        Stance::Bearish
    } else {
        Stance::Neutral
    };
    let confidence = (0.35 + 0.35 * score.abs() + 0.25 * agree).clamp(0.3, 0.9);
    (score, stance, confidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighing_is_a_weighted_mean_with_bounded_confidence() {
        let sig = |score, weight| Signal { score, weight, reason: String::new() };
        let (score, stance, conf) = weigh(&[sig(1.0, 1.0), sig(0.5, 2.0), sig(-1.0, 1.0)]);
        assert!((score - 0.25).abs() < 1e-12);
        assert_eq!(stance, Stance::Bullish);
        // 0.35 + 0.35 × 0.25 + 0.25 × 0.75
        assert!((conf - 0.625).abs() < 1e-12);
        assert_eq!(weigh(&[]).1, Stance::Neutral);
        assert_eq!(weigh(&[sig(-0.9, 1.0)]).1, Stance::Bearish);
    }
}
