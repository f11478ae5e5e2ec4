//! Security headers on every response: no MIME sniffing, no framing, a narrow referrer and
//! permissions policy, a Content-Security-Policy for what the pages do not need, and HSTS
//! when the server is configured as served over HTTPS.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::proxy::Client;

/// The policy every response carries: what no page needs (plugins, a foreign `<base>`, form
/// posts elsewhere, being framed) is refused outright. A page brings its own `script-src`,
/// with the per-response nonce of Leptos' inline scripts; anything else — a problem, JSON, a
/// CSV, a file, an HTML answer that did not come from the app's shell — runs no script at
/// all, so nothing a response echoes can ever execute in it.
pub const CSP: &str =
    "script-src 'none'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Served over HTTPS (`COOKIE_SECURE`): browsers should never use plain HTTP again. A
    /// request a trusted proxy says came over HTTPS gets HSTS too.
    pub https: bool,
}

pub async fn layer(State(policy): State<Policy>, req: Request, next: Next) -> Response {
    let https = policy.https || req.extensions().get::<Client>().is_some_and(|c| c.https);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    );
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    // Pages bring their own policy (scripts by nonce); the directives here are added to it.
    let csp = match h.get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()) {
        Some(page) => {
            let mut csp = page.trim_end_matches(';').to_string();
            for directive in CSP.split("; ") {
                let name = directive.split(' ').next().unwrap_or_default();
                if !csp.split(';').any(|d| d.trim().starts_with(name)) {
                    csp.push_str("; ");
                    csp.push_str(directive);
                }
            }
            HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(CSP))
        }
        None => HeaderValue::from_static(CSP),
    };
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    if https {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    resp
}
