//! Personal API tokens at the edge: `Authorization: Bearer <token>` as an identity, and the
//! settings page's forms that make and revoke tokens.
//!
//! A request with a bearer token is that token's identity and nothing else: its cookies are
//! not read and it is given none, and a token that is unknown or revoked is a `401` — never a
//! fallback to the cookie. That is also why such requests skip the CSRF check: a browser never
//! attaches a bearer token on its own, so it cannot be an ambient credential a page abuses.
//! Other `Authorization` schemes (a proxy's Basic, say) are not ours and are ignored.
//!
//! Tokens are managed by a browser's session only: a bearer request may not make or revoke
//! one (`403`). Otherwise a leaked token could make another, which would outlive the first's
//! revocation.

use std::sync::Arc;

use application::Error;
use application::access::Access;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::ApiError;
use super::reply::see_other;
use super::session::identity;
use super::{AppState, pages};

/// The bearer token of a request, if it sends one (`Some("")` for an empty one).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().unwrap_or("Bearer ");
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// An operator's bearer token from the settings (`ADMIN_TOKEN`, `METRICS_TOKEN`): shown in
/// debug output only as set or not, compared in constant time. An empty one is none.
#[derive(Clone, Default)]
pub struct OperatorToken(Option<Arc<str>>);

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "OperatorToken(set)" } else { "OperatorToken(none)" })
    }
}

impl OperatorToken {
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(str::trim).filter(|t| !t.is_empty()).map(Arc::from))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `headers` send this token as their bearer token.
    pub fn sent_in(&self, headers: &HeaderMap) -> bool {
        match (self.0.as_deref(), bearer(headers)) {
            (Some(expected), Some(given)) => constant_time_eq(expected.as_bytes(), given.as_bytes()),
            _ => false,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
            req.extensions_mut().insert(ByBearer);
            next.run(req).await
        }
        Ok(None) => invalid_token(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Marks a request whose identity is a bearer token's.
#[derive(Debug, Clone, Copy)]
pub struct ByBearer;

/// The refusal of a bearer request to manage tokens, or `None` for a session's.
fn session_only(parts: &Parts) -> Option<Response> {
    parts.extensions.get::<ByBearer>()?;
    Some(
        ApiError::new(
            StatusCode::FORBIDDEN,
            "session-required",
            "Tokens are managed in the browser",
            "API tokens are made and revoked on the settings page, with the browser's session, not with a token.",
        )
        .into_response(),
    )
}

/// `POST /settings/tokens` (form: `name`): a new token, shown once on the settings page, or the
/// form's error next to it.
pub async fn create(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Some(refused) = session_only(&parts) {
        return refused;
    }
    let body = match pages::form_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let name =
        form_urlencoded::parse(&body).find(|(k, _)| k == "name").map(|(_, v)| v.into_owned()).unwrap_or_default();
    let made = match identity(&parts) {
        Ok(user) => access(&state).create_token(&user, &name).await,
        Err(e) => return pages::refused(&state, parts, "/settings".into(), e).await,
    };
    let (status, created, refused) = match made {
        Ok((token, secret)) => {
            (StatusCode::OK, Some(app::routes::settings::CreatedToken { name: token.name, secret }), None)
        }
        Err(Error::Invalid(errors)) => {
            let message = errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ");
            (StatusCode::BAD_REQUEST, None, Some(app::routes::settings::TokenFormError(message)))
        }
        Err(e) => return pages::refused(&state, parts, "/settings".into(), e.into()).await,
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
pub async fn revoke(State(state): State<AppState>, Path(id): Path<String>, parts: Parts) -> Response {
    if let Some(refused) = session_only(&parts) {
        return refused;
    }
    let result = async {
        if access(&state).revoke_token(&identity(&parts)?, &id).await? {
            Ok(see_other("/settings"))
        } else {
            Err(ApiError::new(StatusCode::NOT_FOUND, "not-found", "Token not found", "You have no such token."))
        }
    }
    .await;
    pages::answer_form(&state, parts, "/settings".into(), result).await
}

fn access(state: &AppState) -> Access {
    state.access.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn an_operator_token_is_sent_as_a_bearer_token_or_not_at_all() {
        let headers = |v: &'static str| super::super::test_headers(&[("authorization", v)]);
        let token = OperatorToken::new(Some(" s3cret "));
        assert!(token.sent_in(&headers("Bearer s3cret")));
        assert!(!token.sent_in(&headers("Bearer s3cre")));
        assert!(!token.sent_in(&headers("Basic s3cret")));
        assert!(!token.sent_in(&HeaderMap::new()));
        // An empty setting is no token, which no request sends.
        let none = OperatorToken::new(Some(""));
        assert!(!none.is_set());
        assert!(!none.sent_in(&headers("Bearer ")));
    }
}
