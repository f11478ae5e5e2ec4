//! `/stats`: the operators' figures — the last hour and day, runs and duration percentiles per
//! hour as charts, the queue, the slowest steps, each model's first-output latency and pace,
//! and the latest failures.
//!
//! Only the server's own machine and holders of the admin token may read them, so the page
//! has no server function: the server's `GET /stats` checks who asks, then renders this route
//! with the figures ([`StatsBody`]) in context. Rendered on the server only: no island.

use leptos::prelude::*;
use leptos_meta::Title;

#[cfg(feature = "ssr")]
pub use ssr::{StatementTime, StatsBody};

#[component]
pub fn StatsPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    let page = ssr::page();
    #[cfg(not(feature = "ssr"))]
    let page = ();
    view! { <Title text="Stats"/> {page} }
}

#[cfg(feature = "ssr")]
mod ssr {
    use application::stats::{HourBucket, Stats};
    use leptos::prelude::*;
    use serde::Serialize;

    use crate::components::Table;
    use crate::components::chart::{Chart, Series, YAxis};
    use crate::format::{duration_ms, percent_to};

    /// The figures, and what only the process that answers knows: `GET /api/trading/stats`
    /// sends them as JSON, `GET /stats` renders them here.
    #[derive(Debug, Clone, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct StatsBody {
        #[serde(flatten)]
        pub stats: Stats,
        /// Distinct runs whose progress this process served in the last 10 s.
        pub active_pollers: usize,
        /// Store operations timed by this process since it started, slowest on average first.
        pub database: Vec<StatementTime>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct StatementTime {
        pub statement: String,
        pub count: u64,
        pub average_ms: f64,
    }

    /// `340 ms`, `4.2 s`, `3 min 05 s`: operators compare milliseconds.
    fn ms(ms: u64) -> String {
        match ms {
            0..1000 => format!("{ms} ms"),
            1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
            _ => duration_ms(ms),
        }
    }

    fn or_dash(v: Option<String>) -> String {
        v.unwrap_or_else(|| "—".into())
    }

    pub fn page() -> AnyView {
        let Some(StatsBody { stats: s, active_pollers, database }) = use_context::<StatsBody>() else {
            return view! { <crate::routes::NotFound/> }.into_any();
        };
        let (hour, day) = (&s.last_hour, &s.last_day);
        let figures = vec![
            vec![
                "Average job duration".into(),
                or_dash(hour.average_duration_ms.map(ms)),
                or_dash(day.average_duration_ms.map(ms)),
            ],
            vec!["Jobs per hour".into(), format!("{:.1}", hour.jobs_per_hour), format!("{:.1}", day.jobs_per_hour)],
            vec!["Left for review".into(), hour.review.to_string(), day.review.to_string()],
            vec![
                "Failure rate".into(),
                or_dash(hour.failure_rate.map(|r| percent_to(r, 1))),
                or_dash(day.failure_rate.map(|r| percent_to(r, 1))),
            ],
        ];
        let slowest =
            database.iter().take(3).map(|d| format!("{} {:.1} ms", d.statement, d.average_ms)).collect::<Vec<_>>();
        let steps = s
            .slowest_steps
            .iter()
            .map(|st| vec![st.step.clone(), st.count.to_string(), ms(st.average_ms), ms(st.max_ms)]);
        let failures = s.recent_failures.iter().map(|f| {
            let error = f.error.clone().unwrap_or_default();
            vec![f.run_id.to_string(), f.status.as_str().into(), f.symbol.clone(), f.model_id.clone(), error]
        });
        let (steps, failures): (Vec<_>, Vec<_>) = (steps.collect(), failures.collect());
        let models: Vec<Vec<String>> = s
            .models
            .iter()
            .map(|m| {
                let pace = m.tokens_per_sec.map(|t| format!("{t:.1}"));
                vec![m.model.clone(), m.calls.to_string(), ms(m.first_output_ms.round() as u64), or_dash(pace)]
            })
            .collect();
        view! {
            <div class="stats">
                <section class="card">
                    <h1>"Stats"</h1>
                    <p class="muted">{format!("As of {} UTC.", s.generated_at.format("%Y-%m-%d %H:%M:%S"))}</p>
                    <Table class="figures" heads=&["", "Last hour", "Last day"] rows=figures/>
                    <p>{format!("Active polling connections: {active_pollers} (this process, last 10 s).")}</p>
                    <p>{format!("Database query performance, slowest on average (this process): {}.", or_dash((!slowest.is_empty()).then(|| slowest.join(", "))))}</p>
                </section>
                <section class="card">
                    <h2>"Queue"</h2>
                    <p>{format!("{} waiting, {} running.", s.queue.pending, s.queue.running)}</p>
                </section>
                <section class="card"><h2>"Runs per hour"</h2><RunsChart hours=s.per_hour.clone()/></section>
                <section class="card"><h2>"Duration percentiles"</h2><PercentileChart hours=s.per_hour/></section>
                <section class="card">
                    <h2>"Slowest steps"</h2>
                    {if steps.is_empty() {
                        view! { <p class="muted">"No step finished in the last day."</p> }.into_any()
                    } else {
                        view! { <Table class="history" heads=&["Step", "Runs", "Average", "Longest"] rows=steps/> }.into_any()
                    }}
                </section>
                <section class="card">
                    <h2>"Models"</h2>
                    <p class="muted">"Answered calls of the last day: how soon each model began to write, and how fast it wrote after that."</p>
                    {if models.is_empty() {
                        view! { <p class="muted">"No model answered in the last day."</p> }.into_any()
                    } else {
                        view! { <Table class="history models" heads=&["Model", "Calls", "First output (mean)", "Tokens per second"] rows=models/> }.into_any()
                    }}
                </section>
                <section class="card">
                    <h2>"Recent failures"</h2>
                    {if failures.is_empty() {
                        view! { <p class="muted">"No run failed in the last day."</p> }.into_any()
                    } else {
                        view! { <Table class="history failures" heads=&["Run", "Status", "Symbol", "Model", "Error"] rows=failures/> }.into_any()
                    }}
                </section>
            </div>
        }
        .into_any()
    }

    fn hour_labels(hours: &[HourBucket]) -> Vec<String> {
        hours.iter().map(|h| h.start.format("%H:00").to_string()).collect()
    }

    /// Finished runs per hour as bars, the failed part over them in its own colour.
    #[component]
    fn RunsChart(hours: Vec<HourBucket>) -> impl IntoView {
        let total: u64 = hours.iter().map(|h| h.finished).sum();
        let failed: u64 = hours.iter().map(|h| h.failed).sum();
        let most = hours.iter().map(|h| h.finished).max().unwrap_or(0);
        let description = format!("{total} in all, {failed} of them failed; at most {most} in an hour.");
        let series = vec![
            Series::bars("Finished", "finished", hours.iter().map(|h| Some(h.finished as f64)).collect()),
            Series::bars("Failed", "failed", hours.iter().map(|h| Some(h.failed as f64)).collect()),
        ];
        let axis = YAxis { format: |v| format!("{v:.0}"), whole: true, ..YAxis::default() };
        let title = "Runs finished per hour over the last day (UTC)".to_string();
        view! { <Chart id="runs-per-hour" title description x=hour_labels(&hours) series axis height=200.0/> }
    }

    /// p50, p90 and p99 of completed runs' durations per hour, as lines broken where an hour
    /// had none.
    #[component]
    fn PercentileChart(hours: Vec<HourBucket>) -> impl IntoView {
        let description = match hours.iter().filter_map(|h| h.p99_ms).max() {
            Some(longest) => format!("The highest p99 of an hour is {}.", ms(longest)),
            None => "No run completed in the last day.".to_string(),
        };
        let pick = |f: fn(&HourBucket) -> Option<u64>| hours.iter().map(|h| f(h).map(|v| v as f64)).collect();
        let series = vec![
            Series::line("p50", "p50", pick(|h| h.p50_ms)),
            Series::line("p90", "p90", pick(|h| h.p90_ms)),
            Series::line("p99", "p99", pick(|h| h.p99_ms)),
        ];
        let axis = YAxis { format: |v| ms(v.round() as u64), from_zero: true, whole: true, reference: None };
        let title = "Durations of completed runs per hour: p50, p90 and p99 (UTC)".to_string();
        view! { <Chart id="duration-percentiles" title description x=hour_labels(&hours) series axis height=200.0/> }
    }
}
