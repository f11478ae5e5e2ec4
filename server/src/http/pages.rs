//! The pages' forms, posted natively: what makes the site work before its WASM has loaded,
//! or without JavaScript at all — and the pages rendered in answer to them.
//!
//! Each form is a plain `method="post"` form (some of which an island takes over once
//! hydrated, with a server function). Posted natively, it lands on a handler: here the
//! new-analysis form on `POST /` and a run's Cancel and Retry on `POST /runs/:id/cancel` and
//! `…/retry`; the share, token and backtest forms in their own modules. Success is a
//! `303 See Other`, so a reload never posts twice. A refusal is answered by rendering the
//! Leptos page the form is on, as for a GET of it, with the refusal in its context:
//!
//! - a form that starts something (`/`, `/backtests`, a new token) comes back filled in with
//!   what was sent and why it was refused — each field's error, a limit, a cost to confirm —
//!   to any client, as a form does;
//! - any other refusal is shown at the top of the form's page ([`app::components::Refusal`])
//!   to a browser, which asks for HTML; other clients get the problem, as from the API.
//!
//! Either way with the refusal's status and `Retry-After`. The rate limits do not answer a
//! native form themselves: they mark it [`Limited`] and its handler refuses it.
//!
//! The same [`application::RunService`] calls as the REST API and the server functions, so limits,
//! validation and ownership are the same three ways.

use application::Error;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use domain::StartRequest;
use leptos::prelude::provide_context;

use super::extract::run_id;
use super::limits::{Limited, refusal};
use super::problem::ApiError;
use super::reply::see_other;
use super::session::identity;
use super::{AppState, BODY_LIMIT, page_context};

/// The new-analysis form's fields as a browser encodes them (`application/x-www-form-urlencoded`,
/// one `analysts` pair per ticked box). Empty fields mean "not given", as in the JSON API.
pub fn start_request(body: &[u8]) -> StartRequest {
    let mut request = StartRequest { analysts: Some(Vec::new()), ..StartRequest::default() };
    for (name, value) in form_urlencoded::parse(body) {
        let value = value.trim().to_string();
        let given = (!value.is_empty()).then_some(value.clone());
        match name.as_ref() {
            "symbol" => request.symbol = given,
            "model" | "modelId" => request.model_id = given,
            "asOf" => request.as_of = given,
            "depth" => request.depth = given,
            "deepModelId" => request.deep_model_id = given,
            "analysts" => request.analysts.get_or_insert_with(Vec::new).push(value),
            _ => {}
        }
    }
    request
}

/// Whether the form's symbol field lists more than one symbol (a batch).
fn several_symbols(request: &StartRequest) -> bool {
    request.symbol.as_deref().is_some_and(|s| domain::batch::split_symbols(s).len() > 1)
}

/// A form's body, read whole: a form is small.
pub(crate) async fn form_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    to_bytes(body, BODY_LIMIT).await.map_err(|_| super::problem::too_large())
}

/// `POST /`: start a run from the form, or show the form again with what was sent and why not.
pub async fn start(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match form_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let request = start_request(&body);
    let refused = match (parts.extensions.get::<Limited>().copied(), identity(&parts)) {
        (Some(Limited(secs)), _) => refusal(secs),
        (None, Err(e)) => return refused(&state, parts, "/".into(), e).await,
        // A list of symbols starts a batch of them, with the form's settings.
        (None, Ok(user)) if several_symbols(&request) => {
            let symbols = domain::batch::split_symbols(request.symbol.as_deref().unwrap_or_default());
            let batch = domain::batch::BatchRequest::from_run(&request, symbols);
            match state.context.batches.start(&user.0, &batch).await {
                Ok(started) => return see_other(&format!("/batches/{}", started.batch_id)),
                Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => {
                    return refused(&state, parts, "/".into(), e.into()).await;
                }
                // The list's problems are the symbol field's.
                Err(Error::Invalid(errors)) => Error::Invalid(
                    errors
                        .into_iter()
                        .map(|e| if e.field == "symbols" { domain::FieldError::new("symbol", e.message) } else { e })
                        .collect(),
                )
                .into(),
                Err(e) => e.into(),
            }
        }
        (None, Ok(user)) => match state.service.start(&user.0, &request, None).await {
            Ok(started) => return see_other(&format!("/runs/{}", started.run_id)),
            // Not the form's fault: answered as any form's refusal.
            Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => {
                return refused(&state, parts, "/".into(), e.into()).await;
            }
            Err(e) => e.into(),
        },
    };
    let rejected = app::routes::home::Rejected { request, problem: (*refused.problem).clone() };
    render_refused(&state, parts, "/", refused, move || provide_context(rejected.clone())).await
}

/// `GET /runs/:runId/report.md` — the owner's finished run as one Markdown document
/// (`domain::export::markdown`); `404` for a run that is not theirs or has no result yet.
pub async fn report_md(
    State(state): State<AppState>,
    super::session::Identity(user): super::session::Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    let (progress, _) = state.service.progress(&user.0, id).await?;
    let result = progress.result.ok_or(Error::NotFound)?;
    let log = state.service.log(&user.0, id).await?;
    let mut resp = domain::export::markdown(&result, &progress.run, &log.entries).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/markdown; charset=utf-8"));
    let name = format!("inline; filename=\"{}-{}.md\"", result.symbol.replace('^', ""), result.as_of);
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&name).expect("ascii"));
    Ok(resp)
}

/// `POST /runs/:id/cancel`: cancel, then back to the run's page.
pub async fn cancel(State(state): State<AppState>, Path(raw): Path<String>, parts: Parts) -> Response {
    let result = async {
        let id = run_id(&raw)?;
        state.service.cancel(&identity(&parts)?.0, id).await?;
        Ok(see_other(&format!("/runs/{id}")))
    }
    .await;
    let page = page_of(parts.uri.path(), 2);
    answer_form(&state, parts, page, result).await
}

/// `POST /runs/:id/retry`: a new run, and its page. A run that cannot be retried (it was
/// already, from another tab, or it is still going) leads back to its own page.
pub async fn retry(State(state): State<AppState>, Path(raw): Path<String>, parts: Parts) -> Response {
    let result = async {
        if let Some(Limited(secs)) = parts.extensions.get::<Limited>() {
            return Err(refusal(*secs));
        }
        let id = run_id(&raw)?;
        match state.service.retry(&identity(&parts)?.0, id).await {
            Ok(started) => Ok(see_other(&format!("/runs/{}", started.run_id))),
            Err(Error::NotRetryable(_)) => Ok(see_other(&format!("/runs/{id}"))),
            Err(e) => Err(e.into()),
        }
    }
    .await;
    let page = page_of(parts.uri.path(), 2);
    answer_form(&state, parts, page, result).await
}

/// `POST /runs/:id/rerun` (form: `from`, `model`, `deepModel`, `depth`; an empty one keeps the
/// run's): the new run's page, or this one with why it was refused.
pub async fn rerun(State(state): State<AppState>, Path(raw): Path<String>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let result = async {
        if let Some(Limited(secs)) = parts.extensions.get::<Limited>() {
            return Err(refusal(*secs));
        }
        let id = run_id(&raw)?;
        let body = form_body(body).await?;
        let field = |name: &str| {
            form_urlencoded::parse(&body)
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let request = domain::RerunRequest {
            from: field("from"),
            model_id: field("model"),
            deep_model_id: field("deepModel"),
            depth: field("depth"),
        };
        let started = state.service.rerun(&identity(&parts)?.0, id, &request).await?;
        Ok(see_other(&format!("/runs/{}", started.run_id)))
    }
    .await;
    let page = page_of(parts.uri.path(), 2);
    answer_form(&state, parts, page, result).await
}

/// `POST /runs/:id/tags` (form: `tags`, comma-separated): the run's tags replaced, back to its
/// page; bad tags are refused on the page with why.
pub async fn tags(State(state): State<AppState>, Path(raw): Path<String>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let result = async {
        let id = run_id(&raw)?;
        let body = form_body(body).await?;
        let field = form_urlencoded::parse(&body).find(|(k, _)| k == "tags").map(|(_, v)| v.into_owned());
        let tags: Vec<String> =
            field.unwrap_or_default().split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
        state.service.set_tags(&identity(&parts)?.0, id, &tags).await?;
        Ok(see_other(&format!("/runs/{id}")))
    }
    .await;
    let page = page_of(parts.uri.path(), 2);
    answer_form(&state, parts, page, result).await
}

/// The page at `page` rendered as for a GET of it, in answer to a posted form (or after the
/// stats' check), with what `extra` provides in its context (what was refused, or what was
/// made).
pub(crate) async fn render(
    state: &AppState,
    mut parts: Parts,
    page: &str,
    extra: impl Fn() + Clone + Send + Sync + 'static,
) -> Response {
    parts.method = Method::GET;
    parts.uri = page.parse().unwrap_or_else(|_| Uri::from_static("/"));
    let context = page_context(state);
    let options = state.leptos.clone();
    let render = leptos_axum::render_app_async_with_context(
        move || {
            context();
            extra();
        },
        move || app::shell(options.clone()),
    );
    render(Request::from_parts(parts, Body::empty())).await
}

/// `page` rendered again in answer to its form, refused with `e` (which `extra` shows): with
/// the refusal's status and `Retry-After`, kept by no cache.
pub(crate) async fn render_refused(
    state: &AppState,
    parts: Parts,
    page: &str,
    e: ApiError,
    extra: impl Fn() + Clone + Send + Sync + 'static,
) -> Response {
    e.log();
    let mut resp = render(state, parts, page, extra).await;
    *resp.status_mut() = e.status();
    let h = resp.headers_mut();
    if let Some(secs) = e.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A form's refusal: to a browser, which asks for HTML, the page the form is on with the
/// refusal at its top; to any other client, the problem.
pub(crate) async fn refused(state: &AppState, parts: Parts, page: String, e: ApiError) -> Response {
    if !asks_for_html(&parts.headers) {
        return e.into_response();
    }
    let refusal = app::components::Refusal((*e.problem).clone());
    render_refused(state, parts, &page, e, move || provide_context(refusal.clone())).await
}

/// What a form handler answers: `result` on success (a `303`), else its refusal.
pub(crate) async fn answer_form(
    state: &AppState,
    parts: Parts,
    page: String,
    result: Result<Response, ApiError>,
) -> Response {
    match result {
        Ok(resp) => resp,
        Err(e) => refused(state, parts, page, e).await,
    }
}

/// The page a form at `path` is on: its first `depth` segments, as the browser sent them
/// (`/runs/<id>` of `/runs/<id>/cancel`).
pub(crate) fn page_of(path: &str, depth: usize) -> String {
    path.split('/').filter(|s| !s.is_empty()).take(depth).fold(String::new(), |page, s| page + "/" + s)
}

fn asks_for_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_field_and_each_ticked_analyst() {
        let r = start_request(b"symbol=nvda&model=offline&analysts=invest&analysts=technical&asOf=");
        assert_eq!(r.symbol.as_deref(), Some("nvda"));
        assert_eq!(r.model_id.as_deref(), Some("offline"));
        assert_eq!(r.analysts, Some(vec!["invest".to_string(), "technical".to_string()]));
        assert_eq!(r.as_of, None);
        // No box ticked is an empty list (an error), not "every analyst".
        assert_eq!(start_request(b"symbol=AAPL").analysts, Some(vec![]));
        assert_eq!(start_request(b"symbol=A+B&asOf=2020-01-02").as_of.as_deref(), Some("2020-01-02"));
    }

    #[test]
    fn a_form_is_on_the_page_its_path_begins_with() {
        assert_eq!(page_of("/runs/abc/retry", 2), "/runs/abc");
        assert_eq!(page_of("/runs/abc/shares/9/revoke", 2), "/runs/abc");
        assert_eq!(page_of("/backtests/xyz/cancel", 2), "/backtests/xyz");
        assert_eq!(page_of("/settings/tokens/1/revoke", 1), "/settings");
        assert_eq!(page_of("/runs/a%22b/cancel", 2), "/runs/a%22b");
    }
}
