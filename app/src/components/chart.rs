//! The price chart: an inline SVG of the close with its 50- and 200-day averages, drawn from
//! the run's own data, the as-of date marked.

use domain::PricePoint;
use leptos::prelude::*;

const W: f64 = 640.0;
const H: f64 = 240.0;
const PAD_L: f64 = 8.0;
const PAD_R: f64 = 64.0;
const PAD_T: f64 = 12.0;
const PAD_B: f64 = 24.0;

/// SVG `points` for a series, skipping gaps: one string per unbroken run.
pub fn polylines(values: &[Option<f64>], lo: f64, hi: f64) -> Vec<String> {
    let n = values.len();
    let x = |i: usize| PAD_L + (W - PAD_L - PAD_R) * if n > 1 { i as f64 / (n - 1) as f64 } else { 0.5 };
    let y = |v: f64| PAD_T + (H - PAD_T - PAD_B) * (1.0 - if hi > lo { (v - lo) / (hi - lo) } else { 0.5 });
    let mut lines = Vec::new();
    let mut current = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => current.push(format!("{:.1},{:.1}", x(i), y(*v))),
            None if !current.is_empty() => lines.push(std::mem::take(&mut current).join(" ")),
            None => {}
        }
    }
    if !current.is_empty() {
        lines.push(current.join(" "));
    }
    lines
}

#[component]
pub fn PriceChart(symbol: String, points: Vec<PricePoint>) -> impl IntoView {
    if points.len() < 2 {
        return view! { <p class="muted">"Not enough data for a chart."</p> }.into_any();
    }
    let all = points.iter().flat_map(|p| [Some(p.close), p.sma50, p.sma200]).flatten();
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let close: Vec<Option<f64>> = points.iter().map(|p| Some(p.close)).collect();
    let sma50: Vec<Option<f64>> = points.iter().map(|p| p.sma50).collect();
    let sma200: Vec<Option<f64>> = points.iter().map(|p| p.sma200).collect();
    let first = points.first().expect("two points");
    let last = points.last().expect("two points");
    let label = format!(
        "{symbol} closing prices from {} to {}: from {:.2} to {:.2}, with 50- and 200-day moving averages.",
        first.date, last.date, first.close, last.close
    );
    let y_last = PAD_T + (H - PAD_T - PAD_B) * (1.0 - if hi > lo { (last.close - lo) / (hi - lo) } else { 0.5 });
    let x_last = W - PAD_R;
    let series = |values: &[Option<f64>], class: &'static str| {
        polylines(values, lo, hi)
            .into_iter()
            .map(|pts| view! { <polyline class=class points=pts fill="none"/> })
            .collect_view()
    };
    let title = label.clone();
    view! {
        <figure class="chart">
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=label>
                <title>{title}</title>
                <line class="axis" x1=PAD_L y1=H - PAD_B x2=W - PAD_R y2=H - PAD_B/>
                {series(&sma200, "sma200")}
                {series(&sma50, "sma50")}
                {series(&close, "close")}
                <line class="asof" x1=x_last y1=PAD_T x2=x_last y2=H - PAD_B/>
                <circle class="asof-dot" cx=x_last cy=y_last r="3.5"/>
                <text class="tick" x=W - PAD_R + 6.0 y=PAD_T + 8.0>{format!("{hi:.2}")}</text>
                <text class="tick" x=W - PAD_R + 6.0 y=H - PAD_B>{format!("{lo:.2}")}</text>
                <text class="tick" x=PAD_L y=H - 6.0>{first.date.to_string()}</text>
                <text class="tick" x=W - PAD_R y=H - 6.0 text-anchor="end">{format!("as of {}", last.date)}</text>
            </svg>
            <figcaption>
                <span class="key key-close">"Close"</span>
                <span class="key key-sma50">"50-day average"</span>
                <span class="key key-sma200">"200-day average"</span>
            </figcaption>
        </figure>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_lines_and_extremes_touch_the_edges() {
        let lines = polylines(&[None, Some(1.0), Some(3.0), None, Some(2.0)], 1.0, 3.0);
        assert_eq!(lines.len(), 2);
        // i=1 of 5 → x = 8 + 568 × 0.25 = 150; value at the bottom of the plot → y = 216.
        assert_eq!(lines[0], "150.0,216.0 292.0,12.0");
        assert_eq!(lines[1], "576.0,114.0");
    }
}
