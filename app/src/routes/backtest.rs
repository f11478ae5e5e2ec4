//! `/backtests/:id`: a backtest — its grid of cells filling in (each links to its run), then
//! the scorecard per rating and the ratings strategy against its baselines with their equity.
//!
//! No island: while the backtest runs, the page refreshes itself every 2 s through a
//! `<meta http-equiv="refresh">` in its head, so it works the same with scripts off. Cancel is
//! a plain form posted to `POST /backtests/:id/cancel` (answered with `303 See Other`).

use domain::backtest::{BacktestStatus, BacktestView};
use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_params_map;

use crate::api::AppError;
use crate::components::ErrorPanel;
use crate::components::backtest::{BacktestHeader, CellGrid, ScorecardView};

#[server]
pub async fn load_backtest(id: String) -> Result<BacktestView, AppError> {
    use crate::api::ssr::{context, fail};
    let (ctx, user) = context()?;
    // An id that cannot be a backtest's names none of the caller's.
    let id = id.parse().map_err(|_| fail(application::Error::NotFound))?;
    ctx.backtests.view(&user.0, id).await.map_err(fail)
}

#[component]
pub fn BacktestPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").unwrap_or_default());
    let backtest = Resource::new(move || id.get(), load_backtest);
    view! {
        <Title text="Backtest"/>
        <Suspense fallback=|| view! { <section class="card"><p>"Loading the backtest…"</p></section> }>
            {move || Suspend::new(async move {
                match backtest.await {
                    Ok(b) => view! {
                        {(b.status == BacktestStatus::Running).then(|| view! { <Meta http_equiv="refresh" content="2"/> })}
                        <BacktestHeader backtest=b.clone()/>
                        <CellGrid symbols=b.spec.symbols.clone() cells=b.cells.clone()/>
                        <ScorecardView scorecard=b.scorecard/>
                    }
                    .into_any(),
                    Err(e) => view! { <section class="card"><ErrorPanel error=e/></section> }.into_any(),
                }
            })}
        </Suspense>
    }
}
