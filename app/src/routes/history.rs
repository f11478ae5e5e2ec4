//! `/runs`: your runs, newest first, searched and filtered by a plain GET form (it works
//! without scripts and keeps the filters in the address), a page at a time.

use std::collections::BTreeMap;

use domain::{Depth, JobStatus, Rating};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use leptos_router::params::ParamsMap;

use crate::api::list_runs;
use crate::components::{ErrorPanel, StatusBadge};
use crate::format::{duration_ms, percent, signed_percent, timestamp};

/// The filters the form sends (and the status links keep), by their query names.
const FILTERS: [&str; 13] = [
    "symbol", "rating", "status", "modelId", "depth", "from", "to", "asOfFrom", "asOfTo", "tag", "q", "outcome", "sort",
];

/// A run's return after `days` trading days and whether its call came true, as a line of
/// its outcome cell: `20 d +3.21% ✓`, with the excess over the index where its prices reach;
/// none before the run completed or where its prices cannot be read.
fn after(outcome: &[domain::HorizonOutcome], days: u32) -> Option<String> {
    let h = outcome.iter().find(|h| h.days == days)?;
    let Some(r) = h.stock_return else { return Some(format!("{days} d: not yet")) };
    let call = match h.right {
        Some(true) => " ✓",
        Some(false) => " ✗",
        None => "",
    };
    let excess = h.excess.map(|e| format!(", {} vs ^GSPC", signed_percent(e))).unwrap_or_default();
    Some(format!("{days} d {}{call}{excess}", signed_percent(r)))
}

/// `/runs` with the current filters, `status` replaced by `status` when given, and `extra`.
fn link(filters: &BTreeMap<String, String>, status: Option<&str>, extra: &[(&str, String)]) -> String {
    format!("/runs{}", query_string(filters, status, extra))
}

/// The query string (empty, or `?` and the pairs) of the current filters, `status` replaced by
/// `status` when given, and `extra`.
fn query_string(filters: &BTreeMap<String, String>, status: Option<&str>, extra: &[(&str, String)]) -> String {
    let mut params = ParamsMap::new();
    for name in FILTERS {
        let value = match (name, status) {
            ("status", Some(s)) => s.to_string(),
            _ => filters.get(name).cloned().unwrap_or_default(),
        };
        if !value.is_empty() {
            params.insert(name, value);
        }
    }
    for (name, value) in extra {
        params.insert(name.to_string(), value.clone());
    }
    params.to_query_string()
}

#[component]
pub fn HistoryPage() -> impl IntoView {
    let query = use_query_map();
    let filters = Memo::new(move |_| {
        let q = query.read();
        let mut map: BTreeMap<String, String> = FILTERS
            .iter()
            .filter_map(|name| q.get(name).filter(|v| !v.trim().is_empty()).map(|v| (name.to_string(), v)))
            .collect();
        for name in ["cursor", "page"] {
            if let Some(v) = q.get(name).filter(|v| !v.is_empty()) {
                map.insert(name.to_string(), v);
            }
        }
        map
    });
    let runs = Resource::new(move || filters.get(), list_runs);
    let value = move |name: &'static str| move || filters.read().get(name).cloned().unwrap_or_default();
    let selected = move |name: &'static str, option: &'static str| {
        move || filters.read().get(name).is_some_and(|v| v.eq_ignore_ascii_case(option))
    };
    view! {
        <Title text="History"/>
        <section class="card">
            <h1>"History"</h1>
            // Plain links: the router's active-link matching ignores the query string.
            <nav class="filters" aria-label="Filter by status">
                {std::iter::once(("", "All"))
                    .chain(JobStatus::ALL.map(|s| (s.as_str(), s.label())))
                    .map(|(status, label)| {
                        let current =
                            move || (value("status")().eq_ignore_ascii_case(status)).then_some("page");
                        let href = move || link(&filters.read(), Some(status), &[]);
                        view! { <a href=href aria-current=current>{label}</a> }
                    })
                    .collect_view()}
            </nav>
            <form class="search" method="get" action="/runs" role="search" aria-label="Search runs">
                <label>"Words" <input type="search" name="q" maxlength="200" placeholder="in summaries and reports" prop:value=value("q") value=value("q")/></label>
                <label>"Symbol" <input type="text" name="symbol" maxlength="10" size="8" prop:value=value("symbol") value=value("symbol")/></label>
                <label>"Rating"
                    <select name="rating">
                        <option value="">"Any"</option>
                        {Rating::ANY.map(|r| view! { <option value=r.as_str() selected=selected("rating", r.as_str())>{r.as_str()}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Status"
                    <select name="status">
                        <option value="">"Any"</option>
                        {JobStatus::ALL.map(|s| view! { <option value=s.as_str() selected=selected("status", s.as_str())>{s.label()}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Model" <input type="text" name="modelId" maxlength="100" size="12" prop:value=value("modelId") value=value("modelId")/></label>
                <label>"Depth"
                    <select name="depth">
                        <option value="">"Any"</option>
                        {Depth::ALL.map(|d| view! { <option value=d.id() selected=selected("depth", d.id())>{d.id()}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Tag" <input type="text" name="tag" maxlength="32" size="10" prop:value=value("tag") value=value("tag")/></label>
                <label>"Created from" <input type="date" name="from" prop:value=value("from") value=value("from")/></label>
                <label>"to" <input type="date" name="to" prop:value=value("to") value=value("to")/></label>
                <label>"As of from" <input type="date" name="asOfFrom" prop:value=value("asOfFrom") value=value("asOfFrom")/></label>
                <label>"to" <input type="date" name="asOfTo" prop:value=value("asOfTo") value=value("asOfTo")/></label>
                <label>"Call after 20 days"
                    <select name="outcome">
                        <option value="">"Any"</option>
                        <option value="right" selected=selected("outcome", "right")>"Right"</option>
                        <option value="wrong" selected=selected("outcome", "wrong")>"Wrong"</option>
                    </select>
                </label>
                <label>"Order"
                    <select name="sort">
                        <option value="">"Newest first"</option>
                        <option value="-return" selected=selected("sort", "-return")>"Best 20-day return"</option>
                        <option value="return" selected=selected("sort", "return")>"Worst 20-day return"</option>
                    </select>
                </label>
                <button type="submit">"Search"</button>
                " " <a href="/runs">"Clear"</a>
            </form>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Ok(p) if p.runs.is_empty() => view! { <p class="muted">"No runs here."</p> }.into_any(),
                        Ok(p) => {
                            let f = filters.get_untracked();
                            let first = !f.contains_key("cursor") && p.page <= 1;
                            // Newest first pages by cursor; another order by page number.
                            let older = match p.next.clone() {
                                Some(c) => Some(link(&f, None, &[("cursor", c)])),
                                None if f.contains_key("sort") && u64::from(p.page) * u64::from(p.per_page) < p.total => {
                                    Some(link(&f, None, &[("page", (p.page + 1).to_string())]))
                                }
                                None => None,
                            };
                            view! {
                                // The boxes of the rows belong to this form (their `form`
                                // attribute), so ticking works without scripts.
                                <form id="compare" class="compare-form" method="get" action="/compare">
                                    <button type="submit" class="secondary">"Compare ticked"</button>
                                    <span class="muted">" two to four runs, side by side"</span>
                                </form>
                                <div class="table-wrap">
                                    <table class="history">
                                        <thead><tr>
                                            <th scope="col"><span class="visually-hidden">"Compare"</span></th>
                                            <th scope="col">"Symbol"</th><th scope="col">"As of"</th><th scope="col">"Analysts"</th><th scope="col">"Depth"</th><th scope="col">"Model"</th>
                                            <th scope="col">"Status"</th><th scope="col">"Rating"</th><th scope="col">"Confidence"</th><th scope="col">"Outcome"</th><th scope="col">"Cost"</th><th scope="col">"Duration"</th><th scope="col">"Started"</th><th scope="col">"Tags"</th>
                                        </tr></thead>
                                        <tbody>
                                            {p.runs.into_iter().map(|r| view! {
                                                <tr data-run=r.run_id.to_string()>
                                                    <td class="pick" data-label="Compare"><input type="checkbox" name="runs" form="compare" value=r.run_id.to_string() aria-label=format!("Compare {} ({})", r.symbol, timestamp(r.created_at))/></td>
                                                    <td data-label="Symbol"><A href=format!("/runs/{}", r.run_id)>{r.symbol.clone()}</A></td>
                                                    <td class="as-of" data-label="As of">{r.as_of.map(|d| d.to_string()).unwrap_or_else(|| "latest".into())}</td>
                                                    <td class="analysts" data-label="Analysts">{r.analysts.iter().map(|a| a.id()).collect::<Vec<_>>().join(", ")}</td>
                                                    <td class="depth" data-label="Depth">{r.depth.id()}</td>
                                                    <td class="model" data-label="Model"><code>{r.model_id.clone()}</code></td>
                                                    <td data-label="Status"><StatusBadge status=r.status/>{r.archived.then(|| view! { " " <span class="archived" title="Finished long ago and archived; still readable">"archived"</span> })}</td>
                                                    <td class="rating-cell" data-label="Rating">{r.rating.map(|x| x.as_str()).unwrap_or("—")}</td>
                                                    <td class="confidence" data-label="Confidence">{r.confidence.map(percent).unwrap_or_else(|| "—".into())}</td>
                                                    <td class="outcome" data-label="Outcome" title="The stock's return 5 and 20 trading days after the as-of day; ✓ where the rating's direction was right">
                                                        {[5, 20].into_iter().filter_map(|d| after(&r.outcome, d)).map(|line| view! { <span class="after">{line}</span> }).collect_view()}
                                                    </td>
                                                    <td class="cost" data-label="Cost">{format!("${:.4}", r.cost_usd)}</td>
                                                    <td data-label="Duration">{r.duration.map(duration_ms).unwrap_or_else(|| "—".into())}</td>
                                                    <td class="started" data-label="Started">{timestamp(r.started_at.unwrap_or(r.created_at))}</td>
                                                    <td class="tags" data-label="Tags">{r.tags.into_iter().map(|t| view! { <span class="tag">{t}</span>" " }).collect_view()}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                                <nav class="pager" aria-label="Pages">
                                    {(!first).then(|| view! { <a href=link(&f, None, &[])>"← Newest"</a> })}
                                    <span>{format!("{} runs", p.total)}" · "<a href=format!("/runs.csv{}", query_string(&f, None, &[])) download="runs.csv">"CSV"</a></span>
                                    {older.map(|href| view! { <a href=href>"Older →"</a> })}
                                </nav>
                            }.into_any()
                        }
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The tags the caller put on one of their runs.
#[server]
pub async fn run_tags(run_id: String) -> Result<Vec<String>, crate::api::AppError> {
    use crate::api::ssr;
    let (ctx, user) = ssr::context()?;
    ctx.runs.tags(&user.0, ssr::run_id(&run_id)?).await.map_err(ssr::fail)
}

/// A run's tags and the plain form that replaces them (`POST /runs/:id/tags`).
#[component]
pub fn RunTags(run_id: String) -> impl IntoView {
    let tags = Resource::new(
        {
            let run_id = run_id.clone();
            move || run_id.clone()
        },
        run_tags,
    );
    let action = format!("/runs/{run_id}/tags");
    view! {
        <section class="card run-tags" aria-labelledby="tags-heading">
            <h2 id="tags-heading">"Tags"</h2>
            <Suspense fallback=|| ()>
                {move || {
                    let action = action.clone();
                    Suspend::new(async move {
                        let current = tags.await.unwrap_or_default();
                        let value = current.join(", ");
                        view! {
                            <form method="post" action=action class="tags-form">
                                <label>"Labels, separated by commas (up to 10, each up to 32 characters)"
                                    <input type="text" name="tags" maxlength="400" value=value placeholder="e.g. weekly, earnings"/>
                                </label>
                                <button type="submit" class="secondary">"Save tags"</button>
                            </form>
                            <p class="tags">
                                {current.into_iter().map(|t| {
                                    let href = link(&BTreeMap::from([("tag".to_string(), t.clone())]), None, &[]);
                                    view! { <a class="tag" href=href>{t}</a>" " }
                                }).collect_view()}
                            </p>
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}
