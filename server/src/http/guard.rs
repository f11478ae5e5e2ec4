//! Cross-site request forgery: an unsafe request (anything but GET, HEAD, OPTIONS) that a
//! browser says comes from another site is refused with a 403 problem.
//!
//! A browser names the page that made a request in `Origin` (every cross-origin request and
//! every same-origin POST); without it, `Sec-Fetch-Site`. The request passes when its origin
//! is this server's own (the `Host` it was sent to) or one of the allowed extra origins.
//! Clients that send neither header — scripts, curl, server-to-server calls — pass: they
//! carry no victim's ambient cookie. `SameSite=Lax` stays as a second line, but it lets
//! sibling subdomains through, which this does not.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::ApiError;

/// Origins allowed besides the server's own, e.g. `https://app.example.com`.
#[derive(Debug, Clone, Default)]
pub struct Origins(Arc<Vec<String>>);

impl Origins {
    pub fn new(allowed: &[String]) -> Self {
        Self(Arc::new(allowed.iter().map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase()).collect()))
    }

    /// Whether `headers` show a request from another site.
    pub fn is_cross_site(&self, headers: &HeaderMap) -> bool {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let Ok(origin) = origin.to_str() else { return true };
            let origin = origin.trim().to_ascii_lowercase();
            if self.0.contains(&origin) {
                return false;
            }
            // "null" (sandboxed frames, data: URLs, some redirects) is never ours.
            let Some((_, authority)) = origin.split_once("://") else { return true };
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
            return host.as_deref() != Some(authority);
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
    if !safe && !bearer && origins.is_cross_site(req.headers()) {
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
        let o = Origins::new(&["https://app.example.com/".to_string()]);
        assert!(!o.is_cross_site(&headers(&[("host", "ta.example.com"), ("origin", "https://ta.example.com")])));
        assert!(!o.is_cross_site(&headers(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")])));
        assert!(!o.is_cross_site(&headers(&[("host", "ta.example.com"), ("origin", "https://app.example.com")])));
        assert!(!o.is_cross_site(&headers(&[("host", "ta.example.com")])));
        assert!(!o.is_cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(o.is_cross_site(&headers(&[("host", "ta.example.com"), ("origin", "https://evil.example")])));
        assert!(o.is_cross_site(&headers(&[("host", "ta.example.com"), ("origin", "https://x.ta.example.com")])));
        assert!(o.is_cross_site(&headers(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3001")])));
        assert!(o.is_cross_site(&headers(&[("host", "ta.example.com"), ("origin", "null")])));
        assert!(o.is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(o.is_cross_site(&headers(&[("sec-fetch-site", "same-site")])));
    }
}
