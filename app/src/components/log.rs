//! A run's log on its page: folded by default, one line per event with its time from the
//! run's first event, the step it happened in, and what happened in words.

use domain::{LogEntry, LogEvent, RunLog};
use leptos::prelude::*;

/// The log, folded; `log` is read again by the caller as the run moves.
#[component]
pub fn RunLogView(#[prop(into)] log: Signal<RunLog>) -> impl IntoView {
    let count = move || log.read().entries.len();
    view! {
        <details class="card run-log" data-testid="run-log">
            <summary>{move || format!("Run log · {} {}", count(), if count() == 1 { "event" } else { "events" })}</summary>
            {move || {
                let log = log.get();
                let start = log.entries.first().map(|e| e.at);
                if log.entries.is_empty() {
                    return view! { <p class="muted">"Nothing logged yet."</p> }.into_any();
                }
                let rows = log
                    .entries
                    .into_iter()
                    .map(|e| {
                        let offset = start.map(|s| since(e.at - s)).unwrap_or_default();
                        line(e, offset)
                    })
                    .collect_view();
                view! { <ol class="log-lines">{rows}</ol> }.into_any()
            }}
        </details>
    }
}

fn line(entry: LogEntry, offset: String) -> impl IntoView {
    let kind = entry.event.kind();
    let warn = matches!(entry.event, LogEvent::Retry { .. } | LogEvent::Stalled { .. })
        || matches!(&entry.event, LogEvent::Ended { message: Some(_), .. });
    let class = if warn { format!("log-line log-{kind} log-warn") } else { format!("log-line log-{kind}") };
    view! {
        <li class=class data-kind=kind>
            <time datetime=entry.at.to_rfc3339()>{offset}</time>
            {entry.step.map(|s| view! { <span class="log-step">{s}</span> })}
            <span class="log-text">{entry.event.describe()}</span>
        </li>
    }
}

/// "+0.0 s", "+12.3 s", "+2 min 05 s".
fn since(d: chrono::TimeDelta) -> String {
    let ms = d.num_milliseconds().max(0);
    if ms < 120_000 {
        format!("+{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("+{} min {:02} s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::since;

    #[test]
    fn offsets_read_from_the_first_event() {
        assert_eq!(since(chrono::TimeDelta::milliseconds(0)), "+0.0 s");
        assert_eq!(since(chrono::TimeDelta::milliseconds(12_340)), "+12.3 s");
        assert_eq!(since(chrono::TimeDelta::milliseconds(125_000)), "+2 min 05 s");
    }
}
