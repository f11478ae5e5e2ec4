//! `GET /api/openapi.json`: the REST API as an OpenAPI 3.1 document, generated from the
//! handlers' `#[utoipa::path]` attributes and the `domain` types' schemas (their serde names).

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::responses::{BadRunId, InvalidToken, RunNotFound, Unauthenticated};
use super::{backtests, health, live, runs, shares};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Trading Agents",
        description = "Start analyses of a stock by a team of model-driven analysts, follow them, share them, and backtest their ratings. Every error is an RFC 9457 problem (`application/problem+json`)."
    ),
    paths(
        runs::start,
        runs::progress,
        live::events,
        runs::cancel,
        runs::retry,
        runs::list,
        shares::create,
        shares::list,
        shares::revoke,
        shares::progress,
        runs::models,
        runs::analysts,
        runs::symbols,
        backtests::start,
        backtests::list,
        backtests::view,
        backtests::cancel,
        health::healthz,
        health::readyz,
    ),
    components(
        schemas(domain::Problem, domain::FieldError),
        responses(Unauthenticated, BadRunId, RunNotFound, InvalidToken)
    ),
    modifiers(&Identities, &BadTokens),
    security(("session" = []), ("token" = [])),
    tags(
        (name = "runs", description = "Analyses: start, follow, cancel, retry, list."),
        (name = "shares", description = "Read-only links to a run, which anyone holding one may open."),
        (name = "catalog", description = "What a run can be made of."),
        (name = "backtests", description = "Many runs over symbols and dates, scored against the prices that followed."),
        (name = "operations", description = "Liveness and readiness."),
    )
)]
pub struct ApiDoc;

/// Who a request is: the browser's session cookie or a personal API token.
struct Identities;

impl Modify for Identities {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::session::COOKIE,
                "Given by a first visit to a page of the app; named `__Host-ta_session` over HTTPS.",
            ))),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A personal API token, made on the settings page."))
                    .build(),
            ),
        );
    }
}

/// Every request with a bearer token that is unknown or revoked is a `401`, whatever the
/// operation (the token layer answers it before any handler): an operation that does not
/// name a `401` of its own — one that needs no identity — is given this one.
struct BadTokens;

impl Modify for BadTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let invalid = utoipa::openapi::Ref::from_response_name("InvalidToken");
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                operation.responses.responses.entry("401".into()).or_insert_with(|| invalid.clone().into());
            }
        }
    }
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_pretty_json().expect("the document serialises"));

/// `GET /api/openapi.json`
pub async fn document() -> Response {
    let mut resp = DOCUMENT.as_str().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_route_of_the_api() {
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/api/trading/run", "post"),
            ("/api/trading/progress/{runId}", "get"),
            ("/api/trading/cancel/{runId}", "post"),
            ("/api/trading/retry/{runId}", "post"),
            ("/api/trading/runs", "get"),
            ("/api/trading/share/{secret}", "get"),
            ("/api/trading/backtests/{backtestId}", "get"),
        ] {
            assert!(paths[path][method].is_object(), "{method} {path}");
        }
        let start = &doc["components"]["schemas"]["StartResponse"];
        let required: Vec<&str> = start["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(required, ["runId", "status", "message"], "serde's camelCase names");
        assert_eq!(doc["components"]["schemas"]["Problem"]["properties"]["type"]["type"], "string");
        assert_eq!(doc["paths"]["/api/trading/share/{secret}"]["get"]["security"], serde_json::json!([{}]));
    }
}
