//! Identity: a signed, HttpOnly, SameSite=Lax session cookie issued on the first visit to a
//! page.
//!
//! The cookie holds a random user id and an HMAC-SHA256 of it; a cookie that does not verify
//! is treated as absent, never as an error. When a request carries several session cookies
//! (a sibling subdomain can add one for the parent domain), the first that verifies is the
//! identity: an invalid one never hides a valid one. The id reaches handlers and server
//! functions as a [`application::UserId`] request extension.
//!
//! Served over HTTPS, the cookie is named `__Host-ta_session`: a browser keeps such a cookie
//! only if it is `Secure`, on `/` and without a `Domain`, so no sibling subdomain can set or
//! overwrite it. Over HTTPS only that name is read — a plain `ta_session` there may have been
//! planted. (Over plain HTTP a browser refuses the prefix, and the name is `ta_session`.)
//!
//! A new identity is issued only on a page load: a GET of a page that is a navigation or not
//! marked by the browser as coming from another site (curl and scripts send no such mark) —
//! never on an API call, a static file, `/metrics` or health checks, never on another site's
//! image or fetch, and never on a request the CSRF guard refused. So a cross-site form post
//! (which carries no Lax cookie) cannot replace a visitor's identity, and a client that sends
//! no cookie cannot mint a new identity per request to escape the per-user limit: without an
//! identity, starting, cancelling or retrying a run is a 401.

use std::sync::Arc;

use application::UserId;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::proxy::Client;

pub const COOKIE: &str = "ta_session";
/// The cookie's name over HTTPS.
pub const HOST_COOKIE: &str = "__Host-ta_session";
const MAX_AGE_SECS: i64 = 400 * 24 * 3600;

#[derive(Clone)]
pub struct Sessions {
    key: Arc<Vec<u8>>,
    /// Keys that signed cookies before the current one (`SESSION_SECRET_PREVIOUS`): their
    /// cookies still verify, and are signed again with the current key on the next page load.
    previous: Arc<Vec<Vec<u8>>>,
    secure: bool,
}

/// A cookie's identity, and whether it was signed with a previous key.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub user: String,
    pub stale: bool,
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

impl Sessions {
    pub fn new(key: Vec<u8>, secure: bool) -> Self {
        Self { key: Arc::new(key), previous: Arc::default(), secure }
    }

    pub fn with_previous(mut self, previous: Vec<Vec<u8>>) -> Self {
        self.previous = Arc::new(previous);
        self
    }

    pub fn sign(&self, user: &str) -> String {
        let mut mac = mac(&self.key);
        mac.update(user.as_bytes());
        format!("{user}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// The user id in a token, if its signature holds under the current or a previous key.
    pub fn verify(&self, token: &str) -> Option<Verified> {
        let (user, sig) = token.rsplit_once('.')?;
        if user.len() != 32 || !user.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let holds = |key: &[u8]| {
            let mut mac = mac(key);
            mac.update(user.as_bytes());
            mac.verify_slice(&sig).is_ok()
        };
        let stale = if holds(&self.key) {
            false
        } else if self.previous.iter().any(|k| holds(k)) {
            true
        } else {
            return None;
        };
        Some(Verified { user: user.to_string(), stale })
    }

    /// Whether a request is served over HTTPS: configured so, or a trusted proxy says so.
    fn https(&self, proxied_https: bool) -> bool {
        self.secure || proxied_https
    }

    /// The cookie's name for a request over HTTPS or not.
    fn name(https: bool) -> &'static str {
        if https { HOST_COOKIE } else { COOKIE }
    }

    /// The `Set-Cookie` value; `Secure`, and named with the `__Host-` prefix, over HTTPS.
    fn cookie(&self, token: &str, https: bool) -> String {
        Cookie::build((Self::name(https), token))
            .path("/")
            .max_age(cookie::time::Duration::seconds(MAX_AGE_SECS))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(https)
            .build()
            .to_string()
    }

    /// The identity of the request's cookies named `name`, in any of its `Cookie` headers:
    /// the first that verifies. Pairs that are not `name=value` are passed over.
    fn identity_in_cookies(&self, headers: &axum::http::HeaderMap, name: &str) -> Option<Verified> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .filter(|c| c.name() == name)
            .find_map(|c| self.verify(c.value()))
    }
}

/// Whether a request without an identity should be given one: a page load.
fn is_page_load(req: &Request) -> bool {
    if !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD) {
        return false;
    }
    let path = req.uri().path();
    let last = path.rsplit('/').next().unwrap_or_default();
    let not_a_page = ["/api/", "/pkg/"].iter().any(|p| path.starts_with(p))
        || matches!(path, "/metrics" | "/healthz" | "/readyz" | "/stats")
        || last.contains('.');
    if not_a_page {
        return false;
    }
    // A navigation, from anywhere (a Lax cookie would have come along), or any request the
    // browser does not mark as another site's (our own pages' fetches, scripts, curl). A
    // cross-site image or fetch never replaces an identity.
    let h = req.headers();
    let mode = h.get("sec-fetch-mode").and_then(|v| v.to_str().ok());
    let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    mode == Some("navigate") || !matches!(site, Some("cross-site" | "same-site"))
}

pub async fn layer(State(sessions): State<Sessions>, mut req: Request, next: Next) -> Response {
    // Already someone (a bearer token): no cookie is read or issued.
    if req.extensions().get::<UserId>().is_some() {
        return next.run(req).await;
    }
    let https = sessions.https(req.extensions().get::<Client>().is_some_and(|c| c.https));
    let existing = sessions.identity_in_cookies(req.headers(), Sessions::name(https));
    let page_load = is_page_load(&req);
    // A new identity, or an old one signed again with the current key, on page loads only.
    let (user, issue) = match existing {
        Some(Verified { user, stale }) => (Some(user), stale && page_load),
        None if page_load => (Some(uuid::Uuid::new_v4().simple().to_string()), true),
        None => (None, false),
    };
    if let Some(user) = &user {
        req.extensions_mut().insert(UserId(user.clone()));
    }
    let mut resp = next.run(req).await;
    if issue
        && let Some(user) = user
        && let Ok(v) = HeaderValue::from_str(&sessions.cookie(&sessions.sign(&user), https))
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The caller's identity, for handlers; a request without one is a 401 problem.
pub struct Identity(pub UserId);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Identity {
    type Rejection = super::problem::ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        identity(parts).map(Identity)
    }
}

/// The caller's identity, for the form handlers, which answer a refusal themselves; a request
/// without one is a 401 problem.
pub fn identity(parts: &axum::http::request::Parts) -> Result<UserId, super::problem::ApiError> {
    parts.extensions.get::<UserId>().cloned().ok_or_else(unauthenticated)
}

pub fn unauthenticated() -> super::problem::ApiError {
    super::problem::ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "No identity",
        "This request carries no session. Open the app's home page first: it gives this browser (or cookie jar) an identity.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_their_key_and_unchanged() {
        let s = Sessions::new(b"k".repeat(32), false);
        let user = "0123456789abcdef0123456789abcdef";
        let token = s.sign(user);
        assert_eq!(s.verify(&token), Some(Verified { user: user.into(), stale: false }));
        let other = Sessions::new(b"x".repeat(32), false);
        assert_eq!(other.verify(&token), None);
        let forged = token.replacen('0', "1", 1);
        assert_eq!(s.verify(&forged), None);
        assert_eq!(s.verify("no-dot"), None);
        assert_eq!(s.verify(&format!("{user}.!!!")), None);
    }

    /// The whole `Set-Cookie` value, as the cookie crate writes its attributes: HttpOnly and
    /// SameSite=Lax always, for 400 days on every path; over HTTPS (configured so, or the
    /// request came through a trusted proxy over HTTPS) Secure and with the `__Host-` prefix.
    #[test]
    fn the_set_cookie_value() {
        let s = Sessions::new(b"k".repeat(32), false);
        let lax = "HttpOnly; SameSite=Lax";
        let scope = "Path=/; Max-Age=34560000";
        assert_eq!(s.cookie("tok.sig", s.https(false)), format!("ta_session=tok.sig; {lax}; {scope}"));
        assert_eq!(s.cookie("tok.sig", s.https(true)), format!("__Host-ta_session=tok.sig; {lax}; Secure; {scope}"));
        let secure = Sessions::new(vec![1], true);
        assert_eq!(secure.cookie("t", secure.https(false)), format!("__Host-ta_session=t; {lax}; Secure; {scope}"));
    }

    #[test]
    fn previous_keys_still_verify_but_are_stale() {
        let user = "0123456789abcdef0123456789abcdef";
        let old = Sessions::new(b"o".repeat(32), false).sign(user);
        let rotated = Sessions::new(b"n".repeat(32), false).with_previous(vec![b"p".repeat(32), b"o".repeat(32)]);
        assert_eq!(rotated.verify(&old), Some(Verified { user: user.into(), stale: true }));
        assert_eq!(rotated.verify(&rotated.sign(user)), Some(Verified { user: user.into(), stale: false }));
        let dropped = Sessions::new(b"n".repeat(32), false).with_previous(vec![b"p".repeat(32)]);
        assert_eq!(dropped.verify(&old), None);
    }

    #[test]
    fn finds_the_cookie_among_others() {
        let s = Sessions::new(b"k".repeat(32), false);
        let user = "0123456789abcdef0123456789abcdef";
        let mut h = axum::http::HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("a=1; ta_session={}; b=2", s.sign(user))).unwrap());
        assert_eq!(s.identity_in_cookies(&h, COOKIE).map(|v| v.user).as_deref(), Some(user));
        assert_eq!(s.identity_in_cookies(&h, HOST_COOKIE), None, "over HTTPS only the __Host- name counts");
    }

    /// Across several `Cookie` headers, and past pairs that are not `name=value` and session
    /// cookies that do not verify, the first session cookie that verifies is the identity; a
    /// name that only starts like it is another cookie.
    #[test]
    fn reads_the_first_valid_session_cookie_across_headers() {
        let s = Sessions::new(b"k".repeat(32), false);
        let (first, second) = ("0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210");
        let mut h = axum::http::HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("junk; =x; ta_session_old={}", s.sign(first))).unwrap(),
        );
        assert_eq!(s.identity_in_cookies(&h, COOKIE), None);
        h.append(header::COOKIE, HeaderValue::from_static("ta_session=forged.sig; ta_session="));
        assert_eq!(s.identity_in_cookies(&h, COOKIE), None);
        let both = format!("ta_session={}; ta_session={}", s.sign(first), s.sign(second));
        h.append(header::COOKIE, HeaderValue::from_str(&both).unwrap());
        assert_eq!(s.identity_in_cookies(&h, COOKIE).map(|v| v.user).as_deref(), Some(first));
        assert_eq!(s.identity_in_cookies(&axum::http::HeaderMap::new(), COOKIE), None);
    }
}
