//! `/`: start a new analysis, and see your recent runs.
//!
//! The form is a plain HTML form that posts to `/` (handled by the server's `http::pages`):
//! before the island has hydrated, or without WASM or JavaScript at all, the browser submits
//! it natively, the server starts the run and answers `303 See Other` to the run's page, or
//! renders this page again with the submitted values and the field errors. Once hydrated, the
//! island takes the submit over: validation as you type, the start through a server function.

use domain::batch::{MAX_SYMBOLS, split_symbols};
use domain::{AnalystKind, Depth, Problem, StartRequest, Symbol};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::api::{RunFormOptions, StartRun, form_options, list_runs};
use crate::components::{ErrorPanel, StatusBadge};
use crate::format::{ago, now};

/// A native submission of the form that did not start a run: what was sent and why it failed.
/// Provided as context by the server when it renders the page again in answer to the POST.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub request: StartRequest,
    pub problem: Problem,
}

#[component]
pub fn HomePage() -> impl IntoView {
    let options = Resource::new(|| (), |_| form_options());
    let rejected = use_context::<Rejected>();
    let (submitted, problem) = match rejected {
        Some(r) => (Some(r.request), Some(r.problem)),
        None => (None, None),
    };
    view! {
        <Title text="New analysis"/>
        <Suspense fallback=|| view! { <section class="card"><p>"Loading…"</p></section> }>
            {move || {
                let (submitted, problem) = (submitted.clone(), problem.clone());
                Suspend::new(async move {
                    match options.await {
                        Ok(options) => view! { <RunForm options submitted problem/> }.into_any(),
                        Err(e) => view! { <section class="card"><ErrorPanel error=e/></section> }.into_any(),
                    }
                })
            }}
        </Suspense>
        <RecentRuns/>
    }
}

/// The new-analysis form: validation as you type, then the start request. An island: it runs
/// in the browser, with what it offers rendered in by the server.
///
/// `submitted` and `problem` are a rejected native submission, shown again with its errors.
#[island]
pub fn RunForm(options: RunFormOptions, submitted: Option<StartRequest>, problem: Option<Problem>) -> impl IntoView {
    crate::mark_hydrated();
    let RunFormOptions { models, analysts, symbols, data_ends } = options;
    let submitted = submitted.unwrap_or_default();
    let symbol = RwSignal::new(submitted.symbol.clone().unwrap_or_else(|| "AAPL".to_string()));
    let model = RwSignal::new(submitted.model_id.clone().unwrap_or_default());
    let chosen = RwSignal::new(match &submitted.analysts {
        Some(ids) => AnalystKind::ALL.into_iter().filter(|k| ids.iter().any(|id| id == k.id())).collect(),
        None => AnalystKind::ALL.to_vec(),
    });
    let as_of = RwSignal::new(submitted.as_of.clone().unwrap_or_default());
    let depth = RwSignal::new(submitted.depth.as_deref().and_then(|d| d.parse::<Depth>().ok()).unwrap_or(Depth::Quick));
    let deep_model = RwSignal::new(submitted.deep_model_id.clone().unwrap_or_default());
    // The server's verdict on the submission stands until the form is edited.
    let server_errors = RwSignal::new(problem.as_ref().map(|p| p.errors.clone()).unwrap_or_default());
    let server_problem = RwSignal::new(problem);
    let server_error = move |field: &'static str| {
        server_errors.with(|e| e.iter().find(|e| e.field == field).map(|e| e.message.clone()))
    };
    let symbol_error = Signal::derive(move || symbol.with(|s| list_error(s)).or_else(|| server_error("symbol")));
    let model_error = Signal::derive(move || server_error("modelId"));
    let analysts_error = Signal::derive(move || server_error("analysts"));
    let as_of_error = Signal::derive(move || server_error("asOf"));
    let edited = move |_| {
        server_errors.set(Vec::new());
        server_problem.set(None);
    };

    let start = ServerAction::<StartRun>::new();
    Effect::new(move |_| {
        if let Some(Ok(started)) = start.value().get() {
            crate::routes::run::go_to(&format!("/runs/{}", started.run_id));
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        let invalid = symbol_error.get_untracked().is_some() || chosen.with_untracked(|c| c.is_empty());
        // A list of symbols is a batch: the form is posted as it is, and answered with the
        // batch's page.
        if !invalid && symbol.with_untracked(|s| split_symbols(s).len() > 1) {
            return;
        }
        ev.prevent_default();
        if invalid {
            return;
        }
        let model_id = model.get_untracked();
        let request = StartRequest {
            symbol: Some(symbol.get_untracked()),
            model_id: (!model_id.is_empty()).then_some(model_id),
            analysts: Some(chosen.get_untracked().iter().map(|a| a.id().to_string()).collect()),
            as_of: Some(as_of.get_untracked()).filter(|d| !d.is_empty()),
            depth: Some(depth.get_untracked().id().to_string()),
            deep_model_id: Some(deep_model.get_untracked())
                .filter(|m| !m.is_empty() && !depth.get_untracked().is_quick()),
            ..StartRequest::default()
        };
        start.dispatch(StartRun { request });
    };

    view! {
        <section class="card">
            <h1>"New analysis"</h1>
            <p class="lead">
                "Pick a stock and the analysts to ask. Data is collected, the analysts work in parallel, "
                "and a final assessment weighs their views. You can leave the page: the run goes on."
            </p>
            <form class="run-form" method="post" action="/" on:submit=submit on:input=edited novalidate>
                <SymbolField symbol error=symbol_error symbols/>
                <ModelField model error=model_error models=models.clone()/>
                <AnalystsField chosen error=analysts_error analysts/>
                <DepthField depth deep_model models/>
                <AsOfField as_of symbol data_ends error=as_of_error/>
                <button type="submit" class="primary" disabled=move || start.pending().get()>
                    {move || if start.pending().get() { "Starting…" } else { "Run analysis" }}
                </button>
                {move || start.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorPanel error=e/> })}
                {move || server_problem.get().map(|p| view! { <ErrorPanel error=crate::api::AppError(p)/> })}
            </form>
        </section>
    }
}

/// What is wrong with the symbol field: one symbol, or a list of them separated by commas.
fn list_error(field: &str) -> Option<String> {
    let symbols = split_symbols(field);
    if symbols.len() > MAX_SYMBOLS {
        return Some(format!("{} symbols: a batch runs at most {MAX_SYMBOLS}", symbols.len()));
    }
    match symbols.as_slice() {
        [] => field.parse::<Symbol>().err().map(|e| e.0),
        [one] => one.parse::<Symbol>().err().map(|e| e.0),
        many => many.iter().find_map(|s| s.parse::<Symbol>().err().map(|e| format!("{s}: {}", e.0))),
    }
}

#[component]
fn SymbolField(symbol: RwSignal<String>, error: Signal<Option<String>>, symbols: Vec<String>) -> impl IntoView {
    view! {
        <div class="field">
            <label for="symbol">"Symbol"</label>
            <input
                id="symbol"
                name="symbol"
                list="symbols"
                autocomplete="off"
                spellcheck="false"
                required
                value=symbol.get_untracked()
                prop:value=move || symbol.get()
                on:input=move |ev| symbol.set(event_target_value(&ev).to_uppercase())
                aria-invalid=move || error.get().is_some().to_string()
                aria-describedby="symbol-help"
            />
            <datalist id="symbols">
                {symbols.into_iter().map(|s| view! { <option value=s></option> }).collect_view()}
            </datalist>
            <p id="symbol-help" class=move || if error.get().is_some() { "help error" } else { "help" }>
                {move || error.get().unwrap_or_else(|| "A ticker from the bundled data, e.g. AAPL — or several, separated by commas, for a batch (AAPL, MSFT, NVDA)."
                        .into())}
            </p>
        </div>
    }
    .into_any()
}

#[component]
fn ModelField(model: RwSignal<String>, error: Signal<Option<String>>, models: Vec<domain::ModelInfo>) -> impl IntoView {
    let chosen = model.get_untracked();
    view! {
        <div class="field">
            <label for="model">"Model"</label>
            <select id="model" name="model" on:change=move |ev| model.set(event_target_value(&ev))>
                {models
                    .into_iter()
                    .map(|m| {
                        let label = match &m.reason {
                            Some(r) => format!("{} — unavailable: {r}", m.label),
                            None => m.label.clone(),
                        };
                        let selected = if chosen.is_empty() { m.default } else { chosen == m.id };
                        view! { <option value=m.id.clone() disabled=!m.available selected=selected>{label}</option> }
                    })
                    .collect_view()}
            </select>
            <FieldErrorText error/>
        </div>
    }
    .into_any()
}

#[component]
fn AnalystsField(
    chosen: RwSignal<Vec<AnalystKind>>,
    error: Signal<Option<String>>,
    analysts: Vec<domain::AnalystInfo>,
) -> impl IntoView {
    view! {
        <fieldset class="field analysts">
            <legend>"Analysts"</legend>
            {analysts
                .into_iter()
                .map(|a| view! { <AnalystChoice kind=a.id name=a.name description=a.description chosen/> })
                .collect_view()}
            {move || {
                error.get().or_else(|| chosen.with(|c| c.is_empty()).then(|| "Choose at least one analyst.".to_string()))
                    .map(|e| view! { <p class="help error">{e}</p> })
            }}
        </fieldset>
    }
    .into_any()
}

#[component]
fn AnalystChoice(
    kind: AnalystKind,
    name: String,
    description: String,
    chosen: RwSignal<Vec<AnalystKind>>,
) -> impl IntoView {
    let id = format!("analyst-{}", kind.id());
    let for_id = id.clone();
    // The attribute is what a page read without WASM shows; the property follows the signal.
    let checked = chosen.with_untracked(|c| c.contains(&kind));
    view! {
        <label class="check" for=for_id>
            <input
                type="checkbox"
                id=id
                name="analysts"
                value=kind.id()
                checked=checked
                prop:checked=move || chosen.with(|c| c.contains(&kind))
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    chosen.update(|c| {
                        c.retain(|k| *k != kind);
                        if on {
                            c.push(kind);
                            c.sort();
                        }
                    });
                }
            />
            <span><strong>{name}</strong><br/><span class="muted">{description}</span></span>
        </label>
    }
    .into_any()
}

#[component]
fn DepthField(depth: RwSignal<Depth>, deep_model: RwSignal<String>, models: Vec<domain::ModelInfo>) -> impl IntoView {
    view! {
        <div class="field">
            <label for="depth">"Research depth"</label>
            <select id="depth" name="depth"
                on:change=move |ev| depth.set(event_target_value(&ev).parse().unwrap_or_default())>
                {Depth::ALL
                    .into_iter()
                    .map(|d| view! { <option value=d.id() selected=d == depth.get_untracked()>{d.label()}</option> })
                    .collect_view()}
            </select>
            <p class="help">
                "Standard and deep runs add a bull/bear debate, a research manager, a trader, three risk "
                "analysts and a portfolio manager after the analysts."
            </p>
        </div>
        <div class="field" hidden=move || depth.get().is_quick()>
            <label for="deep-model">"Research and portfolio managers " <span class="muted">"(optional)"</span></label>
            <select id="deep-model" name="deepModelId" on:change=move |ev| deep_model.set(event_target_value(&ev))>
                <option value="" selected=true>"The same model"</option>
                {models
                    .into_iter()
                    .filter(|m| m.available)
                    .map(|m| view! { <option value=m.id.clone()>{m.label.clone()}</option> })
                    .collect_view()}
            </select>
            <p class="help">"A stronger model for the two managers, as TradingAgents uses one."</p>
        </div>
    }
    .into_any()
}

#[component]
fn AsOfField(
    as_of: RwSignal<String>,
    symbol: RwSignal<String>,
    data_ends: Vec<(String, chrono::NaiveDate)>,
    error: Signal<Option<String>>,
) -> impl IntoView {
    let latest = data_ends.iter().map(|(_, d)| *d).max();
    // The day an empty field means, for the symbol typed: its data's last day.
    let end_of = move || {
        let s = symbol.get();
        data_ends.iter().find(|(name, _)| name.eq_ignore_ascii_case(s.trim())).map(|(_, d)| *d)
    };
    let end = end_of.clone();
    view! {
        <div class="field">
            <label for="as-of">"As of " <span class="muted">"(optional)"</span></label>
            <input id="as-of" name="asOf" type="date" min="2000-01-01"
                max=latest.map(|d| d.to_string())
                value=as_of.get_untracked()
                prop:value=move || as_of.get()
                on:input=move |ev| as_of.set(event_target_value(&ev))/>
            <p class="help" data-testid="as-of-help">
                "Analyse as if it were this day. Empty: "
                {move || match end() {
                    Some(d) => format!("{d}, the last day of {}'s data.", symbol.get().trim()),
                    None => match latest {
                        Some(d) => format!("the last day of the symbol's data ({d} for most)."),
                        None => "the latest day the market data has.".into(),
                    },
                }}
            </p>
            <FieldErrorText error/>
        </div>
    }
    .into_any()
}

/// A field's error from the server, if any.
#[component]
fn FieldErrorText(error: Signal<Option<String>>) -> impl IntoView {
    move || error.get().map(|e| view! { <p class="help error" role="alert">{e}</p> })
}

#[component]
fn RecentRuns() -> impl IntoView {
    let recent = Resource::new(|| (), |_| list_runs(Default::default()));
    view! {
        <section class="card">
            <h2>"Your recent runs"</h2>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match recent.await {
                        Ok(page) if page.runs.is_empty() => view! { <p class="muted">"No runs yet."</p> }.into_any(),
                        Ok(page) => {
                            let t = now();
                            view! {
                                <ul class="recent">
                                    {page.runs.into_iter().take(5).map(|r| view! {
                                        <li>
                                            <A href=format!("/runs/{}", r.run_id)>{r.symbol.clone()}</A>
                                            " " <StatusBadge status=r.status/>
                                            " " {r.rating.map(|x| x.as_str())}
                                            " " <span class="muted">{ago(r.created_at, t)}</span>
                                        </li>
                                    }).collect_view()}
                                </ul>
                                <p><A href="/runs">"All runs"</A></p>
                            }.into_any()
                        }
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
    .into_any()
}
