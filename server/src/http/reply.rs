//! Answers several handlers give alike: a `303 See Other` after a form, a JSON body with the
//! `Location` of what a request made, a JSON body under a strong ETag that a conditional request
//! may find unchanged, and a CSV download.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `303 See Other` to `path`.
pub(crate) fn see_other(path: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut().insert(header::LOCATION, HeaderValue::from_str(path).expect("a path is a valid header"));
    resp
}

/// `status` (`201`, `202`) with `body` as JSON and `Location: path`, where what the request
/// made can be read.
pub(crate) fn made_at(status: StatusCode, path: &str, body: impl serde::Serialize) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(header::LOCATION, HeaderValue::from_str(path).expect("a path is a valid header"));
    resp
}

/// A CSV document to download as `filename` (ASCII, no quotes).
pub(crate) fn csv_download(body: Vec<u8>, filename: &str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    let disposition = format!("attachment; filename=\"{filename}\"");
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("an ASCII file name"));
    resp
}

/// `value` as JSON under a strong ETag over its bytes (a SHA-256 prefix), for answers computed
/// from several rows that have no single version (`prefix` keeps different kinds of answer
/// apart); see [`tagged_json`].
pub(crate) fn digest_json(
    headers: &HeaderMap,
    prefix: char,
    value: &impl serde::Serialize,
    retry_after: Option<u64>,
) -> Response {
    use sha2::{Digest, Sha256};
    let body = serde_json::to_vec(value).expect("plain data");
    let digest = Sha256::digest(&body);
    let etag = format!("\"{prefix}{}\"", digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>());
    tagged_json(headers, &etag, body, retry_after)
}

/// A JSON body under a strong `etag`: `304` with no body when `If-None-Match` names it; never
/// reused without asking (`no-cache`), kept out of shared caches and per session; with
/// `Retry-After` (seconds) while what it shows is still changing.
pub(crate) fn tagged_json(
    headers: &HeaderMap,
    etag: &str,
    body: impl IntoResponse,
    retry_after: Option<u64>,
) -> Response {
    let mut resp = if matches(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(etag).expect("ascii"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    h.insert(header::VARY, HeaderValue::from_static("Cookie"));
    if let Some(secs) = retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Whether an `If-None-Match` header names this ETag (or is `*`).
fn matches(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"v1\", W/\"v7\""));
        assert!(matches(&h, "\"v7\""));
        assert!(matches(&h, "\"v1\""));
        assert!(!matches(&h, "\"v2\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches(&h, "\"v9\""));
        assert!(!matches(&HeaderMap::new(), "\"v1\""));
    }
}
