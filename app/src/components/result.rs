//! The final assessment, verdict first: rating and confidence, the plan, the summary, then the
//! chart with the plan's levels, the risks and figures, one card per analyst with its report,
//! and the team's debates.

use domain::plan::price;
use domain::{AnalysisResult, PricePoint, RULE_BASED_NOTE, Rating, Stance, TradePlan};
use leptos::prelude::*;

use super::chart::{Chart, Series};
use super::plan::PlanView;
use super::team::TeamView;
use crate::format::{duration_ms, percent};
use crate::markdown::Markdown;

fn rating_class(r: Rating) -> &'static str {
    match r {
        Rating::Buy => "rating-buy",
        Rating::Overweight => "rating-overweight",
        Rating::Hold => "rating-hold",
        Rating::Underweight => "rating-underweight",
        Rating::Sell => "rating-sell",
        Rating::Review => "rating-review",
    }
}

fn stance_icon(s: Stance) -> &'static str {
    match s {
        Stance::Bullish => "▲",
        Stance::Neutral => "◆",
        Stance::Bearish => "▼",
    }
}

/// Rendered on the server only: none of this is in the WASM bundle.
#[component]
pub fn ResultView(
    result: AnalysisResult,
    duration: Option<u64>,
    /// Where the owner downloads the result as Markdown (`/runs/<id>/report.md`).
    #[prop(optional)]
    markdown: Option<String>,
) -> impl IntoView {
    let r = result;
    view! {
        <section class="result" aria-labelledby="result-heading" data-testid="result">
            <div class="result-head">
                <h2 id="result-heading">"Final assessment"</h2>
                <p class=format!("rating {}", rating_class(r.rating)) data-testid="rating">
                    <span class="rating-label">"Rating"</span>
                    <span class="rating-value">{r.rating.as_str()}</span>
                </p>
                <p class="confidence">"Confidence " <strong>{percent(r.confidence)}</strong></p>
            </div>
            {r.trade.clone().map(|trade| view! { <PlanView trade/> })}
            <p class="summary" data-testid="summary">{r.summary.clone()}</p>
            <PriceChart symbol=r.symbol.clone() points=r.chart.clone() plan=r.trade.as_ref().map(|t| t.plan.clone())/>
            <div class="result-grid">
                <div>
                    <h3>"Key risks"</h3>
                    <ul class="risks">{r.key_risks.iter().map(|k| view! { <li>{k.clone()}</li> }).collect_view()}</ul>
                </div>
                <div>
                    <h3>"Figures as of " {r.as_of.to_string()}</h3>
                    <table class="figures">
                        <tbody>
                            {r.figures.iter().map(|f| view! { <tr><th scope="row">{f.label.clone()}</th><td>{f.display.clone()}</td></tr> }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </div>
            <h3>"Analysts"</h3>
            <div class="analyst-cards">
                {r.reports
                    .iter()
                    .map(|a| {
                        view! {
                            <article class="analyst-card" data-analyst=a.analyst.id()>
                                <header>
                                    <h4>{a.analyst.step_name()}</h4>
                                    <span class=format!("stance stance-{}", a.stance.as_str())>
                                        <span aria-hidden="true">{stance_icon(a.stance)}</span>
                                        " " {a.stance.as_str()} " · " {percent(a.confidence)}
                                    </span>
                                </header>
                                <dl class="key-figures">
                                    {a.key_figures.iter().map(|f| view! { <div><dt>{f.label.clone()}</dt><dd>{f.display.clone()}</dd></div> }).collect_view()}
                                </dl>
                                <Markdown source=a.report.clone()/>
                            </article>
                        }
                    })
                    .collect_view()}
            </div>
            {r.team.clone().map(|team| {
                let proposed = r.trade.as_ref().and_then(|t| t.proposed.clone());
                view! { <TeamView team proposed/> }
            })}
            {r.rule_based.then(|| view! { <p class="rule-based muted" data-testid="rule-based">{RULE_BASED_NOTE}</p> })}
            <p class="run-meta muted">
                "Model " <code>{r.model_id.clone()}</code>
                {r.rule_based.then_some(" (rule-based)")}
                " · " {duration.map(duration_ms).unwrap_or_default()}
                " · " {r.llm_calls} " model calls"
                " · " {r.tokens.total()} " tokens"
                {r.cost_usd.map(|c| format!(" · ≈ ${c:.4}"))}
                " · data " {r.as_of.to_string()}
                {markdown.map(|href| view! { " · " <a href=href download="">"Markdown"</a> })}
            </p>
        </section>
    }
}

/// The close with its 50- and 200-day averages, up to the as-of date (marked), and the plan's
/// entry, stop and target across it.
#[component]
fn PriceChart(symbol: String, points: Vec<PricePoint>, plan: Option<TradePlan>) -> impl IntoView {
    let [first, .., last] = points.as_slice() else {
        return view! { <p class="muted">"Not enough data for a chart."</p> }.into_any();
    };
    let closes = points.iter().map(|p| p.close);
    let (lo, hi) = closes.fold((f64::MAX, f64::MIN), |(lo, hi), c| (lo.min(c), hi.max(c)));
    let title =
        format!("{symbol} closing prices from {} to {}, with 50- and 200-day moving averages", first.date, last.date);
    let mut description = format!(
        "The close went from {} to {}, between {} and {}.",
        price(first.close),
        price(last.close),
        price(lo),
        price(hi)
    );
    let mut series = vec![
        Series::line("Close", "close", points.iter().map(|p| Some(p.close)).collect()),
        Series::line("50-day average", "sma50", points.iter().map(|p| p.sma50).collect()),
        Series::line("200-day average", "sma200", points.iter().map(|p| p.sma200).collect()),
    ];
    if let Some(l) = plan.as_ref().and_then(|p| p.levels) {
        description.push_str(&format!(
            " The plan enters at {}, stops at {} and aims at {}.",
            price(l.entry),
            price(l.stop),
            price(l.target)
        ));
        for (name, class, value) in
            [("Entry", "plan-entry", l.entry), ("Stop", "plan-stop", l.stop), ("Target", "plan-target", l.target)]
        {
            series.push(Series::line(format!("{name} {}", price(value)), class, vec![Some(value); points.len()]));
        }
    }
    let x = points.iter().map(|p| p.date.to_string()).collect();
    view! { <Chart id="price-chart" title description x series mark_last=true/> }.into_any()
}
