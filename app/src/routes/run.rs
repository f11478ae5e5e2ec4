//! `/runs/:id`: a run's progress, then its result. The page is rendered on the server from the
//! URL alone (reloads and second tabs work); the live part is an island that polls while the
//! run is active. When the run completes under the user's eyes, the page reloads itself, at its
//! top, to get the server-rendered result. A completed run's page opens on the verdict: its
//! header, the result (rating, plan, summary, chart, reports, debate), and the steps folded.
//!
//! The header says the day the run is as of from the first second: the day asked for, or the
//! last day of the symbol's data.
//!
//! Without WASM the page still works: Cancel and Retry are forms posting to
//! `/runs/:id/cancel` and `/runs/:id/retry` (answered with `303 See Other`), and an active
//! run's page refreshes itself every 2 s through a `<meta http-equiv="refresh">` inside
//! `<noscript>` — which a browser running scripts ignores, so the hydrated page never reloads
//! on a timer. Where scripts run but the WASM does not (blocked, failed to load),
//! `public/run-fallback.js` reloads the page the same way.

use domain::{Depth, JobStatus, ProgressTransport, RunLog, RunState, Team};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::{AppError, CancelRun, RetryRun, read_run_log, run_progress};
use crate::components::ErrorPanel;
use crate::components::log::RunLogView;
use crate::components::outcome::OutcomeView;
use crate::components::progress::ProgressView;
use crate::components::result::ResultView;
use crate::format::now;
use crate::poll::{self, Connection, Mode, Signals};

#[component]
pub fn RunPage() -> impl IntoView {
    // Only the server renders this component (the island below is what hydrates).
    let transport = || {
        #[cfg(feature = "ssr")]
        {
            use_context::<crate::api::ssr::AppContext>().map(|c| c.transport).unwrap_or_default()
        }
        #[cfg(not(feature = "ssr"))]
        {
            domain::ProgressTransport::default()
        }
    };
    let params = use_params_map();
    let run_id = Memo::new(move |_| params.read().get("id").unwrap_or_default());
    let progress = Resource::new(move || run_id.get(), run_progress);
    let log = Resource::new(move || run_id.get(), read_run_log);
    view! {
        <Title text="Analysis"/>
        <Suspense fallback=|| view! { <section class="card"><p>"Loading the run…"</p></section> }>
            {move || Suspend::new(async move {
                match progress.await {
                    Ok(p) => {
                        // A log that cannot be read leaves the page without it, not without the run.
                        let log = log.await.unwrap_or_else(|_| RunLog { run_id: p.run.run_id, entries: vec![] });
                        let duration = p.run.duration;
                        let active = !p.run.status.is_terminal();
                        let id = p.run.run_id.to_string();
                        match p.result {
                            // The verdict first; the steps that led to it folded under it.
                            Some(result) if p.run.status == JobStatus::Completed => {
                                let markdown = format!("/runs/{id}/report.md");
                                view! {
                                    <RunHeading run=p.run.clone()/>
                                    <ResultView result duration markdown/>
                                    <HowItTurnedOut run_id=id.clone()/>
                                    <RerunForm run=p.run.clone()/>
                                    <RunLive initial=p.run initial_log=log transport=transport() folded=true/>
                                    <Deliveries run_id=id.clone()/>
                                    <crate::routes::history::RunTags run_id=id.clone()/>
                                    <crate::routes::share::ShareLinks run_id=id/>
                                }
                                .into_any()
                            }
                            _ => view! {
                                {active.then(|| view! {
                                    <noscript><meta http-equiv="refresh" content="2"/></noscript>
                                    <script src="/run-fallback.js" defer nonce=leptos::nonce::use_nonce()></script>
                                })}
                                {(!active).then(|| view! { <RerunForm run=p.run.clone()/> })}
                                <RunLive initial=p.run initial_log=log transport=transport() folded=false/>
                                <Deliveries run_id=id.clone()/>
                                <crate::routes::history::RunTags run_id=id.clone()/>
                                <crate::routes::share::ShareLinks run_id=id/>
                            }
                            .into_any(),
                        }
                    }
                    Err(e) => {
                        // The log was asked for beside the run: waited for here too, so that its
                        // call never outlives the render (it would run without the request).
                        let _ = log.await;
                        view! { <section class="card"><ErrorPanel error=e/></section> }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// What a run is: its analysts, depth and the day it is as of.
fn run_line(p: &RunState) -> String {
    let analysts: Vec<&str> = p.analysts.iter().map(|a| a.step_name()).collect();
    format!(
        "{} · {} · as of {}{}",
        analysts.join(", "),
        p.depth.id(),
        p.as_of.map(|d| d.to_string()).unwrap_or_else(|| "the provider's latest data".into()),
        p.retry_of.map(|r| format!(" · retry of {}", &r.to_string()[..8])).unwrap_or_default()
            + &p.rerun_of
                .as_ref()
                .map(|r| format!(" · rerun of {} from {}", &r.run_id.to_string()[..8], r.from.id()))
                .unwrap_or_default()
    )
}

/// The run's webhook deliveries, read when the page is rendered: each event, its attempts and
/// how the last went. Nothing for a run without a webhook.
#[server]
pub async fn run_deliveries(run_id: String) -> Result<Vec<domain::webhook::Delivery>, AppError> {
    use crate::api::ssr::{context, fail, run_id as parse};
    let (ctx, user) = context()?;
    ctx.webhooks.deliveries(&user.0, parse(&run_id)?).await.map_err(fail)
}

#[component]
fn Deliveries(run_id: String) -> impl IntoView {
    let deliveries = Resource::new(move || run_id.clone(), run_deliveries);
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let list = deliveries.await.unwrap_or_default();
                (!list.is_empty()).then(|| view! {
                    <section class="card deliveries" data-testid="deliveries">
                        <h2>"Webhook deliveries"</h2>
                        <p class="muted"><code>{list[0].url.clone()}</code></p>
                        <div class="table-wrap">
                            <table class="deliveries">
                                <thead><tr><th scope="col">"Event"</th><th scope="col">"Attempts"</th><th scope="col">"Last answer"</th><th scope="col">"State"</th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|d| {
                                        let state = match (d.delivered_at, d.failed_at, d.next_attempt_at) {
                                            (Some(at), _, _) => format!("delivered {}", crate::format::timestamp(at)),
                                            (_, Some(at), _) => format!("given up {}", crate::format::timestamp(at)),
                                            (_, _, Some(at)) => format!("next try {}", crate::format::timestamp(at)),
                                            _ => "waiting".into(),
                                        };
                                        let answer = match (d.last_status, d.last_error) {
                                            (Some(s), _) => s.to_string(),
                                            (None, Some(e)) => e,
                                            (None, None) => "—".into(),
                                        };
                                        view! {
                                            <tr data-webhook-id=d.webhook_id.clone()>
                                                <th scope="row" data-label="Event">{d.event.as_str()}{d.step.map(|s| format!(": {s}"))}</th>
                                                <td data-label="Attempts">{d.attempts}</td>
                                                <td data-label="Last answer">{answer}</td>
                                                <td data-label="State">{state}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    </section>
                })
            })}
        </Suspense>
    }
}

/// The batch a run was started in, if any: a link to it.
#[component]
fn BatchLink(run: RunState) -> impl IntoView {
    run.batch_id.map(|b| view! { " · " <a href=format!("/batches/{b}") data-testid="batch-link">"in a batch"</a> })
}

/// How a completed run turned out, read when the page is rendered (nothing while the prices
/// cannot be read).
#[component]
fn HowItTurnedOut(run_id: String) -> impl IntoView {
    let outcome = Resource::new(move || run_id.clone(), crate::api::run_outcome);
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                outcome.await.ok().and_then(|o| o.outcome).map(|outcome| view! { <OutcomeView outcome/> })
            })}
        </Suspense>
    }
}

/// The plain form that reruns a finished run from one of its stages (`POST /runs/:id/rerun`):
/// the stages before it taken over, the rest run anew, with another model or depth if chosen.
#[component]
fn RerunForm(run: RunState) -> impl IntoView {
    let options = Resource::new(|| (), |_| crate::api::form_options());
    let action = format!("/runs/{}/rerun", run.run_id);
    // The first stage after the analysts: what one most often wants to try again.
    let first = if run.depth.is_quick() { Team::Portfolio } else { Team::Research };
    let stages: Vec<Team> = Team::ALL
        .into_iter()
        .filter(|t| run.steps.iter().any(|s| Team::of_step(&s.name) == *t) || !run.depth.is_quick())
        .collect();
    let (model, depth) = (run.model_id.to_string(), run.depth);
    view! {
        <section class="card run-rerun" aria-labelledby="rerun-heading">
            <h2 id="rerun-heading">"Run again from a stage"</h2>
            <p class="muted">"The stages before it are taken over as they are — no model calls, no cost — and the rest run anew."</p>
            <Suspense fallback=|| ()>
                {move || {
                    let (action, stages, model) = (action.clone(), stages.clone(), model.clone());
                    Suspend::new(async move {
                        let models: Vec<_> = options.await.map(|o| o.models).unwrap_or_default().into_iter().filter(|m| m.available).collect();
                        let choices = move || models.iter().map(|m| view! { <option value=m.id.clone()>{m.label.clone()}</option> }).collect_view();
                        view! {
                            <form method="post" action=action class="rerun-form" data-testid="rerun-form">
                                <label>"From"
                                    <select name="from">
                                        {stages.into_iter().map(|t| view! { <option value=t.id() selected=t == first>{t.label()}</option> }).collect_view()}
                                    </select>
                                </label>
                                <label>"Model"
                                    <select name="model">
                                        <option value="">{format!("Same as this run ({model})")}</option>
                                        {choices.clone()()}
                                    </select>
                                </label>
                                <label>"Managers' model"
                                    <select name="deepModel">
                                        <option value="">"Same as this run"</option>
                                        {choices()}
                                    </select>
                                </label>
                                <label>"Depth"
                                    <select name="depth">
                                        <option value="">{format!("Same as this run ({})", depth.id())}</option>
                                        {Depth::ALL.into_iter().map(|d| view! { <option value=d.id()>{d.id()}</option> }).collect_view()}
                                    </select>
                                </label>
                                <button type="submit" class="secondary">"Rerun"</button>
                            </form>
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}

/// A finished run's heading, rendered on the server above its result.
#[component]
fn RunHeading(run: RunState) -> impl IntoView {
    view! {
        <section class="card run-header">
            <h1>{run.symbol.to_string()} <span class="muted">" · " {run.model_id.to_string()}</span></h1>
            <p class="muted" data-testid="run-line">{run_line(&run)}<BatchLink run=run.clone()/></p>
        </section>
    }
}

/// The live part of a run's page: header with Cancel/Retry, the progress view, the error
/// or cancellation notice, and the run's log (read again when a step or the run changes state,
/// a stall begins or a retry is announced). `folded`: the run completed before the page was
/// rendered, and its heading and result are above — only the steps and the log are shown, folded.
#[island]
pub fn RunLive(initial: RunState, initial_log: RunLog, transport: ProgressTransport, folded: bool) -> impl IntoView {
    crate::mark_hydrated();
    let run_id = initial.run_id.to_string();
    let completed_at_load = initial.status == JobStatus::Completed;
    let progress = RwSignal::new(initial);
    let connection = RwSignal::new(Connection::default());
    let clock = RwSignal::new(now());
    let last_seen = RwSignal::new(now());
    let mode = RwSignal::new(if transport == ProgressTransport::Poll { Mode::Polling } else { Mode::Connecting });
    poll::start(run_id.clone(), transport, Signals { progress, connection, last_seen, mode });
    tick(clock, progress);
    let log = RwSignal::new(initial_log);
    follow_log(run_id.clone(), progress, log);
    // The result is rendered by the server: fetch it by reloading once the run completes here.
    Effect::new(move |_| {
        if progress.read().status == JobStatus::Completed && !completed_at_load {
            reload();
        }
    });

    let cancel = ServerAction::<CancelRun>::new();
    let retry = ServerAction::<RetryRun>::new();
    Effect::new(move |_| {
        // The stream may already have delivered a later state (the run ended) than the one
        // the cancel answered with: never go back.
        if let Some(Ok(state)) = cancel.value().get()
            && poll::supersedes(&state, &progress.get_untracked())
        {
            progress.set(state);
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(started)) = retry.value().get() {
            go_to(&format!("/runs/{}", started.run_id));
        }
    });

    if folded {
        return view! {
            <details class="card steps-folded" data-testid="steps-folded">
                <summary>{move || format!("How it was reached: {} steps", progress.read().steps.len())}</summary>
                <ProgressView progress connection now=clock last_seen mode/>
            </details>
            <RunLogView log/>
        }
        .into_any();
    }
    let status = move || progress.read().status;
    let (id_cancel, id_retry) = (run_id.clone(), run_id.clone());
    view! {
        <section class="card run-header">
            <h1>
                {move || progress.read().symbol.to_string()}
                <span class="muted">" · " {move || progress.read().model_id.to_string()}</span>
            </h1>
            <p class="muted" data-testid="run-line">
                {move || run_line(&progress.read())}
                <BatchLink run=progress.get_untracked()/>
            </p>
            <div class="actions">
                {move || (!status().is_terminal()).then(|| {
                    let id = id_cancel.clone();
                    let action = format!("/runs/{id}/cancel");
                    view! {
                        <form method="post" action=action
                            on:submit=move |ev| { ev.prevent_default(); cancel.dispatch(CancelRun { run_id: id.clone() }); }>
                            <button type="submit" class="secondary"
                                disabled=move || cancel.pending().get() || progress.read().cancel_requested>
                                {move || if progress.read().cancel_requested { "Cancelling…" } else { "Cancel" }}
                            </button>
                        </form>
                    }
                })}
                {move || status().is_retryable().then(|| {
                    let id = id_retry.clone();
                    let action = format!("/runs/{id}/retry");
                    view! {
                        <form method="post" action=action
                            on:submit=move |ev| { ev.prevent_default(); retry.dispatch(RetryRun { run_id: id.clone() }); }>
                            <button type="submit" class="primary" disabled=move || retry.pending().get()>
                                "Retry"
                            </button>
                        </form>
                    }
                })}
            </div>
            {move || cancel.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorPanel error=e/> })}
            {move || retry.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorPanel error=e/> })}
        </section>
        <ProgressView progress connection now=clock last_seen mode/>
        <RunLogView log/>
        {move || {
            let p = progress.get();
            match (p.status, p.error.clone()) {
                (JobStatus::Failed | JobStatus::Timeout, Some(error)) => view! {
                    <section class="card error-panel" role="alert" data-testid="run-error">
                        <h2>{if p.status == JobStatus::Timeout { "The analysis timed out" } else { "The analysis failed" }}</h2>
                        <p>{error}</p>
                        <p class="muted">"Retry starts a new run with the same settings; this one stays in your history."</p>
                    </section>
                }.into_any(),
                (JobStatus::Cancelled, _) => view! {
                    <section class="card" data-testid="run-cancelled"><h2>"Cancelled"</h2><p>"This analysis was cancelled."</p></section>
                }.into_any(),
                _ => ().into_any(),
            }
        }}
    }
    .into_any()
}

/// Reads the run's log again whenever something it records may have happened: a step or the
/// run changed state, a stall began or ended, a retry was announced in a step's detail.
fn follow_log(run_id: String, progress: RwSignal<RunState>, log: RwSignal<RunLog>) {
    let moments = Memo::new(move |_| {
        let p = progress.read();
        let steps: Vec<_> = p
            .steps
            .iter()
            .map(|s| (s.status, s.stalled, s.detail.as_deref().is_some_and(|d| d.starts_with("Retrying"))))
            .collect();
        (p.status, p.cancel_requested, steps)
    });
    #[cfg(feature = "hydrate")]
    Effect::new(move |previous: Option<()>| {
        // Read, not only tracked: a memo never read is never computed, and so never hears of
        // the changes it is made from.
        moments.with(|_| ());
        // The log came with the page: read it again only after a change.
        if previous.is_none() {
            return;
        }
        let run_id = run_id.clone();
        leptos::task::spawn_local(async move {
            if let Ok(fresh) = crate::api::fetch_log(&run_id).await {
                log.set(fresh);
            }
        });
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (run_id, moments, log);
}

/// Loads another page (islands have no client-side router).
pub fn go_to(path: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().location().set_href(path);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

/// Reloads the page at its top, where the verdict will be (a plain reload would put the reader
/// back among the steps).
fn reload() {
    #[cfg(feature = "hydrate")]
    {
        window().scroll_to_with_x_and_y(0.0, 0.0);
        let _ = window().location().reload();
    }
}

/// Moves `clock` every second while the run is active, so times on the page stay true.
fn tick(clock: RwSignal<chrono::DateTime<chrono::Utc>>, progress: RwSignal<RunState>) {
    #[cfg(feature = "hydrate")]
    {
        let interval = gloo_timers::callback::Interval::new(1_000, move || {
            if !progress.get_untracked().status.is_terminal() {
                clock.set(now());
            }
        });
        let handle = StoredValue::new_local(Some(interval));
        on_cleanup(move || {
            // Dropping the interval clears it.
            let _ = handle.try_update_value(|i| i.take());
        });
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (clock, progress);
    }
}
