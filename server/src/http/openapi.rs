//! `GET /api/openapi.json`: the REST API as an OpenAPI 3.1 document, generated from the
//! handlers' `#[utoipa::path]` attributes and the `domain` types' schemas (their serde names).

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::responses::{BadRunId, InvalidToken, RunNotFound, Unauthenticated};
use super::{backtests, batches, health, live, runs, schedules, shares};

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
        runs::set_tags,
        runs::transcript,
        runs::log,
        runs::deliveries,
        runs::rerun,
        runs::outcome,
        runs::compare,
        shares::create,
        shares::list,
        shares::revoke,
        shares::progress,
        shares::transcript,
        shares::log,
        runs::models,
        runs::analysts,
        runs::symbols,
        backtests::start,
        backtests::list,
        backtests::view,
        backtests::cancel,
        batches::start,
        batches::list,
        batches::view,
        batches::cancel,
        schedules::create,
        schedules::list,
        schedules::get,
        schedules::update,
        schedules::delete,
        health::healthz,
        health::readyz,
    ),
    components(
        schemas(domain::Problem, domain::FieldError, domain::TextDelta),
        responses(Unauthenticated, BadRunId, RunNotFound, InvalidToken)
    ),
    modifiers(&Identities, &BadTokens, &Links),
    security(("session" = []), ("token" = [])),
    tags(
        (name = "runs", description = "Analyses: start, follow, cancel, retry, list and search, tag."),
        (name = "shares", description = "Read-only links to a run, which anyone holding one may open."),
        (name = "catalog", description = "What a run can be made of."),
        (name = "backtests", description = "Many runs over symbols and dates, scored against the prices that followed."),
        (name = "batches", description = "Runs of many symbols started together, at most your limit of active runs at once."),
        (name = "schedules", description = "Watchlists started as a batch on every tick of a cron, in a time zone."),
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

/// The links a client follows from an answer to the next operation (the `Location` of a
/// start, the id it returns), so that a sequence of calls can be generated from the document.
struct Links;

/// A link's name, the operation it leads to, the parameter it fills and where its value is.
type Link = (&'static str, &'static str, &'static str, &'static str);

impl Links {
    /// The links of an operation's answer with a status.
    const LINKS: &[(&str, &str, &[Link])] = &[
        ("startRun", "202", RUN_LINKS),
        ("retryRun", "202", RUN_LINKS),
        ("rerunRun", "202", RUN_LINKS),
        (
            "startBacktest",
            "202",
            &[
                ("backtest", "getBacktest", "backtestId", "$response.body#/backtestId"),
                ("cancel", "cancelBacktest", "backtestId", "$response.body#/backtestId"),
            ],
        ),
        (
            "startBatch",
            "202",
            &[
                ("batch", "getBatch", "batchId", "$response.body#/batchId"),
                ("cancel", "cancelBatch", "batchId", "$response.body#/batchId"),
            ],
        ),
        (
            "createSchedule",
            "201",
            &[
                ("schedule", "getSchedule", "scheduleId", "$response.body#/scheduleId"),
                ("update", "updateSchedule", "scheduleId", "$response.body#/scheduleId"),
                ("delete", "deleteSchedule", "scheduleId", "$response.body#/scheduleId"),
            ],
        ),
        ("createShare", "201", &[("revoke", "revokeShare", "id", "$response.body#/id")]),
    ];
}

const RUN_LINKS: &[Link] = &[
    ("progress", "getProgress", "runId", "$response.body#/runId"),
    ("events", "streamEvents", "runId", "$response.body#/runId"),
    ("transcript", "getTranscript", "runId", "$response.body#/runId"),
    ("log", "getRunLog", "runId", "$response.body#/runId"),
    ("deliveries", "listDeliveries", "runId", "$response.body#/runId"),
    ("cancel", "cancelRun", "runId", "$response.body#/runId"),
    ("shares", "listShares", "runId", "$response.body#/runId"),
    ("share", "createShare", "runId", "$response.body#/runId"),
];

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::LinkBuilder;
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                let id = operation.operation_id.clone().unwrap_or_default();
                for (from, status, links) in Self::LINKS.iter().filter(|(from, ..)| *from == id) {
                    let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else {
                        panic!("{from} has no inline {status} response to link from");
                    };
                    for (name, to, parameter, value) in links.iter() {
                        let link = LinkBuilder::new().operation_id(*to).parameter(*parameter, *value).build();
                        response.links.insert((*name).to_string(), RefOr::T(link));
                    }
                }
            }
        }
    }
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    name_link_targets(&mut doc);
    serde_json::to_string_pretty(&doc).expect("the document serialises")
});

/// The members of an object (none for anything else).
fn members(v: Option<&mut serde_json::Value>) -> impl Iterator<Item = &mut serde_json::Value> {
    v.and_then(|v| v.as_object_mut()).into_iter().flat_map(|o| o.values_mut())
}

/// utoipa 5.5 writes a link's target as `operation_id`; OpenAPI names it `operationId`.
/// (`get_mut`, never indexing: an index would add the members it does not find.)
fn name_link_targets(doc: &mut serde_json::Value) {
    let items = members(doc.get_mut("paths"));
    let operations = items.flat_map(|item| members(Some(item)));
    let responses = operations.flat_map(|operation| members(operation.get_mut("responses")));
    for link in responses.flat_map(|response| members(response.get_mut("links"))) {
        if let Some(link) = link.as_object_mut()
            && let Some(target) = link.remove("operation_id")
        {
            link.insert("operationId".into(), target);
        }
    }
}

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
            ("/api/trading/batches", "post"),
            ("/api/trading/batches/{batchId}", "get"),
            ("/api/trading/batches/{batchId}/cancel", "post"),
        ] {
            assert!(paths[path][method].is_object(), "{method} {path}");
        }
        let start = &doc["components"]["schemas"]["StartResponse"];
        let required: Vec<&str> = start["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(required, ["runId", "status", "message"], "serde's camelCase names");
        assert_eq!(doc["components"]["schemas"]["Problem"]["properties"]["type"]["type"], "string");
        assert_eq!(doc["paths"]["/api/trading/share/{secret}"]["get"]["security"], serde_json::json!([{}]));
    }

    /// Every operation has an id of its own, and every link names one of them with the
    /// parameters that operation declares.
    #[test]
    fn operation_ids_are_unique_and_links_lead_somewhere() {
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        let mut ids = std::collections::BTreeMap::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no id"));
                assert!(ids.insert(id.to_string(), op.clone()).is_none(), "{id} twice");
            }
        }
        let mut links = 0;
        for op in ids.values() {
            for response in op["responses"].as_object().unwrap().values() {
                for link in response["links"].as_object().into_iter().flatten().map(|(_, l)| l) {
                    let target = &ids[link["operationId"].as_str().unwrap_or_else(|| panic!("{link}"))];
                    for name in link["parameters"].as_object().unwrap().keys() {
                        let declared = target["parameters"].as_array().unwrap().iter().any(|p| p["name"] == *name);
                        assert!(declared, "{link} names {name}, which {} does not take", target["operationId"]);
                    }
                    links += 1;
                }
            }
        }
        assert_eq!(links, 32);
        fn nulls(v: &serde_json::Value, at: String, found: &mut Vec<String>) {
            match v {
                serde_json::Value::Null => found.push(at),
                serde_json::Value::Array(a) => {
                    a.iter().enumerate().for_each(|(i, v)| nulls(v, format!("{at}/{i}"), found))
                }
                serde_json::Value::Object(o) => o.iter().for_each(|(k, v)| nulls(v, format!("{at}/{k}"), found)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        nulls(&doc, String::new(), &mut found);
        assert_eq!(found, Vec::<String>::new(), "no member is written empty");
    }
}
