//! One file per page.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

pub mod backtest;
pub mod backtests;
pub mod batch;
pub mod compare;
pub mod history;
pub mod home;
pub mod run;
pub mod schedules;
pub mod settings;
pub mod share;
pub mod stats;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <section class="card">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. " <A href="/">"Start a new analysis"</A> "."</p>
        </section>
    }
}
