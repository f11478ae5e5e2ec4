//! The few whole documents the server writes without Leptos (the backtest pages, a refused
//! form): the site's frame around a body, escaping, and the response headers they share.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// The menu's entries: where each leads, and its label.
const MENU: [(&str, &str); 4] =
    [("/", "New analysis"), ("/runs", "History"), ("/backtests", "Backtests"), ("/settings", "Settings")];

/// A whole page in the site's frame, `current` being the menu entry it belongs to (if any) and
/// `refresh` a reload every 2 s.
pub fn page(title: &str, current: Option<&str>, refresh: bool, body: &str) -> String {
    let refresh = if refresh { r#"<meta http-equiv="refresh" content="2">"# } else { "" };
    let menu: String = MENU
        .iter()
        .map(|(href, label)| {
            let here = if current == Some(*href) { r#" aria-current="page""# } else { "" };
            format!(r#"<a href="{href}"{here}>{label}</a>"#)
        })
        .collect();
    format!(
        r##"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">{refresh}<title>{} · Trading Agents</title><link rel="stylesheet" href="/pkg/trading-agents.css"><link rel="icon" href="/favicon.ico"><meta name="color-scheme" content="light dark"></head><body><a class="skip-link" href="#main">Skip to content</a><header class="site-header"><a class="brand" href="/"><span class="brand-mark" aria-hidden="true">▲</span> Trading Agents</a><nav aria-label="Main">{menu}</nav></header><main id="main">{body}</main><footer class="site-footer">Analyses are computed from historical prices and are not investment advice.</footer></body></html>"##,
        esc(title)
    )
}

/// `body` as an HTML answer that no shared cache keeps.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_marks_the_current_entry() {
        assert_eq!(esc("<script>\"x\" & 'y'</script>"), "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;");
        let p = page("A <b>", Some("/backtests"), false, "<p>x</p>");
        assert!(p.contains("<title>A &lt;b&gt; · Trading Agents</title>"), "{p}");
        assert!(p.contains(r#"<a href="/backtests" aria-current="page">Backtests</a>"#), "{p}");
        assert_eq!(p.matches("aria-current").count(), 1);
        assert!(!p.contains("http-equiv"));
        assert!(page("x", None, true, "").contains(r#"http-equiv="refresh""#));
    }
}
