//! "How it turned out" on a completed run's page: per horizon, the stock's return after the
//! as-of day, the index's, the excess, and whether the rating's direction was right. Rendered
//! on the server; a table, so it reads the same printed.

use domain::{HorizonOutcome, Outcome, Rating};
use leptos::prelude::*;

use crate::format::signed_percent;

#[component]
pub fn OutcomeView(outcome: Outcome) -> impl IntoView {
    let Outcome { symbol, rating, trading_day, benchmark, data_end, horizons, .. } = outcome;
    let index = if benchmark == "^GSPC" { "S&P 500".to_string() } else { benchmark.clone() };
    let rows = horizons.into_iter().map(|h| row(h, rating, data_end)).collect_view();
    view! {
        <section class="card outcome" aria-labelledby="outcome-heading" data-testid="outcome">
            <h2 id="outcome-heading">"How it turned out"</h2>
            <p class="muted">{format!(
                "{symbol} after the close of {trading_day}, the day this {} is as of, against the {index}; from the prices the analysts read.",
                rating.as_str()
            )}</p>
            <div class="table-wrap">
                <table class="outcome-table">
                    <thead><tr>
                        <th scope="col">"After"</th><th scope="col">{symbol.clone()}</th>
                        <th scope="col">{index.clone()}</th><th scope="col">"Excess"</th><th scope="col">"The call"</th>
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </section>
    }
}

fn row(h: HorizonOutcome, rating: Rating, data_end: chrono::NaiveDate) -> impl IntoView {
    let pct = |r: Option<f64>| r.map(signed_percent).unwrap_or_else(|| "—".into());
    let after = match h.date {
        Some(d) => format!("{} trading days ({d})", h.days),
        None => format!("{} trading days", h.days),
    };
    let call = match (h.stock_return, h.right) {
        (None, _) => format!("Not yet: the prices end on {data_end}"),
        (Some(_), None) => format!("{}: no direction to judge", rating.as_str()),
        (Some(_), Some(true)) => format!("{}: right", rating.as_str()),
        (Some(_), Some(false)) => format!("{}: wrong", rating.as_str()),
    };
    let verdict = match h.right {
        Some(true) => "right",
        Some(false) => "wrong",
        None => "none",
    };
    view! {
        <tr data-days=h.days data-right=verdict>
            <th scope="row">{after}</th>
            <td>{pct(h.stock_return)}</td>
            <td>{pct(h.benchmark_return)}</td>
            <td>{pct(h.excess)}</td>
            <td>{call}</td>
        </tr>
    }
}
