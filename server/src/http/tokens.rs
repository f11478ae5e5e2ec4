//! Personal API tokens at the edge: `Authorization: Bearer <token>` as an identity, and the
//! settings page's forms that make and revoke tokens.
//!
//! A request with a bearer token is that token's identity and nothing else: its cookies are
//! not read and it is given none, and a token that is unknown or revoked is a `401` — never a
//! fallback to the cookie. That is also why such requests skip the CSRF check: a browser never
//! attaches a bearer token on its own, so it cannot be an ambient credential a page abuses.
//! Other `Authorization` schemes (a proxy's Basic, say) are not ours and are ignored.

use axum::body::to_bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jobs::ServiceError;
use jobs::access::Access;

use super::problem::ApiError;
use super::session::Identity;
use super::{AppState, BODY_LIMIT, pages};

/// The bearer token of a request, if it sends one (`Some("")` for an empty one).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().unwrap_or("Bearer ");
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn invalid_token() -> Response {
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid-token",
        "Invalid API token",
        "This bearer token is unknown or was revoked. Make a new one on the settings page.",
    )
    .into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    resp
}

/// Outside the session layer: a request with a bearer token gets the token's identity, which
/// the session layer then leaves alone. The operators' stats and `/metrics` take their own
/// bearer tokens (`ADMIN_TOKEN`, `METRICS_TOKEN`), not a user's: they check them themselves.
pub async fn layer(State(access): State<Access>, mut req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/stats" | "/api/trading/stats" | "/metrics") {
        return next.run(req).await;
    }
    let Some(token) = bearer(req.headers()) else { return next.run(req).await };
    match access.token_user(token).await {
        Ok(Some(user)) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Ok(None) => invalid_token(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /settings/tokens` (form: `name`): a new token, shown once on the settings page.
pub async fn create(State(state): State<AppState>, Identity(user): Identity, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, BODY_LIMIT).await else {
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Too large", "The form is too large.")
            .into_response();
    };
    let name =
        form_urlencoded::parse(&body).find(|(k, _)| k == "name").map(|(_, v)| v.into_owned()).unwrap_or_default();
    let (status, created, refused) = match access(&state).create_token(&user, &name).await {
        Ok((token, secret)) => {
            (StatusCode::OK, Some(app::routes::settings::CreatedToken { name: token.name, secret }), None)
        }
        Err(ServiceError::Invalid(errors)) => {
            let message = errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ");
            (StatusCode::BAD_REQUEST, None, Some(app::routes::settings::TokenFormError(message)))
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut resp = pages::render(&state, parts, "/settings", move || {
        if let Some(c) = created.clone() {
            leptos::prelude::provide_context(c);
        }
        if let Some(r) = refused.clone() {
            leptos::prelude::provide_context(r);
        }
    })
    .await;
    *resp.status_mut() = status;
    // The secret is in this page: no cache may keep it.
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `POST /settings/tokens/:id/revoke`: gone at once; back to the settings page.
pub async fn revoke(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if access(&state).revoke_token(&user, &id).await? {
        Ok(pages::see_other("/settings"))
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not-found", "Token not found", "You have no such token."))
    }
}

fn access(state: &AppState) -> Access {
    Access::new(state.service.store().clone())
}
