//! The site's one chart: an inline SVG drawn on the server, no script.
//!
//! A chart is a few [`Series`] over the same x positions (dates, hours). A missing value
//! (`None`) leaves a gap: a line breaks there into separate `<polyline>`s (a point alone is a
//! dot), a bar is left out. The y axis has rounded ticks and grid lines, the x axis some of the
//! positions' labels; more than one series gets a legend. The SVG is an image named by its
//! title and described by a sentence of its figures (for assistive technology). The geometry
//! is a plain function, [`layout`], tested with exact values; the component writes it out.

use leptos::prelude::*;

/// The width of every chart, in SVG units; the height is the chart's own.
const W: f64 = 640.0;
const PAD_TOP: f64 = 12.0;
const PAD_RIGHT: f64 = 16.0;
/// Room for the x labels under the plot.
const PAD_BOTTOM: f64 = 24.0;
/// About how wide a character of a tick label is at its largest: phones draw ticks at 18
/// units (about 10 px once the chart is scaled to their width).
const CHAR_W: f64 = 10.8;
/// The x positions labelled at most.
const X_LABELS: usize = 5;

/// One line, or one set of bars. Of lines, the first is the main one: drawn over the others,
/// first in the legend, and the one the as-of mark dots. Bars stand from zero, under the
/// lines, a later series over an earlier (the failed part of the finished runs).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its name in the legend, and its `data-series`.
    pub name: String,
    /// The class giving it its colour and dash (`style/main.css`, under `.chart`).
    pub class: &'static str,
    pub bars: bool,
    /// One per x position; `None` where it has no value.
    pub values: Vec<Option<f64>>,
}

impl Series {
    pub fn line(name: impl Into<String>, class: &'static str, values: Vec<Option<f64>>) -> Self {
        Self { name: name.into(), class, bars: false, values }
    }

    pub fn bars(name: impl Into<String>, class: &'static str, values: Vec<Option<f64>>) -> Self {
        Self { name: name.into(), class, bars: true, values }
    }
}

/// How the y axis reads.
#[derive(Debug, Clone, Copy)]
pub struct YAxis {
    /// Writes a tick's value.
    pub format: fn(f64) -> String,
    /// Starts at zero (bars always do).
    pub from_zero: bool,
    /// Counts: ticks on whole numbers.
    pub whole: bool,
    /// A value drawn as a dashed reference line (the starting equity, 1).
    pub reference: Option<f64>,
}

impl Default for YAxis {
    fn default() -> Self {
        Self { format: |v| format!("{v:.2}"), from_zero: false, whole: false, reference: None }
    }
}

/// A chart laid out in SVG units.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Where the plot starts (right of the y labels) and ends (above the x labels).
    pub left: f64,
    pub bottom: f64,
    /// y ticks: value and height.
    pub ticks: Vec<(f64, f64)>,
    /// x labels: where, what, `text-anchor`, and whether a narrow screen leaves it out.
    pub x_labels: Vec<(f64, String, &'static str, bool)>,
    pub reference: Option<f64>,
    /// Per series: its unbroken runs of points, or its bars.
    pub lines: Vec<Vec<Vec<(f64, f64)>>>,
    pub bars: Vec<Vec<Bar>>,
    /// The last position's x, and the first series' point there.
    pub last: (f64, Option<f64>),
}

/// A bar: x, y, width, height, and the position it stands for.
pub type Bar = (f64, f64, f64, f64, usize);

/// Rounded ticks covering `lo..=hi`: about four steps of 1, 2 or 5 times a power of ten (at
/// least 1 when `whole`).
pub fn ticks(lo: f64, hi: f64, whole: bool) -> Vec<f64> {
    let pad = if whole { 1.0 } else { (lo.abs() * 0.05).max(0.01) };
    let (lo, hi) = match hi - lo {
        d if d > 1e-9 => (lo, hi),
        _ if lo == 0.0 => (0.0, 1.0),
        _ => (lo - pad, hi + pad),
    };
    let raw = (hi - lo) / 4.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|s| *s >= raw * 0.999).unwrap_or(power);
    let step = if whole { step.max(1.0).round() } else { step };
    ((lo / step + 1e-9).floor() as i64..=(hi / step - 1e-9).ceil() as i64).map(|k| k as f64 * step).collect()
}

/// Lays out `series` over the positions labelled `x`, in a chart `height` high.
pub fn layout(x: &[String], series: &[Series], axis: &YAxis, height: f64) -> Layout {
    let n = x.len().max(1);
    let bars = series.iter().any(|s| s.bars);
    let zero = (axis.from_zero || bars).then_some(0.0);
    let values = series.iter().flat_map(|s| s.values.iter().flatten().copied()).chain(axis.reference).chain(zero);
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let tick_values = if lo.is_finite() { ticks(lo, hi, axis.whole) } else { ticks(0.0, 0.0, true) };
    let (lo, hi) = (tick_values[0], tick_values[tick_values.len() - 1]);
    let widest = tick_values.iter().map(|v| (axis.format)(*v).chars().count()).max().unwrap_or(1);
    let (left, bottom) = ((widest as f64 * CHAR_W + 12.0).round(), height - PAD_BOTTOM);
    let (plot_w, slot) = (W - PAD_RIGHT - left, (W - PAD_RIGHT - left) / n as f64);
    // Bars sit in slots, lines through their middles; lines alone run edge to edge.
    let x_of = |i: usize| match (bars, n) {
        (true, _) => left + slot * (i as f64 + 0.5),
        (false, 1) => left + plot_w / 2.0,
        (false, _) => left + plot_w * i as f64 / (n - 1) as f64,
    };
    let y_of = |v: f64| PAD_TOP + (bottom - PAD_TOP) * (hi - v) / (hi - lo);
    let labelled: Vec<usize> = match n {
        n if n <= X_LABELS => (0..x.len()).collect(),
        n => (0..X_LABELS).map(|k| (k * (n - 1) + (X_LABELS - 1) / 2) / (X_LABELS - 1)).collect(),
    };
    let x_labels = labelled.iter().enumerate().map(|(k, &i)| {
        let anchor = if bars || !(i == 0 || i == n - 1) {
            "middle"
        } else if i == 0 {
            "start"
        } else {
            "end"
        };
        (x_of(i), x[i].clone(), anchor, k % 2 == 1)
    });
    let indexed = |s: &Series| s.values.iter().copied().enumerate().collect::<Vec<_>>();
    let lines = series.iter().map(|s| {
        let points = indexed(s);
        let runs = points.split(|(_, v)| v.is_none()).filter(|run| !run.is_empty());
        runs.map(|run| run.iter().map(|&(i, v)| (x_of(i), y_of(v.unwrap_or_default()))).collect()).collect()
    });
    let bar = |(i, v): (usize, f64)| {
        (x_of(i) - slot * 0.4, y_of(v.max(0.0)), slot * 0.8, y_of(v.min(0.0)) - y_of(v.max(0.0)), i)
    };
    let bar_sets = series.iter().map(|s| {
        let drawn = indexed(s).into_iter().filter_map(|(i, v)| v.filter(|v| s.bars && *v != 0.0).map(|v| (i, v)));
        drawn.map(bar).collect()
    });
    Layout {
        left,
        bottom,
        ticks: tick_values.iter().map(|v| (*v, y_of(*v))).collect(),
        x_labels: x_labels.collect(),
        reference: axis.reference.map(y_of),
        lines: series.iter().zip(lines).map(|(s, runs)| if s.bars { Vec::new() } else { runs }).collect(),
        bars: bar_sets.collect(),
        last: (x_of(n - 1), series.first().and_then(|s| s.values.get(n - 1).copied().flatten()).map(y_of)),
    }
}

/// A coordinate as written: to a tenth of a unit, which no screen shows finer.
fn at(v: f64) -> String {
    format!("{v:.1}")
}

/// A chart of `series` over the positions labelled `x`. `id` names it, unique on its page: the
/// class of its `<svg>` and the ids of its title and description. `title` says what it shows,
/// `description` what it says; `mark_last` marks the last position (the as-of date).
#[component]
pub fn Chart(
    id: &'static str,
    title: String,
    description: String,
    x: Vec<String>,
    series: Vec<Series>,
    #[prop(optional)] axis: YAxis,
    #[prop(default = 240.0)] height: f64,
    #[prop(optional)] mark_last: bool,
) -> impl IntoView {
    let plot = layout(&x, &series, &axis, height);
    let (left, right, bottom) = (plot.left, W - PAD_RIGHT, plot.bottom);
    let line = |class: &'static str, y: f64| view! { <line class=class x1=at(left) y1=at(y) x2=at(right) y2=at(y)/> };
    let grid = plot.ticks.iter().map(|&(v, y)| {
        view! { {line("grid", y)} <text class="tick" x=at(left - 6.0) y=at(y + 4.0) text-anchor="end">{(axis.format)(v)}</text> }
    });
    let x_labels = plot.x_labels.iter().map(|(x, label, anchor, minor)| {
        let class = if *minor { "tick minor" } else { "tick" };
        view! { <text class=class x=at(*x) y=at(height - 6.0) text-anchor=*anchor>{label.clone()}</text> }
    });
    let bars = series.iter().zip(&plot.bars).flat_map(|(s, bars)| {
        bars.iter().map(|&(x1, y1, w, h, i)| {
            let tip = format!("{} — {}: {}", x[i], s.name, s.values[i].map(axis.format).unwrap_or_default());
            view! {
                <rect class=format!("column {}", s.class) data-series=s.name.clone() x=at(x1) y=at(y1) width=at(w) height=at(h)>
                    <title>{tip}</title>
                </rect>
            }
        })
    });
    // The main line last, over the others.
    let lines = series.iter().zip(&plot.lines).rev().flat_map(|(s, runs)| {
        runs.iter().map(|run| match run.as_slice() {
            [(cx, cy)] => {
                view! { <circle class=s.class data-series=s.name.clone() cx=at(*cx) cy=at(*cy) r="2.5"/> }.into_any()
            }
            _ => {
                let points = run.iter().map(|(x, y)| format!("{},{}", at(*x), at(*y))).collect::<Vec<_>>().join(" ");
                view! { <polyline class=s.class data-series=s.name.clone() points=points fill="none"/> }.into_any()
            }
        })
    });
    let (lx, ly) = plot.last;
    let last = mark_last.then(|| {
        view! {
            <line class="asof" x1=at(lx) y1=at(PAD_TOP) x2=at(lx) y2=at(bottom)/>
            {ly.map(|ly| view! { <circle class=format!("asof-dot {}", series[0].class) cx=at(lx) cy=at(ly) r="3.5"/> })}
        }
    });
    let legend = (series.len() > 1).then(|| {
        let keys = series.iter().map(|s| {
            let class = format!("key {}{}", if s.bars { "key-column " } else { "" }, s.class);
            view! { <span class=class>{s.name.clone()}</span> }
        });
        view! { <figcaption>{keys.collect_view()}</figcaption> }
    });
    let (title_id, desc_id) = (format!("{id}-title"), format!("{id}-desc"));
    let (labelled_by, described_by) = (title_id.clone(), desc_id.clone());
    view! {
        <figure class="chart">
            <svg class=id viewBox=format!("0 0 {W} {height}") role="img" aria-labelledby=labelled_by aria-describedby=described_by>
                <title id=title_id>{title}</title>
                <desc id=desc_id>{description}</desc>
                {grid.collect_view()}
                {plot.reference.map(|y| line("reference", y))}
                {line("axis", bottom)}
                <line class="axis" x1=at(left) y1=at(PAD_TOP) x2=at(left) y2=at(bottom)/>
                {x_labels.collect_view()}
                {bars.collect_view()}
                {lines.collect_view()}
                {last}
            </svg>
            {legend}
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i}")).collect()
    }

    #[test]
    fn ticks_are_round_and_cover_the_values() {
        let t = |lo, hi, whole| ticks(lo, hi, whole).into_iter().map(|v| (v * 1e6).round() / 1e6).collect::<Vec<_>>();
        assert_eq!(t(0.0, 10.0, false), [0.0, 5.0, 10.0]);
        assert_eq!(t(0.93, 1.18, false), [0.9, 1.0, 1.1, 1.2]);
        assert_eq!(t(101.3, 178.9, false), [100.0, 120.0, 140.0, 160.0, 180.0]);
        assert_eq!(t(0.1, 0.3, false), [0.1, 0.15, 0.2, 0.25, 0.3]);
        assert_eq!(t(0.0, 3.0, true), [0.0, 1.0, 2.0, 3.0]);
        // Counts never tick at halves; a flat series still gets an axis around it.
        assert_eq!(t(0.0, 1.0, true), [0.0, 1.0]);
        assert_eq!(t(0.0, 0.0, true), [0.0, 1.0]);
        assert_eq!(t(1.0, 1.0, false), [0.95, 1.0, 1.05]);
    }

    /// A missing value breaks a line into separate runs of points (a point alone is a run of
    /// one, drawn as a dot); the extremes sit on the top and bottom ticks.
    #[test]
    fn gaps_split_lines() {
        let s = Series::line("p50", "p50", vec![None, Some(0.0), Some(10.0), None, Some(5.0)]);
        let plot = layout(&labels(5), &[s], &YAxis { format: |v| format!("{v:.0}"), ..YAxis::default() }, 240.0);
        // Labels of at most 2 characters: the plot starts at 2 × 10.8 + 12 = 33.6, rounded;
        // x runs to 624 (590 wide) in 4 steps, y from 12 (10) to 216 (0).
        assert_eq!(plot.left, 34.0);
        assert_eq!(plot.lines[0], vec![vec![(181.5, 216.0), (329.0, 12.0)], vec![(624.0, 114.0)]]);
        assert_eq!(plot.ticks.iter().map(|t| t.0).collect::<Vec<_>>(), [0.0, 5.0, 10.0]);
        assert_eq!(plot.last, (624.0, Some(114.0)));
    }

    /// Bars stand from zero in their slot; a zero or missing value draws none; lines in the
    /// same chart pass through the middles of the slots.
    #[test]
    fn bars_stand_in_slots_from_zero() {
        let axis = YAxis { format: |v| format!("{v:.0}"), whole: true, ..YAxis::default() };
        let finished = Series::bars("finished", "finished", vec![Some(4.0), Some(0.0), None, Some(2.0)]);
        let line = Series::line("p50", "p50", vec![Some(1.0), None, None, None]);
        let plot = layout(&labels(4), &[finished, line], &axis, 180.0);
        // Labels of one character: the plot starts at 23; slots of (624 - 23) / 4 = 150.25,
        // bars 80 % of them, centred.
        let tenth = |v: f64| (v * 10.0).round() / 10.0;
        let (x, y, w, h, i) = plot.bars[0][0];
        assert_eq!((i, tenth(x), y, tenth(w), h), (0, 38.0, 12.0, 120.2, 144.0));
        assert_eq!(plot.bars[0].iter().map(|b| b.4).collect::<Vec<_>>(), [0, 3]);
        assert_eq!(plot.lines[1][0][0].0, 23.0 + 150.25 / 2.0);
        // Every position is labelled when there are few, centred under its slot.
        assert_eq!(plot.x_labels.iter().map(|l| l.2).collect::<Vec<_>>(), ["middle"; 4]);
    }

    /// Five of many positions are labelled, from the first to the last; a narrow screen keeps
    /// every other one.
    #[test]
    fn long_axes_label_five_positions() {
        let s = Series::line("close", "close", (0..250).map(|i| Some(i as f64)).collect());
        let plot = layout(&labels(250), &[s], &YAxis::default(), 240.0);
        let named: Vec<&str> = plot.x_labels.iter().map(|l| l.1.as_str()).collect();
        assert_eq!(named, ["d0", "d62", "d125", "d187", "d249"]);
        assert_eq!((plot.x_labels[0].2, plot.x_labels[4].2), ("start", "end"));
        assert_eq!(plot.x_labels.iter().map(|l| l.3).collect::<Vec<_>>(), [false, true, false, true, false]);
    }
}
