//! Errors of the HTTP layer, sent as RFC 9457 problem details (`application/problem+json`).
//!
//! Every error a handler returns becomes an [`ApiError`]; this is the one place they are
//! logged: 5xx with their internal detail (which is never sent), 4xx not at all.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::{FieldError, Problem};
use jobs::ServiceError;

use super::html::{esc, html, page};

#[derive(Debug)]
pub struct ApiError {
    pub problem: Box<Problem>,
    pub retry_after: Option<u64>,
    /// Logged, not sent.
    pub internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            problem: Box::new(Problem {
                kind: format!("/problems/{kind}"),
                title: title.into(),
                status: status.as_u16(),
                detail: detail.into(),
                errors: vec![],
            }),
            retry_after: None,
            internal: None,
        }
    }

    /// 400 naming one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ServiceError::Invalid(vec![FieldError::new(field, message)]).into()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let internal = match &e {
            ServiceError::Internal(d) | ServiceError::Unavailable(d) => Some(d.clone()),
            _ => None,
        };
        Self { problem: Box::new(e.problem()), retry_after: e.retry_after(), internal }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(
                status = status.as_u16(),
                detail = self.internal.as_deref().unwrap_or(&self.problem.detail),
                "request failed"
            );
        }
        let body = serde_json::to_vec(&self.problem).expect("plain data");
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Unknown `/api/…` paths: a problem, not the HTML 404 page.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", "There is no such API endpoint.")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "This endpoint does not accept that method.",
    )
}

/// A form posted natively (a `POST` outside `/api/` by a browser that asks for HTML) that is
/// refused gets the refusal as a page in the site's frame — its title, detail, each field's
/// error and a link back — rather than JSON shown raw. The status and `Retry-After` stay; an
/// API client, which does not ask for HTML, gets the problem as it is.
pub async fn forms_as_html(req: Request, next: Next) -> Response {
    let form = req.method() == Method::POST && !req.uri().path().starts_with("/api/") && asks_for_html(req.headers());
    let back = back_to(req.uri().path());
    let resp = next.run(req).await;
    let is_problem = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v == "application/problem+json");
    if !form || !is_problem {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // A problem body is a few hundred bytes; one that is not readable goes out as it came.
    let Ok(bytes) = to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(problem) = serde_json::from_slice::<Problem>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let mut page = html(parts.status, problem_page(&problem, &back));
    if let Some(retry) = parts.headers.get(header::RETRY_AFTER) {
        page.headers_mut().insert(header::RETRY_AFTER, retry.clone());
    }
    page.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page
}

fn asks_for_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

/// The page a form at `path` came from: a run's page for its Cancel, Retry and share forms, a
/// backtest's for its Cancel, the settings for the token forms, else the path itself.
fn back_to(path: &str) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["runs", id, ..] | ["backtests", id, ..] if !id.is_empty() => format!("/{}/{id}", parts[0]),
        ["settings", ..] => "/settings".into(),
        ["backtests"] => "/backtests".into(),
        _ => "/".into(),
    }
}

fn problem_page(problem: &Problem, back: &str) -> String {
    let errors: String = problem
        .errors
        .iter()
        .map(|e| format!(r#"<li><strong>{}</strong>: {}</li>"#, esc(&e.field), esc(&e.message)))
        .collect();
    let errors = if errors.is_empty() { String::new() } else { format!("<ul>{errors}</ul>") };
    let body = format!(
        r#"<section class="error-panel" role="alert"><h1>{}</h1><p>{}</p>{errors}<p><a href="{}">Back</a></p></section>"#,
        esc(&problem.title),
        esc(&problem.detail),
        esc(back)
    );
    page(&problem.title, None, false, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_form_leads_back_to_where_it_was() {
        assert_eq!(back_to("/runs/abc/retry"), "/runs/abc");
        assert_eq!(back_to("/runs/abc/shares/9/revoke"), "/runs/abc");
        assert_eq!(back_to("/backtests/xyz/cancel"), "/backtests/xyz");
        assert_eq!(back_to("/backtests"), "/backtests");
        assert_eq!(back_to("/settings/tokens/1/revoke"), "/settings");
        assert_eq!(back_to("/"), "/");
        assert_eq!(back_to("/elsewhere"), "/");
    }

    #[test]
    fn the_page_says_what_the_problem_says_escaped() {
        let mut p = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many <new> runs", "Wait 3 s.");
        p.problem.errors.push(FieldError::new("symbol", "'<x>' is not a symbol"));
        let html = problem_page(&p.problem, "/runs/a\"b");
        assert!(html.contains("<h1>Too many &lt;new&gt; runs</h1><p>Wait 3 s.</p>"), "{html}");
        assert!(html.contains("<li><strong>symbol</strong>: &#39;&lt;x&gt;&#39; is not a symbol</li>"), "{html}");
        assert!(html.contains(r#"<a href="/runs/a&quot;b">Back</a>"#), "{html}");
    }
}
