//! `/settings`: personal API tokens — made, listed and revoked with plain forms, so the page
//! works without its WASM. A new token's secret is shown once, in the answer to the form that
//! made it (the server renders this page with [`CreatedToken`] in context).

use domain::ApiToken;
use domain::access::TOKEN_NAME_MAX;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::AppError;
use crate::components::ErrorPanel;
use crate::format::timestamp;

/// The token the form just made, with its secret: rendered once, never stored.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub name: String,
    pub secret: String,
}

/// Why the form was refused, shown next to it.
#[derive(Debug, Clone)]
pub struct TokenFormError(pub String);

/// Your tokens, newest first; never their secrets.
#[server]
pub async fn list_tokens() -> Result<Vec<ApiToken>, AppError> {
    use crate::api::ssr::{context, fail};
    let (ctx, user) = context()?;
    ctx.access.tokens(&user).await.map_err(fail)
}

#[component]
pub fn SettingsPage() -> impl IntoView {
    let tokens = Resource::new(|| (), |_| list_tokens());
    let created = use_context::<CreatedToken>();
    let error = use_context::<TokenFormError>();
    view! {
        <Title text="Settings"/>
        <section class="card">
            <h1>"API tokens"</h1>
            <p>
                "A token lets a script use the API as you: it reads, starts and cancels the same runs as this browser. Send it as "
                <code>"Authorization: Bearer <token>"</code> ". Anyone holding it is you, so keep it secret and revoke it when it is no longer needed."
            </p>
            {created.map(|c| view! {
                <div class="notice" role="status">
                    <p>"Your new token " <strong>{c.name}</strong> ". Copy it now: it is not shown again."</p>
                    <pre><code class="token-secret">{c.secret}</code></pre>
                </div>
            })}
            <form method="post" action="/settings/tokens" class="token-form">
                <label for="token-name">"Name"</label>
                <input id="token-name" name="name" required maxlength=TOKEN_NAME_MAX.to_string() placeholder="e.g. laptop script"/>
                <button type="submit">"Create token"</button>
                {error.map(|e| view! { <p class="help error" role="alert">{e.0}</p> })}
            </form>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match tokens.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted">"You have no tokens."</p> }.into_any(),
                        Ok(list) => view! {
                            <div class="table-wrap">
                                <table class="tokens">
                                    <thead><tr><th scope="col">"Name"</th><th scope="col">"Created"</th><th scope="col"></th></tr></thead>
                                    <tbody>
                                        {list.into_iter().map(|t| view! {
                                            <tr data-token=t.id.clone()>
                                                <td>{t.name.clone()}</td>
                                                <td>{timestamp(t.created_at)}</td>
                                                <td>
                                                    <form method="post" action=format!("/settings/tokens/{}/revoke", t.id)>
                                                        <button type="submit" class="secondary">"Revoke"</button>
                                                    </form>
                                                </td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                        }.into_any(),
                        Err(e) => view! { <ErrorPanel error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
