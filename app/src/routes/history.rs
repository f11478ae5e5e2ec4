//! `/runs`: your runs, newest first, filtered by status, a page at a time.

use domain::JobStatus;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::api::list_runs;
use crate::components::{ErrorPanel, StatusBadge};
use crate::format::{duration_ms, timestamp};

#[component]
pub fn HistoryPage() -> impl IntoView {
    let query = use_query_map();
    let status = Memo::new(move |_| query.read().get("status").unwrap_or_default());
    let page = Memo::new(move |_| query.read().get("page").and_then(|p| p.parse::<u32>().ok()).unwrap_or(1).max(1));
    let runs = Resource::new(move || (status.get(), page.get()), |(s, p)| list_runs(Some(s), p));
    let link = move |s: &str, p: u32| {
        let mut q = Vec::new();
        if !s.is_empty() {
            q.push(format!("status={s}"));
        }
        if p > 1 {
            q.push(format!("page={p}"));
        }
        if q.is_empty() { "/runs".to_string() } else { format!("/runs?{}", q.join("&")) }
    };
    view! {
        <Title text="History"/>
        <section class="card">
            <h1>"History"</h1>
            // Plain links: the router's active-link matching ignores the query string.
            <nav class="filters" aria-label="Filter by status">
                {std::iter::once(("", "All"))
                    .chain(JobStatus::ALL.map(|s| (s.as_str(), s.label())))
                    .map(|(value, label)| {
                        let current = move || (status.get() == value).then_some("page");
                        view! { <a href=link(value, 1) aria-current=current>{label}</a> }
                    })
                    .collect_view()}
            </nav>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Ok(p) if p.runs.is_empty() => view! { <p class="muted">"No runs here."</p> }.into_any(),
                        Ok(p) => {
                            let pages = p.total.div_ceil(u64::from(p.per_page)).max(1) as u32;
                            let s = status.get_untracked();
                            view! {
                                <div class="table-wrap">
                                    <table class="history">
                                        <thead><tr>
                                            <th scope="col">"Symbol"</th><th scope="col">"As of"</th><th scope="col">"Analysts"</th><th scope="col">"Depth"</th><th scope="col">"Model"</th>
                                            <th scope="col">"Status"</th><th scope="col">"Rating"</th><th scope="col">"Duration"</th><th scope="col">"Started"</th>
                                        </tr></thead>
                                        <tbody>
                                            {p.runs.into_iter().map(|r| view! {
                                                <tr data-run=r.run_id.to_string()>
                                                    <td data-label="Symbol"><A href=format!("/runs/{}", r.run_id)>{r.symbol.clone()}</A></td>
                                                    <td class="as-of" data-label="As of">{r.as_of.map(|d| d.to_string()).unwrap_or_else(|| "latest".into())}</td>
                                                    <td class="analysts" data-label="Analysts">{r.analysts.iter().map(|a| a.id()).collect::<Vec<_>>().join(", ")}</td>
                                                    <td class="depth" data-label="Depth">{r.depth.id()}</td>
                                                    <td data-label="Model"><code>{r.model_id.clone()}</code></td>
                                                    <td data-label="Status"><StatusBadge status=r.status/>{r.archived.then(|| view! { " " <span class="archived" title="Finished long ago and archived; still readable">"archived"</span> })}</td>
                                                    <td data-label="Rating">{r.rating.map(|x| x.as_str()).unwrap_or("—")}</td>
                                                    <td data-label="Duration">{r.duration.map(duration_ms).unwrap_or_else(|| "—".into())}</td>
                                                    <td data-label="Started">{timestamp(r.started_at.unwrap_or(r.created_at))}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                                <nav class="pager" aria-label="Pages">
                                    {(p.page > 1).then(|| view! { <A href=link(&s, p.page - 1)>"← Newer"</A> })}
                                    <span>{format!("Page {} of {pages} · {} runs", p.page, p.total)}</span>
                                    {(p.page < pages).then(|| view! { <A href=link(&s, p.page + 1)>"Older →"</A> })}
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
