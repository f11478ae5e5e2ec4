//! `/backtests`: start a backtest, and see yours.
//!
//! The form is a plain form posted to `POST /backtests` (the server's `http::backtest_forms`),
//! with no island: the server starts the backtest and answers `303 See Other` to its page, or
//! renders this page again with what was sent and why it was refused ([`Rejected`]): each
//! field's error, a limit, or a hosted model's expected cost with a box to confirm it.

use domain::backtest::{BacktestRequest, BacktestSummary, BearishPosition, CostEstimate, HORIZONS_DEFAULT};
use domain::{Depth, ModelInfo, Problem};
use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::api::AppError;
use crate::components::ErrorPanel;

/// A native submission of the form that started no backtest: what was sent and why. Provided
/// as context by the server when it renders the page again in answer to the POST.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub request: BacktestRequest,
    pub problem: Problem,
    /// A hosted model's expected cost, to be confirmed before anything starts.
    pub estimate: Option<CostEstimate>,
}

/// What the page shows: the form's choices and your backtests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestsOverview {
    /// The model catalog, unavailable models included (shown disabled).
    pub models: Vec<ModelInfo>,
    /// Trading days between two as-of dates unless told otherwise.
    pub every_days: u32,
    /// Newest first.
    pub backtests: Vec<BacktestSummary>,
}

#[server]
pub async fn load_backtests() -> Result<BacktestsOverview, AppError> {
    use crate::api::ssr::{context, fail};
    let (ctx, user) = context()?;
    let backtests = ctx.backtests.list(&user.0).await.map_err(fail)?;
    let every_days = application::backtests::EVERY_DAYS_DEFAULT;
    Ok(BacktestsOverview { models: ctx.models.as_ref().clone(), every_days, backtests })
}

#[component]
pub fn BacktestsPage() -> impl IntoView {
    let overview = Resource::new(|| (), |_| load_backtests());
    let rejected = use_context::<Rejected>();
    view! {
        <Title text="Backtests"/>
        <Suspense fallback=|| view! { <section class="card"><p>"Loading…"</p></section> }>
            {move || {
                let rejected = rejected.clone();
                Suspend::new(async move {
                    match overview.await {
                        Ok(o) => view! {
                            <NewBacktest models=o.models every_days=o.every_days rejected/>
                            <BacktestList backtests=o.backtests/>
                        }
                        .into_any(),
                        Err(e) => view! { <section class="card"><ErrorPanel error=e/></section> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

/// The fields of the form, as `FieldError`s name them; errors of others are shown above it.
const FIELDS: [&str; 8] = ["symbols", "from", "to", "everyDays", "horizons", "modelId", "depth", "bearish"];

/// An option of a select: value, label, chosen, offered (a model without its key is not).
type Choice = (String, String, bool, bool);

fn choices<'a>(options: impl IntoIterator<Item = (&'a str, &'a str)>, chosen: &str) -> Vec<Choice> {
    options.into_iter().map(|(value, label)| (value.into(), label.into(), value == chosen, true)).collect()
}

#[component]
fn NewBacktest(models: Vec<ModelInfo>, every_days: u32, rejected: Option<Rejected>) -> impl IntoView {
    let (sent, problem, estimate) = match rejected {
        Some(r) => (r.request, Some(r.problem), r.estimate),
        None => (BacktestRequest::default(), None, None),
    };
    let errors = problem.as_ref().map(|p| p.errors.clone()).unwrap_or_default();
    let error_of = |field: &str| errors.iter().find(|e| e.field == field).map(|e| e.message.clone());
    let notice = match (&estimate, problem) {
        (None, Some(_)) if !errors.is_empty() => {
            let general = errors.iter().filter(|e| !FIELDS.contains(&e.field.as_str()));
            let general = general.map(|e| view! { <p>{format!("{}: {}", e.field, e.message)}</p> }).collect_view();
            Some(view! { <div class="error-panel" role="alert"><p>"Please correct the fields below."</p>{general}</div> }.into_any())
        }
        (None, Some(p)) => Some(view! { <ErrorPanel error=AppError(p)/> }.into_any()),
        _ => None,
    };
    let symbols = if sent.symbols.is_empty() { "AAPL, NVDA".to_string() } else { sent.symbols.join(", ") };
    let horizons = sent.horizons.clone().unwrap_or_else(|| HORIZONS_DEFAULT.to_vec());
    let horizons = horizons.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    let models = models.into_iter().map(|m| {
        let chosen = sent.model_id.as_ref().map_or(m.default, |id| *id == m.id);
        (m.id, m.label, chosen, m.available)
    });
    let depth = sent.depth.clone().unwrap_or_else(|| Depth::Quick.id().into());
    let depths = choices(Depth::ALL.map(|d| (d.id(), d.label())), &depth);
    let bearish = sent.bearish.clone().unwrap_or_else(|| BearishPosition::Flat.id().into());
    let bearish =
        choices([(BearishPosition::Flat.id(), "Stay out (flat)"), (BearishPosition::Short.id(), "Go short")], &bearish);
    let (from, to) = (sent.from.unwrap_or_else(|| "2019-01-01".into()), sent.to.unwrap_or_else(|| "2019-06-28".into()));
    view! {
        <section class="card">
            <h1>"New backtest"</h1>
            <p class="lead">"One analysis per symbol and as-of date; each rating is then scored against what the prices did next."</p>
            {notice}
            <form method="post" action="/backtests" class="backtest-form">
                <InputField name="symbols" label="Symbols" kind="text" value=symbols hint="Comma-separated, e.g. AAPL, NVDA." error=error_of("symbols")/>
                <InputField name="from" label="From" kind="date" value=from error=error_of("from")/>
                <InputField name="to" label="To" kind="date" value=to error=error_of("to")/>
                <InputField name="everyDays" label="Step (trading days)" kind="number" value=sent.every_days.unwrap_or(every_days).to_string()
                    hint="Between two as-of dates." error=error_of("everyDays")/>
                <InputField name="horizons" label="Horizons (trading days)" kind="text" value=horizons
                    hint="Forward returns are read this many trading days on." error=error_of("horizons")/>
                <SelectField name="model" label="Model" choices=models.collect() error=error_of("modelId")/>
                <SelectField name="depth" label="Research depth" choices=depths error=error_of("depth")/>
                <SelectField name="bearish" label="On Underweight and Sell" choices=bearish error=error_of("bearish")/>
                {estimate.map(|e| view! { <CostToConfirm estimate=e/> })}
                <button type="submit" class="primary">"Run backtest"</button>
            </form>
        </section>
    }
}

/// A labelled input with its hint and, once refused, its error.
#[component]
fn InputField(
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    value: String,
    #[prop(optional)] hint: &'static str,
    error: Option<String>,
) -> impl IntoView {
    let id = format!("bt-{name}");
    let described = match (hint, &error) {
        (_, Some(_)) => Some(format!("{name}-error")),
        ("", None) => None,
        (_, None) => Some(format!("{name}-help")),
    };
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <input id=id name=name type=kind value=value aria-invalid=error.is_some().then_some("true") aria-describedby=described/>
            {(!hint.is_empty()).then(|| view! { <p class="help" id=format!("{name}-help")>{hint}</p> })}
            <FieldError name error/>
        </div>
    }
}

#[component]
fn SelectField(name: &'static str, label: &'static str, choices: Vec<Choice>, error: Option<String>) -> impl IntoView {
    let options = choices.into_iter().map(|(value, label, selected, offered)| {
        view! { <option value=value selected=selected disabled=!offered>{label}</option> }
    });
    view! {
        <div class="field">
            <label for=format!("bt-{name}")>{label}</label>
            <select id=format!("bt-{name}") name=name>{options.collect_view()}</select>
            <FieldError name error/>
        </div>
    }
}

/// A field's error, if any, named `<field>-error` for `aria-describedby`.
#[component]
fn FieldError(name: &'static str, error: Option<String>) -> impl IntoView {
    error.map(|e| view! { <p class="help error" id=format!("{name}-error")>{e}</p> })
}

/// A hosted model's expected cost, and the box that confirms it.
#[component]
fn CostToConfirm(estimate: CostEstimate) -> impl IntoView {
    let e = estimate;
    let per_run = format!(
        ": {} model calls and about {} tokens a run, ${:.4} a run at the catalog's prices.",
        e.calls_per_run, e.tokens_per_run, e.per_run_usd
    );
    view! {
        <div class="cost-estimate" role="alert">
            <p>
                {format!("{} cells with {} are expected to cost about ", e.cells, e.model_id)}
                <strong id="expected-cost">{format!("${:.4}", e.expected_cost_usd)}</strong>
                {per_run}
            </p>
            <label class="check"><input type="checkbox" name="confirmCost" value="on"/>" I accept this cost"</label>
        </div>
    }
}

#[component]
fn BacktestList(backtests: Vec<BacktestSummary>) -> impl IntoView {
    let items = backtests.iter().map(|b| {
        let s = &b.spec;
        let what = format!("{} · {} to {} every {} days", s.symbols.join(", "), s.from, s.to, s.every_days);
        let cells = format!("{} cells{}", b.cells, if b.cancelled { ", cancelled" } else { "" });
        view! { <li><a href=format!("/backtests/{}", b.backtest_id)>{what}</a>" "<span class="muted">{cells}</span></li> }
    });
    view! {
        <section class="card">
            <h2>"Your backtests"</h2>
            {if backtests.is_empty() {
                view! { <p class="muted">"None yet."</p> }.into_any()
            } else {
                view! { <ul class="backtest-list">{items.collect_view()}</ul> }.into_any()
            }}
        </section>
    }
}
