//! The plan to act on: its direction, entry, stop, target, horizon, size and risk with the
//! reason for each, and the trader's proposal beside it where the two differ. Every number is
//! the stored plan's, written by `domain::plan`'s formatters — the same the summary, the
//! reports and the Markdown export use. Rendered on the server only.

use domain::plan::{Levels, TradePlan, days, price, risk, size};
use domain::{Direction, Trade};
use leptos::prelude::*;

/// One row of the plan table: its name, how a plan writes it, and the final plan's reason.
struct Row {
    name: &'static str,
    id: &'static str,
    show: fn(&TradePlan) -> String,
    why: fn(&TradePlan) -> String,
}

fn level(p: &TradePlan, f: fn(&Levels) -> f64) -> String {
    p.levels.as_ref().map(|l| price(f(l))).unwrap_or_else(|| "none".into())
}

const ROWS: [Row; 7] = [
    Row { name: "Direction", id: "direction", show: |p| p.direction.label().into(), why: |p| p.why.direction.clone() },
    Row { name: "Entry", id: "entry", show: |p| level(p, |l| l.entry), why: |p| p.why.entry.clone() },
    Row { name: "Stop", id: "stop", show: |p| level(p, |l| l.stop), why: |p| p.why.stop.clone() },
    Row { name: "Target", id: "target", show: |p| level(p, |l| l.target), why: |p| p.why.target.clone() },
    Row { name: "Horizon", id: "horizon", show: |p| days(p.horizon_days), why: |p| p.why.horizon.clone() },
    Row { name: "Size", id: "size", show: |p| size(p.size_pct), why: |p| p.why.size.clone() },
    Row {
        name: "Risk",
        id: "risk",
        show: |p| risk(p.risk_pct),
        why: |p| {
            if p.is_flat() {
                "nothing at risk".into()
            } else {
                "of the portfolio if the stop is hit: size × distance to the stop ÷ entry".into()
            }
        },
    },
];

fn direction_class(d: Direction) -> &'static str {
    match d {
        Direction::Long => "plan-long",
        Direction::Short => "plan-short",
        Direction::Flat => "plan-flat",
    }
}

/// The plan's line with a capital: "Short at 410.17, stop 443.24, …".
pub fn headline(p: &TradePlan) -> String {
    let line = p.line();
    let mut chars = line.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[component]
pub fn PlanView(trade: Trade) -> impl IntoView {
    let plan = trade.plan.clone();
    // The proposal is shown only where it differs; a flat final plan hides no level it had.
    let proposed = trade.proposed.clone().filter(|_| !trade.changes.is_empty());
    let has_levels = !plan.is_flat() || proposed.as_ref().is_some_and(|p| !p.is_flat());
    let rows = ROWS
        .iter()
        .filter(|r| has_levels || !matches!(r.id, "entry" | "stop" | "target"))
        .map(|r| {
            let mine = (r.show)(&plan);
            let theirs = proposed.as_ref().map(|p| (r.show)(p));
            let changed = theirs.as_ref().is_some_and(|t| *t != mine);
            view! {
                <tr class=changed.then_some("changed")>
                    <th scope="row">{r.name}</th>
                    <td class="num" data-testid=format!("plan-{}", r.id)>{mine}</td>
                    {theirs.map(|t| view! { <td class="num proposed" data-label="Trader proposed">{t}</td> })}
                    <td class="why">{(r.why)(&plan)}</td>
                </tr>
            }
        })
        .collect_view();
    let proposed_head = proposed.is_some().then(|| view! { <th scope="col">"Trader proposed"</th> });
    let changes = (!trade.changes.is_empty()).then(|| {
        view! {
            <p class="muted plan-changes" data-testid="plan-changes">
                "Changed from the trader's proposal: "
                {trade
                    .changes
                    .iter()
                    .map(|c| {
                        let or_none = |s: &str| if s.is_empty() { "none".to_string() } else { s.to_string() };
                        format!("{} {} → {}", c.what, or_none(&c.from), or_none(&c.to))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")}
                "."
            </p>
        }
    });
    view! {
        <section class=format!("plan {}", direction_class(plan.direction)) data-testid="plan" aria-labelledby="plan-heading">
            <h3 id="plan-heading">"Plan"</h3>
            <p class="plan-line" data-testid="plan-line"><strong>{headline(&plan)}</strong></p>
            <table class="plan-table">
                <thead>
                    <tr>
                        <td></td>
                        <th scope="col">"Final"</th>
                        {proposed_head}
                        <th scope="col">"Why"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
            {changes}
        </section>
    }
}
