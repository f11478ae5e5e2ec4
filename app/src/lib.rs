//! The Leptos user interface, rendered on the server, with islands hydrated in the browser.
//!
//! Every page of the site is a route here, under one shell ([`App`]: header, navigation,
//! footer, the notice of a refused form). Pages are server-rendered HTML; only two islands run
//! in the browser: the new-analysis form ([`routes::home::RunForm`]) and the live view of a
//! run ([`routes::run::RunLive`]). Results, charts, reports, history, backtests and stats are
//! HTML from the server, so the WASM bundle carries none of their code, and a page reads fully
//! before any WASM has loaded.
//!
//! Reading order:
//! - [`api`]: the server functions (thin: context → `RunService` → error mapping) and the
//!   browser's REST client for progress polling (with ETags).
//! - [`routes`]: one file per page — `/` (new analysis), `/runs/:id` (progress then result),
//!   `/runs` (history), `/settings`, `/share/:secret`, `/backtests` and `/backtests/:id`, `/batches/:id`, `/schedules`,
//!   `/stats` (the operators').
//! - [`components`]: the progress view, the result view, a backtest's grid and scorecard, the
//!   one chart, small pieces (a refused form's notice among them).
//! - [`poll`]: the polling loop of the run page (browser only).
//! - [`markdown`]: model reports rendered as views — never as HTML, so nothing a model writes
//!   can inject markup or script.
//! - [`format`]: durations, percentages, relative times.

// Leptos views are deeply nested types; the release build needs more room to lay them out.
#![recursion_limit = "512"]

use leptos::prelude::*;
use leptos_meta::{Link, Meta, MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, path};

pub mod api;
pub mod components;
pub mod format;
pub mod markdown;
pub mod poll;
pub mod routes;

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Called by each island once it runs in the browser: marks the page as interactive (the
/// browser tests wait for it).
pub fn mark_hydrated() {
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/trading-agents.css"/>
        <Link rel="icon" href="/favicon.ico"/>
        <Meta name="color-scheme" content="light dark"/>
        <Meta name="description" content="Multi-agent stock analysis: data collection, analysts, a final assessment."/>
        <Title formatter=|t: String| if t.is_empty() { "Trading Agents".to_string() } else { format!("{t} · Trading Agents") }/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <header class="site-header">
                <A href="/" attr:class="brand">
                    <span class="brand-mark" aria-hidden="true">"▲"</span>
                    " Trading Agents"
                </A>
                <nav aria-label="Main">
                    <A href="/" exact=true>"New analysis"</A>
                    <A href="/runs" exact=true>"History"</A>
                    <A href="/schedules" exact=true>"Schedules"</A>
                    <A href="/backtests">"Backtests"</A>
                    <A href="/settings" exact=true>"Settings"</A>
                </nav>
            </header>
            <main id="main">
                <components::RefusalNotice/>
                // Async: each page is sent once its data has loaded, as one whole document.
                // Out-of-order streaming (the default) would send "Loading…" first and the
                // content in `<template>`s that only a script moves into place, so a page read
                // without scripts (or before them) would show no form, no runs and no result.
                // The data is local, so waiting for it costs milliseconds.
                <Routes fallback=routes::NotFound>
                    <Route path=path!("/") view=routes::home::HomePage ssr=SsrMode::Async/>
                    <Route path=path!("/runs") view=routes::history::HistoryPage ssr=SsrMode::Async/>
                    <Route path=path!("/compare") view=routes::compare::ComparePage ssr=SsrMode::Async/>
                    <Route path=path!("/runs/:id") view=routes::run::RunPage ssr=SsrMode::Async/>
                    <Route path=path!("/settings") view=routes::settings::SettingsPage ssr=SsrMode::Async/>
                    <Route path=path!("/share/:secret") view=routes::share::SharePage ssr=SsrMode::Async/>
                    <Route path=path!("/backtests") view=routes::backtests::BacktestsPage ssr=SsrMode::Async/>
                    <Route path=path!("/backtests/:id") view=routes::backtest::BacktestPage ssr=SsrMode::Async/>
                    <Route path=path!("/batches/:id") view=routes::batch::BatchPage ssr=SsrMode::Async/>
                    <Route path=path!("/schedules") view=routes::schedules::SchedulesPage ssr=SsrMode::Async/>
                    <Route path=path!("/stats") view=routes::stats::StatsPage ssr=SsrMode::Async/>
                </Routes>
            </main>
            <footer class="site-footer">
                "Analyses are computed from historical prices and are not investment advice."
            </footer>
        </Router>
    }
}
