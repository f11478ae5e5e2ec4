//! `/schedules`: watchlists started as a batch on every tick of a cron — listed with their next
//! tick and latest batches, and made, edited, paused, resumed and deleted with plain forms
//! (`POST /schedules…`, answered with `303 See Other`), so the page works without scripts.

use domain::schedule::{Schedule, ScheduleRequest};
use domain::{AnalystKind, Problem};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::AppError;
use crate::components::ErrorPanel;
use crate::format::timestamp;

/// A create form that was refused: what was typed, and why (the server renders the page with
/// this in context in answer to the POST).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub request: ScheduleRequest,
    pub problem: Problem,
}

/// Your schedules, oldest first.
#[server]
pub async fn list_schedules() -> Result<Vec<Schedule>, AppError> {
    use crate::api::ssr::{context, fail};
    let (ctx, user) = context()?;
    ctx.schedules.list(&user.0).await.map_err(fail)
}

#[component]
pub fn SchedulesPage() -> impl IntoView {
    let schedules = Resource::new(|| (), |_| list_schedules());
    let rejected = use_context::<Rejected>();
    view! {
        <Title text="Schedules"/>
        <section class="card">
            <h1>"Schedules"</h1>
            <p class="lead">
                "A schedule runs a watchlist as a batch on every tick of a cron expression, in your time zone: "
                <code>"30 8 * * MON-FRI"</code> " is 08:30 on weekdays. Ticks missed while the server was stopped are not replayed one by one: the latest runs once, and the schedule says so."
            </p>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match schedules.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted">"No schedules yet."</p> }.into_any(),
                        Ok(list) => view! {
                            <ul class="schedules">
                                {list.into_iter().map(|s| view! { <ScheduleItem schedule=s/> }).collect_view()}
                            </ul>
                        }
                        .into_any(),
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
        <NewSchedule rejected/>
    }
}

fn or_default(v: &Option<String>, default: &str) -> String {
    v.clone().unwrap_or_else(|| default.to_string())
}

/// One schedule: what it runs and when, its latest ticks, and its forms.
#[component]
fn ScheduleItem(schedule: Schedule) -> impl IntoView {
    let s = schedule;
    let base = format!("/schedules/{}", s.schedule_id);
    let r = &s.request;
    let settings = format!(
        "model {} · {} · {}",
        or_default(&r.model_id, "default"),
        or_default(&r.depth, "quick"),
        r.analysts.as_ref().map(|a| a.join(", ")).unwrap_or_else(|| "every analyst".into())
    );
    let when = match (&s.next_fire_at, &s.next_fire_local, s.paused) {
        (_, _, true) => "Paused".to_string(),
        (Some(next), Some(local), false) if s.timezone != "UTC" => format!("Next: {local} ({})", timestamp(*next)),
        (Some(next), _, false) => format!("Next: {}", timestamp(*next)),
        (None, _, false) => "No tick left".to_string(),
    };
    let (toggle, toggle_label) = if s.paused { ("resume", "Resume") } else { ("pause", "Pause") };
    let fires = s.last_fires.clone();
    view! {
        <li class="schedule" data-schedule=s.schedule_id.to_string() data-paused=s.paused.to_string()>
            <h2>{s.name.clone()}</h2>
            <p><strong>{r.symbols.join(", ")}</strong></p>
            <p class="muted"><code>{s.cron.clone()}</code>" in "{s.timezone.clone()}" · "{settings}</p>
            <p class="schedule-when">{when}</p>
            {r.webhook.clone().map(|url| view! {
                <p class="muted">"Webhook: "<code>{url}</code>
                    {s.webhook_disabled_at.map(|at| view! {
                        <strong class="warning">{format!(" — given up on {} after a day of failed deliveries; set it again to resume", timestamp(at))}</strong>
                    })}
                </p>
            })}
            {(!fires.is_empty()).then(|| view! {
                <ol class="fires" aria-label="Latest ticks">
                    {fires.into_iter().map(|f| {
                        let note = f.note();
                        view! {
                            <li>
                                {timestamp(f.tick_at)}" · "
                                {if f.error.is_none() {
                                    view! { <a href=format!("/batches/{}", f.batch_id)>"batch"</a> }.into_any()
                                } else {
                                    view! { <span>"no batch"</span> }.into_any()
                                }}
                                {note.map(|n| view! { " · " <span class="muted">{n}</span> })}
                            </li>
                        }
                    }).collect_view()}
                </ol>
            })}
            <div class="actions">
                <form method="post" action=format!("{base}/{toggle}")>
                    <button type="submit" class="secondary">{toggle_label}</button>
                </form>
                <form method="post" action=format!("{base}/delete")>
                    <button type="submit" class="secondary danger">"Delete"</button>
                </form>
            </div>
            <details class="edit">
                <summary>"Edit"</summary>
                <form method="post" action=base.clone() class="schedule-form">
                    <ScheduleFields
                        prefix=s.schedule_id.to_string()
                        name=s.name.clone()
                        symbols=r.symbols.join(", ")
                        cron=s.cron.clone()
                        timezone=s.timezone.clone()
                    />
                    <button type="submit">"Save"</button>
                </form>
            </details>
        </li>
    }
}

/// The fields a schedule is made of; `prefix` keeps the ids of several forms apart.
#[component]
fn ScheduleFields(prefix: String, name: String, symbols: String, cron: String, timezone: String) -> impl IntoView {
    let id = move |field: &str| format!("{prefix}-{field}");
    view! {
        <div class="field">
            <label for=id("name")>"Name"</label>
            <input id=id("name") name="name" value=name required maxlength="80" placeholder="e.g. Morning tech"/>
        </div>
        <div class="field">
            <label for=id("symbols")>"Symbols"</label>
            <input id=id("symbols") name="symbols" value=symbols required placeholder="AAPL, MSFT, NVDA"/>
        </div>
        <div class="field">
            <label for=id("cron")>"Cron"</label>
            <input id=id("cron") name="cron" value=cron required spellcheck="false" placeholder="30 8 * * MON-FRI"/>
            <p class="help">"Minute, hour, day of month, month, day of week — or six fields, seconds first."</p>
        </div>
        <div class="field">
            <label for=id("timezone")>"Time zone"</label>
            <input id=id("timezone") name="timezone" value=timezone spellcheck="false" placeholder="America/New_York"/>
        </div>
    }
}

/// The form that makes a schedule, filled in again when it was refused.
#[component]
fn NewSchedule(rejected: Option<Rejected>) -> impl IntoView {
    let (r, problem) = match rejected {
        Some(x) => (x.request, Some(x.problem)),
        None => (ScheduleRequest::default(), None),
    };
    let chosen = r.analysts.clone();
    let ticked = move |k: AnalystKind| chosen.as_ref().is_none_or(|c| c.iter().any(|a| a == k.id()));
    let depth = r.depth.clone().unwrap_or_else(|| "quick".into());
    view! {
        <section class="card">
            <h2>"New schedule"</h2>
            {problem.map(|p| view! { <ErrorPanel error=AppError(p)/> })}
            <form method="post" action="/schedules" class="schedule-form">
                <ScheduleFields
                    prefix="new".to_string()
                    name=r.name.clone().unwrap_or_default()
                    symbols=r.symbols.clone().map(|s| s.join(", ")).unwrap_or_default()
                    cron=r.cron.clone().unwrap_or_default()
                    timezone=r.timezone.clone().unwrap_or_else(|| "UTC".into())
                />
                <fieldset class="field">
                    <legend>"Analysts"</legend>
                    {AnalystKind::ALL.into_iter().map(|k| view! {
                        <label class="check">
                            <input type="checkbox" name="analysts" value=k.id() checked=ticked(k)/>
                            " "{k.step_name()}
                        </label>
                    }).collect_view()}
                </fieldset>
                <div class="field">
                    <label for="new-depth">"Depth"</label>
                    <select id="new-depth" name="depth">
                        {["quick", "standard", "deep"].into_iter().map(|d| view! {
                            <option value=d selected=depth == d>{d}</option>
                        }).collect_view()}
                    </select>
                </div>
                <button type="submit" class="primary">"Create schedule"</button>
            </form>
        </section>
    }
}
