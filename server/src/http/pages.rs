//! The pages' forms, posted natively: what makes the site work before its WASM has loaded,
//! or without JavaScript at all.
//!
//! Each form is a plain `method="post"` form that an island takes over once hydrated (with a
//! server function, in the page). Posted natively, it lands here: the new-analysis form on
//! `POST /`, Cancel and Retry on `POST /runs/:id/cancel` and `…/retry`. Success is a
//! `303 See Other` to the run's page, so a reload never posts twice; invalid input renders the
//! home page again, with what was sent and each field's error, as a `400` (and a start refused
//! by a limit the same way, with its `429` and `Retry-After`). Any other refusal of a form
//! comes back as a page too ([`super::problem::forms_as_html`]).
//!
//! The same [`application::RunService`] calls as the REST API and the server functions, so limits,
//! validation and ownership are the same three ways.

use application::Error;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use domain::StartRequest;
use leptos::prelude::provide_context;

use super::extract::run_id;
use super::limits::{Limited, refusal};
use super::problem::ApiError;
use super::reply::see_other;
use super::session::Identity;
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

/// A form's body, read whole: a form is small.
pub(crate) async fn form_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Too large", "The form is too large."))
}

/// `POST /`: start a run from the form, or show the form again with the errors.
pub async fn start(State(state): State<AppState>, Identity(user): Identity, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match form_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let request = start_request(&body);
    let (problem, retry_after) = match parts.extensions.get::<Limited>() {
        // Over a rate limit: no run, the form again with why.
        Some(Limited(secs)) => {
            let refused = refusal(*secs);
            (*refused.problem, refused.retry_after)
        }
        None => match state.service.start(&user.0, &request, None).await {
            Ok(started) => {
                return see_other(&format!("/runs/{}", started.run_id));
            }
            Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => {
                return ApiError::from(e).into_response();
            }
            Err(e) => super::problem::answer(&e),
        },
    };
    // Render `/` as for a GET, with the rejected submission in context.
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
    let rejected = app::routes::home::Rejected { request, problem };
    let mut resp = render(&state, parts, "/", move || provide_context(rejected.clone())).await;
    *resp.status_mut() = status;
    if let Some(secs) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
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

/// `POST /runs/:id/cancel`: cancel, then back to the run's page.
pub async fn cancel(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    state.service.cancel(&user.0, id).await?;
    Ok(see_other(&format!("/runs/{id}")))
}

/// `POST /runs/:id/retry`: a new run, and its page. A run that cannot be retried (it was
/// already, from another tab, or it is still going) leads back to its own page.
pub async fn retry(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    match state.service.retry(&user.0, id).await {
        Ok(started) => Ok(see_other(&format!("/runs/{}", started.run_id))),
        Err(Error::NotRetryable(_)) => Ok(see_other(&format!("/runs/{id}"))),
        Err(e) => Err(e.into()),
    }
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
}
