//! `/compare?runs=<id>,<id>[,…]`: 2–4 of your runs side by side, one row per setting, stance,
//! verdict and plan figure, the rows where they differ marked. The history's ticked boxes
//! lead here (a plain GET form, so `runs` may also come repeated). Rendered on the server only.

use domain::Comparison;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::AppError;
use crate::components::ErrorPanel;

/// The runs of the address, side by side, as the caller may read them.
#[server]
pub async fn compare_runs(runs: Vec<String>) -> Result<Comparison, AppError> {
    use crate::api::ssr;
    let (ctx, user) = ssr::context()?;
    let ids = domain::compare::parse_ids(runs.iter().map(String::as_str))
        .map_err(|e| ssr::fail(application::Error::Invalid(vec![e])))?;
    ctx.runs.compare(&user.0, &ids).await.map_err(ssr::fail)
}

fn section_title(section: &str) -> &'static str {
    match section {
        "settings" => "Settings",
        "verdict" => "Verdict",
        "analysts" => "Analysts",
        "team" => "Research",
        "plan" => "Plan",
        _ => "Cost",
    }
}

#[component]
fn ComparisonTable(c: Comparison) -> impl IntoView {
    let ids: Vec<String> = c.runs.iter().map(|r| r.run_id.to_string()).collect();
    let csv = format!("/compare.csv?runs={}", ids.join(","));
    let differing = c.rows.iter().filter(|r| r.differs).count();
    let mut last_section = String::new();
    let body = c
        .rows
        .into_iter()
        .map(|row| {
            let head = (row.section != last_section).then(|| {
                last_section = row.section.clone();
                let span = c.runs.len() + 1;
                view! { <tr class="compare-section"><th scope="rowgroup" colspan=span>{section_title(&row.section)}</th></tr> }
            });
            let class = row.differs.then_some("differs");
            let mark = row.differs.then(|| view! { " " <span class="differs-mark" title="The runs differ here">"≠"</span> });
            let cells = row.values.into_iter().map(|v| view! { <td>{v}</td> }).collect_view();
            let field = row.label.clone();
            view! {
                {head}
                <tr class=class data-field=field><th scope="row">{row.label}{mark}</th>{cells}</tr>
            }
        })
        .collect_view();
    view! {
        <p class="muted">{format!("{} of the rows differ (marked ≠).", differing)}</p>
        <div class="table-wrap">
            <table class="compare">
                <thead><tr>
                    <th scope="col">""</th>
                    {c.runs.iter().map(|r| view! {
                        <th scope="col">
                            <a href=format!("/runs/{}", r.run_id)>{r.symbol.clone()}</a>
                            <br/><span class="muted">{r.created_at.format("%Y-%m-%d %H:%M").to_string()}</span>
                        </th>
                    }).collect_view()}
                </tr></thead>
                <tbody>{body}</tbody>
            </table>
        </div>
        <p><a href=csv download="compare.csv">"Download as CSV"</a>" · "<a href="/runs">"Back to history"</a></p>
    }
}

#[component]
pub fn ComparePage() -> impl IntoView {
    let query = use_query_map();
    let runs = Resource::new(move || query.read().get_all("runs").unwrap_or_default(), compare_runs);
    view! {
        <Title text="Compare runs"/>
        <section class="card">
            <h1>"Compare runs"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Ok(c) => view! { <ComparisonTable c=c/> }.into_any(),
                        Err(e) => view! {
                            <ErrorPanel error=e/>
                            <p>"Tick two to four runs in the " <a href="/runs">"history"</a> " and press Compare."</p>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
