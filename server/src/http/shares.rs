//! Share links: a run's owner makes a read-only link that anyone can open — the page
//! `/share/<secret>` and `GET /api/trading/share/<secret>` — while cancel and retry stay the
//! owner's. A link is revoked by its owner and is then nobody's. Only the SHA-256 of the
//! secret is stored, so the link is shown once: making one (a plain form on the run's page)
//! leads to the shared page itself, whose address is the link to pass on.

use application::access::Access;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::extract::run_id;
use super::problem::ApiError;
use super::reply::{made_at, see_other};
use super::runs::progress_of;
use super::session::{Identity, identity};
use super::{AppState, pages};

fn access(state: &AppState) -> Access {
    state.access.clone()
}

fn no_such_link() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", "Share link not found", "This link is unknown or was revoked.")
}

/// `201` body of `POST /api/trading/runs/:runId/shares`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedShare {
    #[serde(flatten)]
    pub link: domain::ShareLink,
    /// The page to pass on.
    pub url: String,
    /// The same run's progress, for programs.
    pub api_url: String,
}

/// `POST /api/trading/runs/:runId/shares`
#[utoipa::path(
    post,
    operation_id = "createShare",
    path = "/api/trading/runs/{runId}/shares",
    tag = "shares",
    params(("runId" = uuid::Uuid, Path, description = "Your run's id.")),
    responses(
        (status = 201, description = "A new link; its secret is in `url` and `apiUrl`, shown this once.", body = CreatedShare, headers(
            ("Location" = String, description = "The shared page."),
        )),
        (status = 400, response = super::responses::BadRunId),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, response = super::responses::RunNotFound),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let (link, secret) = access(&state).create_share(&user, run_id(&raw)?).await?;
    let body = CreatedShare { link, url: format!("/share/{secret}"), api_url: format!("/api/trading/share/{secret}") };
    let mut resp = made_at(StatusCode::CREATED, &body.url, &body);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `GET /api/trading/runs/:runId/shares`: the run's links (without their secrets).
#[utoipa::path(
    get,
    operation_id = "listShares",
    path = "/api/trading/runs/{runId}/shares",
    tag = "shares",
    params(("runId" = uuid::Uuid, Path, description = "Your run's id.")),
    responses(
        (status = 200, description = "The run's links, without their secrets.", body = Vec<domain::ShareLink>),
        (status = 400, response = super::responses::BadRunId),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, response = super::responses::RunNotFound),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    // Someone else's run is "not found", not an empty list.
    state.service.owned(&user.0, id).await?;
    Ok(Json(access(&state).shares(&user, id).await?).into_response())
}

/// `DELETE /api/trading/shares/:id`
#[utoipa::path(
    delete,
    operation_id = "revokeShare",
    path = "/api/trading/shares/{id}",
    tag = "shares",
    params(("id" = String, Path, description = "The link's `id`.")),
    responses(
        (status = 204, description = "Revoked: the link opens nothing."),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, description = "No such link of yours.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if access(&state).revoke_share(&user, &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(no_such_link())
    }
}

/// `GET /api/trading/share/:secret`: the run's progress, as its owner would see it.
#[utoipa::path(
    get,
    operation_id = "getSharedProgress",
    path = "/api/trading/share/{secret}",
    tag = "shares",
    security(()),
    params(
        ("secret" = String, Path, description = "The link's secret."),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of an earlier answer."),
    ),
    responses(
        (status = 200, description = "The run's progress, as its owner sees it.", body = domain::Progress, headers(
            ("ETag" = String, description = "The run's version."),
        )),
        (status = 304, description = "Unchanged since the `ETag` named."),
        (status = 404, description = "An unknown or revoked link.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn progress(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (id, owner) = access(&state).shared(&secret).await?.ok_or_else(no_such_link)?;
    let mut resp = progress_of(&state, &owner, id, &headers).await?;
    // Not the caller's cookie but the link decides; still nobody else's cache's business.
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    Ok(resp)
}

/// `GET /api/trading/share/:secret/transcript`: the run's transcript, as its owner would see it.
#[utoipa::path(
    get,
    operation_id = "getSharedTranscript",
    path = "/api/trading/share/{secret}/transcript",
    tag = "shares",
    security(()),
    params(("secret" = String, Path, description = "The link's secret.")),
    responses(
        (status = 200, description = "The text the run's models wrote, as its owner sees it.", body = domain::Transcript),
        (status = 404, description = "An unknown or revoked link.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn transcript(State(state): State<AppState>, Path(secret): Path<String>) -> Result<Response, ApiError> {
    let (id, owner) = access(&state).shared(&secret).await?.ok_or_else(no_such_link)?;
    let mut resp = super::runs::transcript_of(&state, &owner.0, id).await?;
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    Ok(resp)
}

/// `GET /api/trading/share/:secret/log`: the run's log, as its owner would see it.
#[utoipa::path(
    get,
    operation_id = "getSharedRunLog",
    path = "/api/trading/share/{secret}/log",
    tag = "shares",
    security(()),
    params(("secret" = String, Path, description = "The link's secret.")),
    responses(
        (status = 200, description = "The run's log, as its owner sees it.", body = domain::RunLog),
        (status = 404, description = "An unknown or revoked link.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn log(State(state): State<AppState>, Path(secret): Path<String>) -> Result<Response, ApiError> {
    let (id, owner) = access(&state).shared(&secret).await?.ok_or_else(no_such_link)?;
    let mut resp = super::runs::log_of(&state, &owner.0, id).await?;
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    Ok(resp)
}

/// `POST /runs/:runId/share`: the run page's form; leads to the shared page, whose address is
/// the link.
pub async fn create_form(State(state): State<AppState>, Path(raw): Path<String>, parts: Parts) -> Response {
    let result = async {
        let (_, secret) = access(&state).create_share(&identity(&parts)?, run_id(&raw)?).await?;
        Ok(see_other(&format!("/share/{secret}")))
    }
    .await;
    let page = pages::page_of(parts.uri.path(), 2);
    pages::answer_form(&state, parts, page, result).await
}

/// `POST /runs/:runId/shares/:id/revoke`: back to the run's page.
pub async fn revoke_form(
    State(state): State<AppState>,
    Path((raw, id)): Path<(String, String)>,
    parts: Parts,
) -> Response {
    let result = async {
        let run = run_id(&raw)?;
        if access(&state).revoke_share(&identity(&parts)?, &id).await? {
            Ok(see_other(&format!("/runs/{run}")))
        } else {
            Err(no_such_link())
        }
    }
    .await;
    let page = pages::page_of(parts.uri.path(), 2);
    pages::answer_form(&state, parts, page, result).await
}
