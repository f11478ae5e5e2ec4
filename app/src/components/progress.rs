//! The live view of a run: overall bar, current step, times, and each step.

use chrono::{DateTime, Utc};
use domain::countdown::Countdown;
use domain::{JobStatus, RunState, StepProgress, StepStatus, Team};
use leptos::prelude::*;

use super::{StatusBadge, step_icon};
use crate::format::{ago, duration_ms, estimate};
use crate::poll::{Connection, Mode};

#[component]
pub fn ProgressView(
    progress: RwSignal<RunState>,
    connection: RwSignal<Connection>,
    /// The current time, ticking while the run is active.
    now: RwSignal<DateTime<Utc>>,
    /// When the browser last heard from the server.
    last_seen: RwSignal<DateTime<Utc>>,
    /// How the page follows the run: a live stream or polling.
    mode: RwSignal<Mode>,
) -> impl IntoView {
    let percent = move || progress.read().progress;
    let status = move || progress.read().status;
    let active = move || !status().is_terminal();
    let elapsed = move || {
        let p = progress.read();
        p.started_at.map(|s| match p.completed_at {
            Some(end) => (end - s).num_milliseconds().max(0) as u64,
            None => (now.get() - s).num_milliseconds().max(0) as u64,
        })
    };
    // The end the page counts down to: the server's estimates, of which a later one moves the
    // shown end by its error band at most (see `domain::countdown`). It follows each new body
    // (read at the clock's time then), not the ticking clock.
    let countdown = Memo::new(move |previous: Option<&Option<Countdown>>| {
        let p = progress.read();
        let estimate = if p.status.is_terminal() { None } else { p.estimated_completion_at };
        Countdown::follow(previous.copied().flatten(), estimate, now.get_untracked())
    });
    view! {
        <section class="progress-card" aria-labelledby="progress-heading" data-status=move || status().as_str()>
            <div class="progress-head">
                <h2 id="progress-heading">"Progress"</h2>
                {move || view! { <StatusBadge status=status()/> }}
            </div>
            <div
                class="bar"
                role="progressbar"
                aria-label="Analysis progress"
                aria-valuemin="0"
                aria-valuemax="100"
                aria-valuenow=move || percent().to_string()
                aria-valuetext=move || format!("{}% — {}", percent(), progress.read().current_step.clone().unwrap_or_default())
            >
                <div class="bar-fill" style=move || format!("width: {}%", percent())></div>
            </div>
            <dl class="progress-facts">
                <div>
                    <dt>"Done"</dt>
                    <dd class="percent" data-testid="percent">{move || format!("{}%", percent())}</dd>
                </div>
                <div>
                    <dt>"Current step"</dt>
                    <dd data-testid="current-step">
                        {move || match status() {
                            JobStatus::Pending => "Waiting for a worker".to_string(),
                            s if s.is_terminal() => "—".to_string(),
                            _ => progress.read().current_step.clone().unwrap_or_else(|| "—".into()),
                        }}
                    </dd>
                </div>
                <div>
                    <dt>"Model calls"</dt>
                    <dd data-testid="cost">
                        {move || {
                            let p = progress.read();
                            let mut s = format!("{} · {} tokens", p.llm_calls, p.tokens);
                            if p.cost_usd > 0.0 {
                                s.push_str(&format!(" · ≈ ${:.4}", p.cost_usd));
                            }
                            s
                        }}
                    </dd>
                </div>
                <div>
                    <dt>"Elapsed"</dt>
                    <dd>{move || elapsed().map(duration_ms).unwrap_or_else(|| "—".into())}</dd>
                </div>
                <div>
                    <dt>{move || if active() { "Remaining" } else { "Duration" }}</dt>
                    <dd data-testid="eta">
                        {move || {
                            let p = progress.read();
                            if active() {
                                // Counts down to the shown end between the server's writes; past
                                // it, the run is late, and the page says so rather than "1 s".
                                match countdown.get() {
                                    Some(c) => c.left(now.get()).map(estimate).unwrap_or_else(|| "taking longer than usual".into()),
                                    None => p.estimated_time_remaining.map(estimate).unwrap_or_else(|| "—".into()),
                                }
                            } else {
                                p.duration.map(duration_ms).unwrap_or_else(|| "—".into())
                            }
                        }}
                    </dd>
                </div>
            </dl>
            <p class="freshness" aria-live="polite">
                {move || {
                    let c = connection.get();
                    match (c.error, active()) {
                        (Some(e), true) => view! {
                            <span class="reconnecting" data-testid="reconnecting">
                                "Reconnecting… " {e.0.detail} {c.retry_in_ms.map(|ms| format!(" Next try in {} s.", ms / 1000))}
                            </span>
                        }.into_any(),
                        (Some(e), false) => view! { <span class="reconnecting">{e.0.detail}</span> }.into_any(),
                        (None, true) => view! {
                            <span>
                                <span class="transport" data-testid="transport" data-mode=move || mode.get().as_str()>
                                    {move || mode.get().label()}
                                </span>
                                " · last change " {ago(progress.read().updated_at, now.get())}
                                " · heard " {ago(last_seen.get(), now.get())}
                            </span>
                        }.into_any(),
                        (None, false) => view! { <span>"Finished " {ago(progress.read().completed_at.unwrap_or(progress.read().updated_at), now.get())}</span> }.into_any(),
                    }
                }}
            </p>
            <div class="teams">
                {move || {
                    let p = progress.read();
                    // Consecutive steps of one team form a group, in step order.
                    let mut groups: Vec<(Team, Vec<StepProgress>)> = Vec::new();
                    for s in &p.steps {
                        let team = Team::of_step(&s.name);
                        match groups.last_mut() {
                            Some((t, steps)) if *t == team => steps.push(s.clone()),
                            _ => groups.push((team, vec![s.clone()])),
                        }
                    }
                    groups
                        .into_iter()
                        .map(|(team, steps)| view! {
                            <section class="team" data-team=team.label()>
                                <h3 class="team-name">{team.label()}</h3>
                                <ol class="steps">{steps.into_iter().map(|s| step_row(s, now)).collect_view()}</ol>
                            </section>
                        })
                        .collect_view()
                }}
            </div>
        </section>
    }
}

fn step_row(s: StepProgress, now: RwSignal<DateTime<Utc>>) -> impl IntoView {
    let status = s.status;
    let detail = match status {
        StepStatus::InProgress => {
            format!("{}%{}", s.progress, s.detail.as_ref().map(|d| format!(" · {d}")).unwrap_or_default())
        }
        // Taken over from the run this one reruns: it did not run here.
        StepStatus::Completed if s.reused => s.detail.clone().unwrap_or_default(),
        StepStatus::Completed => s.duration_ms.map(duration_ms).unwrap_or_default(),
        _ => String::new(),
    };
    let class = if s.reused {
        format!("step step-{} step-reused", status.as_str())
    } else {
        format!("step step-{}", status.as_str())
    };
    view! {
        <li class=class data-step=s.name.clone() data-status=status.as_str() data-reused=s.reused.then_some("true")>
            <span class="step-icon" aria-hidden="true">{step_icon(status)}</span>
            <span class="step-name">{s.name.clone()}</span>
            <span class="step-status">{if s.reused { "Reused" } else { status.label() }}</span>
            <span class="step-detail">{detail}</span>
            {(status == StepStatus::InProgress).then(|| view! {
                <span class="step-bar" aria-hidden="true"><span style=format!("width: {}%", s.progress)></span></span>
            })}
            // A model that has gone quiet, named, with the seconds it has been quiet counting
            // on the page's clock and when the call is given up.
            {s.stall.clone().map(|stall| view! {
                <p class="step-stall" role="status" data-testid="step-stall">
                    {move || stall.sentence(now.get())}
                </p>
            })}
            // The end of what the step's model has written so far, in a box of fixed height
            // that shows its last lines: it grows in place, and is read out politely, as a
            // whole, when it changes.
            {(status == StepStatus::InProgress).then(|| view! {
                <div class="step-text" role="status" aria-live="polite" aria-label=format!("{} is writing", s.name) data-testid="step-text">
                    <p>{s.text.clone().unwrap_or_default()}</p>
                </div>
            })}
        </li>
    }
}
