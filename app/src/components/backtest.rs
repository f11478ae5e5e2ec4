//! A backtest's page, piece by piece: where it stands, its grid of cells, and its scorecard
//! (hit rates per rating, the ratings strategy against its baselines, their equity).

use std::collections::BTreeSet;

use domain::Rating;
use domain::backtest::{BacktestCell, BacktestStatus, BacktestView, EquityCurves, Metrics, Scorecard};
use leptos::prelude::*;

use super::Table;
use super::chart::{Chart, Series, YAxis};
use crate::format::{percent, signed_percent};

fn rating_class(r: Rating) -> String {
    format!("rating-{}", r.as_str().to_ascii_lowercase())
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "—".into())
}

/// What it is, how far it is, the CSV download and, while it runs, Cancel.
#[component]
pub fn BacktestHeader(backtest: BacktestView) -> impl IntoView {
    let (b, s) = (&backtest, &backtest.spec);
    let horizons = s.horizons.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    let (status, label) = match b.status {
        BacktestStatus::Running => ("running", "Running"),
        BacktestStatus::Completed => ("completed", "Completed"),
        BacktestStatus::Cancelled => ("cancelled", "Cancelled"),
    };
    let finished = b.cells.iter().filter(|c| c.status.is_terminal()).count();
    let what = format!(
        "{} to {}, every {} trading days; horizons {horizons} trading days; model {}.",
        s.from, s.to, s.every_days, s.model_id
    );
    let cancel = (b.status == BacktestStatus::Running).then(|| {
        view! {
            <form method="post" action=format!("/backtests/{}/cancel", b.backtest_id)>
                <button type="submit" class="secondary">"Cancel backtest"</button>
            </form>
        }
    });
    view! {
        <section class="card">
            <h1>{format!("Backtest: {}", s.symbols.join(", "))}</h1>
            <p class="muted">{what}</p>
            <p class="backtest-status" data-status=status>{format!("{label} · {finished} of {} cells finished ({}%)", b.cells.len(), b.progress)}</p>
            <p><progress max="100" value=b.progress>{format!("{}%", b.progress)}</progress></p>
            <p><a href=format!("/backtests/{}/cells.csv", b.backtest_id) download>"Download the cells (CSV)"</a></p>
            {cancel}
        </section>
    }
}

/// One row per as-of date, one column per symbol (a grid grows by dates far more than by
/// symbols, and a page grows down better than across); each cell its rating, or its run's
/// status, linking to its run.
#[component]
pub fn CellGrid(symbols: Vec<String>, cells: Vec<BacktestCell>) -> impl IntoView {
    let dates: BTreeSet<_> = cells.iter().map(|c| c.as_of).collect();
    let cell = |c: &BacktestCell| {
        let (text, class) = match c.rating {
            Some(r) => (r.as_str(), rating_class(r)),
            None => (c.status.label(), "muted".into()),
        };
        view! { <td class=format!("cell {class}") data-label=c.symbol.clone() data-status=c.status.as_str()><a href=format!("/runs/{}", c.run_id)>{text}</a></td> }
            .into_any()
    };
    let rows = dates.iter().map(|d| {
        let row = symbols.iter().map(|s| cells.iter().find(|c| &c.symbol == s && c.as_of == *d).map(cell));
        view! { <tr><th scope="row">{d.to_string()}</th>{row.map(|c| c.unwrap_or_else(|| view! { <td></td> }.into_any())).collect_view()}</tr> }
    });
    view! {
        <section class="card">
            <h2>"Cells"</h2>
            <div class="table-wrap">
                <table class="backtest-grid">
                    <thead><tr><th scope="col">"As of"</th>{symbols.iter().map(|s| view! { <th scope="col">{s.clone()}</th> }).collect_view()}</tr></thead>
                    <tbody>{rows.collect_view()}</tbody>
                </table>
            </div>
        </section>
    }
}

fn metrics(name: &str, m: &Metrics) -> Vec<String> {
    let sharpe = or_dash(m.sharpe.map(|s| format!("{s:.2}")));
    vec![
        name.into(),
        signed_percent(m.cumulative_return),
        signed_percent(m.annualized_return),
        sharpe,
        signed_percent(-m.max_drawdown),
    ]
}

/// The scorecard: per rating and horizon, then the strategy against its baselines.
#[component]
pub fn ScorecardView(scorecard: Scorecard) -> impl IntoView {
    let card = scorecard;
    let scored: Vec<_> = card.by_rating.iter().filter(|s| s.count > 0).collect();
    let by_rating = scored.iter().map(|s| {
        let hit_rate = or_dash(s.hit_rate.map(percent));
        let (mean, alpha) = (or_dash(s.mean_return.map(signed_percent)), or_dash(s.call_alpha().map(signed_percent)));
        let count = if s.too_few() { format!("{} · too few to judge", s.count) } else { s.count.to_string() };
        vec![s.rating.as_str().into(), format!("{} d", s.horizon), count, hit_rate, mean, alpha]
    });
    let strategy = match (&card.strategy, &card.baselines) {
        (Some(strategy), Some(b)) => {
            let (mine, hold) = (strategy.cumulative_return, b.buy_and_hold.cumulative_return);
            let verdict = format!(
                "Following the ratings returned {} against Buy & Hold's {} on the same symbols and days: {} by {:.2} points.",
                signed_percent(mine),
                signed_percent(hold),
                if mine >= hold { "ahead" } else { "behind" },
                ((mine - hold) * 100.0).abs()
            );
            let rows = vec![
                metrics("Ratings strategy", strategy),
                metrics("Buy & Hold", &b.buy_and_hold),
                metrics("SMA crossover (20/50)", &b.sma_crossover),
                metrics("MACD (12, 26, 9)", &b.macd),
            ];
            view! {
                <h3>{format!("Following the ratings ({} on Underweight and Sell)", card.bearish.id())}</h3>
                <p class="strategy-verdict" data-testid="strategy-verdict">{verdict}</p>
                <Table class="strategy" heads=&["Strategy", "Cumulative", "Annualised", "Sharpe", "Max drawdown"] rows/>
                <EquityChart curves=card.curves.clone()/>
            }
            .into_any()
        }
        _ => view! { <p class="muted">"The strategy is measured once cells have finished."</p> }.into_any(),
    };
    let benchmark = format!(
        "Benchmark: {}. Returns from adjusted closes; Hold is counted but not scored. Alpha is the call's: \
             the stock's return over the benchmark's, turned round for Underweight and Sell, so positive is \
             good for every rating. Fewer than {} cells are too few to judge by.",
        card.benchmark.label(),
        domain::backtest::TOO_FEW_CELLS
    );
    view! {
        <section class="card scorecard">
            <h2>"Scorecard"</h2>
            <p class="muted">{benchmark}</p>
            {if scored.is_empty() {
                view! { <p class="muted" data-testid="by-rating-none">"None scored yet: no cell has finished with a rating."</p> }.into_any()
            } else {
                view! {
                    <Table class="by-rating" heads=&["Rating", "Horizon", "Count", "Hit rate", "Mean return", "Alpha of the call"]
                        rows=by_rating.collect() head_classes=scored.iter().map(|s| rating_class(s.rating)).collect()/>
                }
                .into_any()
            }}
            {strategy}
        </section>
    }
}

/// The four equity curves, from 1 on the first day; their figures are the table above.
#[component]
fn EquityChart(curves: EquityCurves) -> impl IntoView {
    let (Some(first), Some(last)) = (curves.dates.first(), curves.dates.last()) else { return ().into_any() };
    let title =
        format!("Equity of the ratings strategy against Buy & Hold, SMA crossover and MACD, from {first} to {last}");
    let line = |name, class, values: &[f64]| Series::line(name, class, values.iter().copied().map(Some).collect());
    let series = vec![
        line("Ratings strategy", "strategy", &curves.strategy),
        line("Buy & Hold", "buy-and-hold", &curves.buy_and_hold),
        line("SMA crossover", "sma-crossover", &curves.sma_crossover),
        line("MACD", "macd", &curves.macd),
    ];
    let ends: Vec<_> =
        series.iter().map(|s| format!("{} {:.2}", s.name, s.values.last().copied().flatten().unwrap_or(1.0))).collect();
    let description = format!("Each starts at 1.00 and ends at: {}.", ends.join(", "));
    let x = curves.dates.iter().map(|d| d.to_string()).collect();
    let axis = YAxis { reference: Some(1.0), ..YAxis::default() };
    view! { <Chart id="equity-chart" title description x series axis height=260.0/> }.into_any()
}
