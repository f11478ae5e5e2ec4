//! `/batches/:id`: a batch — one row per symbol's run, filling in as the runs go, with the
//! totals, a CSV download and Cancel.
//!
//! No island: while the batch runs, the page refreshes itself every 2 s through a
//! `<meta http-equiv="refresh">` in its head, so it works the same with scripts off. The table
//! sorts by rating or confidence through links (`?sort=`), the download keeps that order, and
//! Cancel is a plain form posted to `POST /batches/:id/cancel` (answered with `303 See Other`).

use domain::JobStatus;
use domain::batch::{BatchOrder, BatchStatus, BatchView};
use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::AppError;
use crate::components::{ErrorPanel, StatusBadge};
use crate::format::percent;

#[server]
pub async fn load_batch(id: String, sort: String) -> Result<BatchView, AppError> {
    use crate::api::ssr::{context, fail};
    let (ctx, user) = context()?;
    // An id that cannot be a batch's names none of the caller's; an order it does not know
    // is the order given.
    let id = id.parse().map_err(|_| fail(application::Error::NotFound))?;
    let mut view = ctx.batches.view(&user.0, id).await.map_err(fail)?;
    BatchOrder::parse(&sort).unwrap_or_default().sort(&mut view.runs);
    Ok(view)
}

#[component]
pub fn BatchPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let key =
        Memo::new(move |_| (params.read().get("id").unwrap_or_default(), query.read().get("sort").unwrap_or_default()));
    let batch = Resource::new(move || key.get(), |(id, sort)| load_batch(id, sort));
    view! {
        <Title text="Batch"/>
        <Suspense fallback=|| view! { <section class="card"><p>"Loading the batch…"</p></section> }>
            {move || Suspend::new(async move {
                let order = BatchOrder::parse(&key.get_untracked().1).unwrap_or_default();
                match batch.await {
                    Ok(b) => view! {
                        {(b.status == BatchStatus::Running).then(|| view! { <Meta http_equiv="refresh" content="2"/> })}
                        <BatchHeader batch=b.clone() order/>
                        <BatchTable batch=b order/>
                    }
                    .into_any(),
                    Err(e) => view! { <section class="card"><ErrorPanel error=e/></section> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The query string of an order (empty for the order given).
fn sorted(order: BatchOrder) -> String {
    match order {
        BatchOrder::Given => String::new(),
        o => format!("?sort={}", o.as_str()),
    }
}

/// What it is, how far it is, what it cost, the download and, while it runs, Cancel.
#[component]
fn BatchHeader(batch: BatchView, order: BatchOrder) -> impl IntoView {
    let (b, t) = (&batch, &batch.totals);
    let (status, label) = match b.status {
        BatchStatus::Running => ("running", "Running"),
        BatchStatus::Completed => ("completed", "Completed"),
        BatchStatus::Cancelled => ("cancelled", "Cancelled"),
    };
    let r = &b.request;
    let mut settings = vec![format!("model {}", r.model_id.as_deref().unwrap_or("default"))];
    settings.push(format!("depth {}", r.depth.as_deref().unwrap_or("quick")));
    if let Some(a) = &r.analysts {
        settings.push(format!("analysts {}", a.join(", ")));
    }
    settings.push(match &r.as_of {
        Some(d) => format!("as of {d}"),
        None => "as of each symbol's last day".into(),
    });
    let mut counts =
        vec![format!("{} of {} runs ended ({}%)", t.completed + t.failed + t.cancelled, t.runs, t.percent())];
    for (n, what) in [(t.running, "running"), (t.pending, "waiting"), (t.failed, "failed"), (t.cancelled, "cancelled")]
    {
        if n > 0 {
            counts.push(format!("{n} {what}"));
        }
    }
    let cancel = (b.status == BatchStatus::Running).then(|| {
        view! {
            <form method="post" action=format!("/batches/{}/cancel", b.batch_id)>
                <button type="submit" class="secondary">"Cancel batch"</button>
            </form>
        }
    });
    view! {
        <section class="card">
            <h1>{format!("Batch: {} symbols", t.runs)}</h1>
            <p class="muted">{format!("{}.", settings.join("; "))}</p>
            <p class="batch-status" data-status=status>{format!("{label} · {} · cost ${:.4}", counts.join(" · "), t.cost_usd)}</p>
            <p><progress max="100" value=t.percent()>{format!("{}%", t.percent())}</progress></p>
            <p><a href=format!("/batches/{}/runs.csv{}", b.batch_id, sorted(order)) download>"Download the runs (CSV)"</a></p>
            {cancel}
        </section>
    }
}

/// One row per run; the rating and confidence headings sort by them (again: the other way).
#[component]
fn BatchTable(batch: BatchView, order: BatchOrder) -> impl IntoView {
    let base = format!("/batches/{}", batch.batch_id);
    let heading = |name: &'static str, up: BatchOrder, down: BatchOrder| {
        // Ratings read best first, confidence highest first.
        let (next, mark, sort) = match order {
            o if o == up => (down, " ▲", "ascending"),
            o if o == down => (up, " ▼", "descending"),
            _ => (if name == "Rating" { up } else { down }, "", "none"),
        };
        view! {
            <th scope="col" aria-sort=sort><a href=format!("{base}{}", sorted(next))>{name}{mark}</a></th>
        }
    };
    // On a phone the headings are hidden (each row a card): the orders are links above too.
    let orders = [
        ("as given", BatchOrder::Given),
        ("most bullish first", BatchOrder::Rating),
        ("most confident first", BatchOrder::ConfidenceDesc),
    ];
    let bar = orders.map(|(label, o)| {
        let current = (o == order).then_some("page");
        view! { " " <a href=format!("{base}{}", sorted(o)) aria-current=current>{label}</a> }
    });
    view! {
        <section class="card">
            <p class="sort-bar">"Order:"{bar.into_iter().collect_view()}</p>
            <div class="table-wrap">
                <table class="batch">
                    <thead><tr>
                        <th scope="col">"Symbol"</th><th scope="col">"Status"</th><th scope="col">"Progress"</th>
                        {heading("Rating", BatchOrder::Rating, BatchOrder::RatingDesc)}
                        {heading("Confidence", BatchOrder::Confidence, BatchOrder::ConfidenceDesc)}
                        <th scope="col">"Cost"</th>
                    </tr></thead>
                    <tbody>
                        {batch.runs.into_iter().map(|r| {
                            let symbol = r.symbol.clone();
                            view! {
                            <tr data-run=r.run_id.to_string() data-symbol=r.symbol>
                                <th scope="row" data-label="Symbol"><A href=format!("/runs/{}", r.run_id)>{symbol}</A></th>
                                <td data-label="Status"><StatusBadge status=r.status/></td>
                                <td class="progress" data-label="Progress">
                                    {match r.status {
                                        JobStatus::Running => format!("{}%", r.percent),
                                        JobStatus::Pending => "waiting its turn".into(),
                                        _ => String::new(),
                                    }}
                                    {r.current_step.filter(|_| r.status == JobStatus::Running).map(|s| view! { " " <span class="muted">{s}</span> })}
                                </td>
                                <td class=format!("rating-cell {}", r.rating.map(|x| format!("rating-{}", x.as_str().to_ascii_lowercase())).unwrap_or_default()) data-label="Rating">{r.rating.map(|x| x.as_str()).unwrap_or("—")}</td>
                                <td class="confidence" data-label="Confidence">{r.confidence.map(percent).unwrap_or_else(|| "—".into())}</td>
                                <td class="cost" data-label="Cost">{format!("${:.4}", r.cost_usd)}</td>
                            </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}
