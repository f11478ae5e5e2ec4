//! `/share/:secret`: a run opened through its owner's share link — read-only: its progress,
//! then its result and its log, with no Cancel or Retry. Rendered on the server; while the run
//! is active the page refreshes itself as a run page without its WASM does.

use chrono::Utc;
use domain::{JobStatus, Progress, RunLog};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::AppError;
use crate::components::ErrorPanel;
use crate::components::log::RunLogView;
use crate::components::progress::ProgressView;
use crate::components::result::ResultView;
use crate::poll::{Connection, Mode};

/// The progress of the run a share link opens, its log, and whether the one opening it is the
/// run's owner (who has just made the link, or keeps it).
#[server]
pub async fn shared_progress(secret: String) -> Result<(Progress, RunLog, bool), AppError> {
    use crate::api::ssr::{fail, internal};
    let ctx = use_context::<crate::api::ssr::AppContext>().ok_or_else(|| internal("no app context"))?;
    let (run, owner) =
        ctx.access.shared(&secret).await.map_err(fail)?.ok_or_else(|| fail(application::Error::NotFound))?;
    let (progress, _) = ctx.runs.progress(&owner.0, run).await.map_err(fail)?;
    let log = ctx.runs.log(&owner.0, run).await.map_err(fail)?;
    let viewer = crate::api::ssr::context().ok().map(|(_, user)| user);
    Ok((progress, log, viewer.is_some_and(|v| v == owner)))
}

#[component]
pub fn SharePage() -> impl IntoView {
    let params = use_params_map();
    let secret = Memo::new(move |_| params.read().get("secret").unwrap_or_default());
    let progress = Resource::new(move || secret.get(), shared_progress);
    view! {
        <Title text="Shared analysis"/>
        <Suspense fallback=|| view! { <section class="card"><p>"Loading the run…"</p></section> }>
            {move || Suspend::new(async move {
                match progress.await {
                    Ok((p, log, owner)) => {
                        let duration = p.run.duration;
                        let address = format!("/share/{}", secret.get_untracked());
                        let run_page = format!("/runs/{}", p.run.run_id);
                        let active = !p.run.status.is_terminal();
                        let error = p.run.error.clone().filter(|_| matches!(p.run.status, JobStatus::Failed | JobStatus::Timeout));
                        let heading = format!("{} · shared analysis", p.run.symbol);
                        view! {
                            {active.then(|| view! {
                                <noscript><meta http-equiv="refresh" content="2"/></noscript>
                                <script src="/run-fallback.js" defer nonce=leptos::nonce::use_nonce()></script>
                            })}
                            <section class="card run-header" data-testid="shared">
                                <h1>{heading}</h1>
                                {if owner {
                                    view! {
                                        <p data-testid="share-owner">"This is the read-only link you made. Copy its address now: it is shown only here, never again."</p>
                                        <label for="share-address">"The address to pass on"</label>
                                        <CopyLink path=address/>
                                        <dl class="share-facts" data-testid="share-who">
                                            <div>
                                                <dt>"Who can open it"</dt>
                                                <dd>"Anyone who has the address, without signing in."</dd>
                                            </div>
                                            <div>
                                                <dt>"What they can do"</dt>
                                                <dd>"Follow this run and read its result; not cancel or retry it, nor see your other runs."</dd>
                                            </div>
                                            <div>
                                                <dt>"Until"</dt>
                                                <dd>"You revoke it, on " <a href=run_page>"the run's page"</a> ", where your live links are listed."</dd>
                                            </div>
                                        </dl>
                                    }
                                    .into_any()
                                } else {
                                    view! { <p class="muted">"A read-only view its owner shared with you."</p> }.into_any()
                                }}
                            </section>
                            <ProgressView
                                progress=RwSignal::new(p.run)
                                connection=RwSignal::new(Connection::default())
                                now=RwSignal::new(Utc::now())
                                last_seen=RwSignal::new(Utc::now())
                                mode=RwSignal::new(Mode::Polling)
                            />
                            {error.map(|e| view! { <section class="card error-panel" role="alert"><p>{e}</p></section> })}
                            {p.result.map(|result| view! { <ResultView result duration/> })}
                            <RunLogView log=Signal::stored(log)/>
                        }
                        .into_any()
                    }
                    Err(e) => view! { <section class="card"><ErrorPanel error=e/></section> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The new link's address with a button that copies it. Rendered on the server (and without
/// scripts) the field holds the path, to select and copy by hand; once the island runs it holds
/// the whole address, and the button puts that on the clipboard (or, where the page may not
/// write the clipboard, selects it for the reader to copy).
#[island]
pub fn CopyLink(path: String) -> impl IntoView {
    let address = RwSignal::new(path.clone());
    let said = RwSignal::new("");
    #[cfg(feature = "hydrate")]
    if let Some(origin) = web_sys::window().and_then(|w| w.location().origin().ok()) {
        address.set(format!("{origin}{path}"));
    }
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            // Where the clipboard may not be written, the address is selected to copy by hand.
            let select = move || {
                if let Some(input) = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.get_element_by_id("share-address"))
                    .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
                {
                    input.select();
                    said.set("Selected: press Ctrl+C (⌘C on a Mac) to copy it.");
                }
            };
            let Some(window) = web_sys::window() else { return };
            let navigator = window.navigator();
            let writable = js_sys::Reflect::get(&navigator, &"clipboard".into()).is_ok_and(|c| !c.is_undefined());
            if !writable {
                return select();
            }
            // "Copied." only once the browser says it wrote the clipboard.
            let written =
                wasm_bindgen_futures::JsFuture::from(navigator.clipboard().write_text(&address.get_untracked()));
            leptos::task::spawn_local(async move {
                match written.await {
                    Ok(_) => said.set("Copied."),
                    Err(_) => select(),
                }
            });
        }
    };
    view! {
        <div class="copy-link">
            <input id="share-address" class="share-address" data-testid="share-address" readonly value=path prop:value=move || address.get()/>
            <button type="button" class="secondary" data-testid="copy-link" on:click=copy>"Copy link"</button>
            <span class="muted" role="status" data-testid="copy-status">{move || said.get()}</span>
        </div>
    }
}

/// The share links of one of your runs (never their secrets).
#[server]
pub async fn list_shares(run_id: String) -> Result<Vec<domain::ShareLink>, AppError> {
    use crate::api::ssr::{context, fail};
    let (ctx, user) = context()?;
    ctx.access.shares(&user, crate::api::ssr::run_id(&run_id)?).await.map_err(fail)
}

/// On the owner's run page: make a read-only link, and revoke the ones made. Plain forms.
///
/// A link's address is shown once, on the page making it leads to, and never listed again:
/// only a SHA-256 of its secret is stored (like an API token's), so neither a copy of the
/// database nor a look over the owner's shoulder at this list opens the run. The list names
/// each live link by when it was made instead; an owner who lost an address revokes that link
/// and makes another, which costs nothing.
#[component]
pub fn ShareLinks(run_id: String) -> impl IntoView {
    let links = Resource::new(
        {
            let run_id = run_id.clone();
            move || run_id.clone()
        },
        list_shares,
    );
    let make = format!("/runs/{run_id}/share");
    view! {
        <section class="card share-links" aria-labelledby="share-heading">
            <h2 id="share-heading">"Share"</h2>
            <p class="muted">"Anyone with a link can follow this run and read its result, but not cancel or retry it. A link's address is shown once, with a button to copy it, on the page making it opens: only a fingerprint of it is kept, so a copy of the database opens nothing. Lost one? Revoke it and make another."</p>
            <form method="post" action=make>
                <button type="submit" class="secondary">"Make a read-only link"</button>
            </form>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let list = links.await.unwrap_or_default();
                    (!list.is_empty()).then(|| view! {
                        <h3 class="share-list-heading">{match list.len() { 1 => "1 live link".to_string(), n => format!("{n} live links") }}</h3>
                        <ul class="share-list" data-testid="share-list">
                            {list.into_iter().map(|l| {
                                let revoke = format!("/runs/{}/shares/{}/revoke", l.run_id, l.id);
                                view! {
                                    <li data-share=l.id.clone()>
                                        {format!("Made {}: opens this run, read-only, for anyone with its address", crate::format::timestamp(l.created_at))}
                                        " "
                                        <form method="post" action=revoke class="inline">
                                            <button type="submit" class="secondary">"Revoke"</button>
                                        </form>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    })
                })}
            </Suspense>
        </section>
    }
}
