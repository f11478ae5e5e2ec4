//! Cross-site request forgery: an unsafe request (anything but GET, HEAD, OPTIONS) that a
//! browser says comes from another site is refused with a 403 problem.
//!
//! A browser names the page that made a request in `Origin` (every cross-origin request and
//! every same-origin POST); without it, `Sec-Fetch-Site`. The request passes when its origin
//! is this server's own — the same scheme (`https` when served over HTTPS: `COOKIE_SECURE`,
//! or a trusted proxy's `X-Forwarded-Proto`), host (the `Host` it was sent to) and port — or
//! one of the allowed extra origins, compared the same way (parsed by the `url` crate, default
//! ports made explicit). An `Origin` that is not exactly a serialized origin (a path, user
//! info, a scheme without a host such as `foo://…`, `null`) is never ours. Clients that send
//! neither header — scripts, curl, server-to-server calls — pass: they carry no victim's
//! ambient cookie. `SameSite=Lax` stays as a second line, but it lets sibling subdomains
//! through, which this does not.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use url::{Origin, Url};

use super::problem::ApiError;
use super::proxy::Client;

/// Origins allowed besides the server's own, e.g. `https://app.example.com`, and whether the
/// server is served over HTTPS.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    allowed: Arc<Vec<Origin>>,
    https: bool,
}

/// The origin an `Origin` header names, if it is exactly one (`scheme://host[:port]`).
fn origin(value: &str) -> Option<Origin> {
    let value = value.trim().to_ascii_lowercase();
    let origin = Url::parse(&value).ok()?.origin();
    (origin.is_tuple() && origin.ascii_serialization() == value).then_some(origin)
}

impl Origins {
    /// `allowed` as `ALLOWED_ORIGINS` gives them (a trailing `/` is forgiven), each of which
    /// must be an origin; `https` when every request is served over HTTPS (`COOKIE_SECURE`).
    pub fn new(allowed: &[String], https: bool) -> Result<Self, String> {
        let allowed = allowed
            .iter()
            .map(|o| o.trim().trim_end_matches('/'))
            .filter(|o| !o.is_empty())
            .map(|o| origin(o).ok_or_else(|| format!("ALLOWED_ORIGINS: {o:?} is not an origin (scheme://host[:port])")))
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed: Arc::new(allowed), https })
    }

    /// Whether `headers` show a request from another site; `https` when this request came
    /// over HTTPS through a trusted proxy.
    pub fn is_cross_site(&self, headers: &HeaderMap, https: bool) -> bool {
        if let Some(value) = headers.get(header::ORIGIN) {
            let Some(theirs) = value.to_str().ok().and_then(origin) else { return true };
            if self.allowed.contains(&theirs) {
                return false;
            }
            let scheme = if self.https || https { "https" } else { "http" };
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
            let ours = Url::parse(&format!("{scheme}://{host}")).ok().map(|u| u.origin());
            return ours.is_none_or(|ours| !ours.is_tuple() || ours != theirs);
        }
        match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            Some("same-origin") | Some("none") | None => false,
            Some(_) => true,
        }
    }
}

pub async fn layer(State(origins): State<Origins>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // A bearer token is never sent by a browser on its own, and its requests ignore cookies.
    let bearer = super::tokens::bearer(req.headers()).is_some();
    let https = req.extensions().get::<Client>().is_some_and(|c| c.https);
    if !safe && !bearer && origins.is_cross_site(req.headers(), https) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-site-request",
            "Cross-site request refused",
            "This request came from another site. Use the app's own pages, or call the API without a browser.",
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_headers as headers;

    #[test]
    fn same_origin_and_headerless_clients_pass_other_sites_do_not() {
        let o = Origins::new(&["https://app.example.com/".to_string()], false).unwrap();
        assert!(Origins::new(&["app.example.com".to_string()], false).is_err());
        let cross = |pairs: &[(&'static str, &'static str)]| o.is_cross_site(&headers(pairs), false);
        assert!(!cross(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")]));
        assert!(!cross(&[("host", "ta.example.com"), ("origin", "https://app.example.com")]));
        assert!(!cross(&[("host", "ta.example.com")]));
        assert!(!cross(&[("sec-fetch-site", "same-origin")]));
        assert!(cross(&[("host", "ta.example.com"), ("origin", "https://evil.example")]));
        assert!(cross(&[("host", "ta.example.com"), ("origin", "http://x.ta.example.com")]));
        assert!(cross(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3001")]));
        assert!(cross(&[("host", "ta.example.com"), ("origin", "null")]));
        assert!(cross(&[("sec-fetch-site", "cross-site")]));
        assert!(cross(&[("sec-fetch-site", "same-site")]));
        // The scheme counts: a plain server is not its HTTPS namesake, nor anything else.
        assert!(cross(&[("host", "ta.example.com"), ("origin", "https://ta.example.com")]));
        assert!(cross(&[("host", "ta.example.com"), ("origin", "foo://ta.example.com")]));
        assert!(cross(&[("host", "ta.example.com"), ("origin", "http://ta.example.com/x")]));
        assert!(cross(&[("host", "ta.example.com"), ("origin", "http://u@ta.example.com")]));
        assert!(cross(&[("host", "ta.example.com"), ("origin", "http://app.example.com")]));
        // An explicit default port is the same port.
        assert!(!cross(&[("host", "ta.example.com:80"), ("origin", "http://ta.example.com")]));
    }

    #[test]
    fn over_https_only_https_is_ours() {
        let served = Origins::new(&[], true).unwrap();
        let h = headers(&[("host", "ta.example.com"), ("origin", "https://ta.example.com")]);
        assert!(!served.is_cross_site(&h, false));
        let proxied = Origins::new(&[], false).unwrap();
        assert!(!proxied.is_cross_site(&h, true), "a trusted proxy says it came over HTTPS");
        assert!(proxied.is_cross_site(&h, false));
        let plain = headers(&[("host", "ta.example.com"), ("origin", "http://ta.example.com")]);
        assert!(served.is_cross_site(&plain, false));
    }
}
