//! Pieces of pages.

use domain::{JobStatus, Problem, StepStatus};
use leptos::prelude::*;

use crate::api::AppError;

pub mod backtest;
pub mod chart;
pub mod log;
pub mod outcome;
pub mod plan;
pub mod progress;
pub mod result;
pub mod team;

/// A run's status as text with a symbol, never colour alone.
#[component]
pub fn StatusBadge(status: JobStatus) -> impl IntoView {
    let icon = match status {
        JobStatus::Pending => "◷",
        JobStatus::Running => "▶",
        JobStatus::Completed => "✓",
        JobStatus::Failed => "✕",
        JobStatus::Timeout => "⌛",
        JobStatus::Cancelled => "■",
    };
    view! {
        <span class=format!("badge status-{}", status.as_str()) data-status=status.as_str()>
            <span aria-hidden="true">{icon}</span>
            " "
            {status.label()}
        </span>
    }
}

pub fn step_icon(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "○",
        StepStatus::InProgress => "◐",
        StepStatus::Completed => "●",
        StepStatus::Failed => "✕",
        StepStatus::Skipped => "–",
    }
}

/// A table of text under its column headings, each row headed by its first cell (given
/// `head_classes`, of that class: a rating's colour). Each cell carries its heading as
/// `data-label`, for the narrow screens where the style sheet turns a row into a card.
#[component]
pub fn Table(
    class: &'static str,
    heads: &'static [&'static str],
    rows: Vec<Vec<String>>,
    #[prop(optional)] head_classes: Vec<String>,
) -> impl IntoView {
    let rows = rows.into_iter().enumerate().map(|(i, row)| {
        let mut cells = row.into_iter();
        let head = match head_classes.get(i) {
            Some(class) => view! { <th scope="row" class=class.clone()>{cells.next()}</th> }.into_any(),
            None => view! { <th scope="row">{cells.next()}</th> }.into_any(),
        };
        // Each cell names its column, for the narrow screens where a row is a card.
        let cells = cells.zip(heads.iter().skip(1)).map(|(c, h)| view! { <td data-label=*h>{c}</td> });
        view! { <tr>{head}{cells.collect_view()}</tr> }
    });
    view! {
        <div class="table-wrap">
            <table class=class>
                <thead><tr>{heads.iter().map(|h| view! { <th scope="col">{*h}</th> }).collect_view()}</tr></thead>
                <tbody>{rows.collect_view()}</tbody>
            </table>
        </div>
    }
}

/// A problem shown to the user: its title, its detail and the fields it names; with `dismiss`,
/// a link to the page without it.
#[component]
pub fn ErrorPanel(error: AppError, #[prop(optional)] dismiss: Option<String>) -> impl IntoView {
    let p = error.0;
    view! {
        <div class="error-panel" role="alert">
            <strong>{p.title}</strong>
            <p>{p.detail}</p>
            {(!p.errors.is_empty())
                .then(|| {
                    view! {
                        <ul>
                            {p.errors.into_iter().map(|e| view! { <li><code>{e.field}</code>": "{e.message}</li> }).collect_view()}
                        </ul>
                    }
                })}
            {dismiss.map(|href| view! { <p><a href=href>"Dismiss"</a></p> })}
        </div>
    }
}

/// A form posted natively (without the WASM) that the server refused. The server answers it
/// with the page the form is on, rendered with this in context, and the shell shows it above
/// the page: the page stays usable, and the refusal says why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal(pub Problem);

/// The refusal of the form just posted, if any, with a link to the page's own address (the
/// address bar shows the form's).
#[component]
pub fn RefusalNotice() -> impl IntoView {
    let refusal = use_context::<Refusal>()?;
    let page = leptos_router::hooks::use_location().pathname.get_untracked();
    Some(view! { <section class="card refusal"><ErrorPanel error=AppError(refusal.0) dismiss=page/></section> })
}
