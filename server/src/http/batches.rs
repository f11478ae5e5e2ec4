//! The REST API of batches: `/api/trading/batches…`, a batch's runs as CSV, and its page's
//! cancel form.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::BatchId;
use domain::batch::{BatchOrder, BatchRequest, BatchStatus, BatchSummary, BatchView};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::JsonBody;
use super::pages::{answer_form, page_of};
use super::problem::ApiError;
use super::reply::{digest_json, made_at, see_other};
use super::session::{Identity, identity};

pub(crate) fn batch_id(raw: &str) -> Result<BatchId, ApiError> {
    raw.parse().map_err(|e: domain::IdError| ApiError::field("batchId", e.0))
}

/// `POST /api/trading/batches` — `202 {batchId, runs}`: one run per symbol, queued.
#[utoipa::path(
    post,
    operation_id = "startBatch",
    path = "/api/trading/batches",
    tag = "batches",
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "The batch's runs are queued: at most your limit of active runs runs at once, the rest in the order of the symbols.", body = domain::batch::BatchStarted, headers(
            ("Location" = String, description = "The batch."),
        )),
        (status = 400, description = "A bad request, each field named in `errors` (a symbol's problem under `symbols`, naming it), or a body that is not JSON.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 415, description = "The body is not sent as JSON.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many starts a minute, the daily budget of this identity spent, or the queue too full for the batch's runs (`Retry-After`).", body = domain::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unreachable.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    Identity(user): Identity,
    JsonBody(request): JsonBody<BatchRequest>,
) -> Result<Response, ApiError> {
    let started = state.context.batches.start(&user.0, &request).await?;
    Ok(made_at(StatusCode::ACCEPTED, &format!("/api/trading/batches/{}", started.batch_id), &started))
}

/// `GET /api/trading/batches/:id` — each run's status, rating and confidence, and the totals,
/// with a strong ETag over the body (`If-None-Match` → 304).
#[utoipa::path(
    get,
    operation_id = "getBatch",
    path = "/api/trading/batches/{batchId}",
    tag = "batches",
    params(
        ("batchId" = uuid::Uuid, Path, description = "The batch's id, a UUID."),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of an earlier answer."),
    ),
    responses(
        (status = 200, description = "The batch's runs in the order of its symbols, and its totals.", body = BatchView, headers(
            ("ETag" = String, description = "The body's version."),
        )),
        (status = 304, description = "Unchanged since the `ETag` named."),
        (status = 400, description = "Not a batch id.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, description = "No such batch of yours.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn view(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = batch_id(&raw)?;
    let view = state.context.batches.view(&user.0, id).await?;
    let running = view.status == BatchStatus::Running;
    let retry_after = running.then(|| state.service.config().poll_after.as_secs().max(1));
    Ok(digest_json(&headers, 'B', &view, retry_after))
}

/// `POST /api/trading/batches/:id/cancel` — the batch as it is afterwards.
#[utoipa::path(
    post,
    operation_id = "cancelBatch",
    path = "/api/trading/batches/{batchId}/cancel",
    tag = "batches",
    params(("batchId" = uuid::Uuid, Path, description = "The batch's id, a UUID.")),
    responses(
        (status = 200, description = "The batch: its pending runs cancelled, its running ones asked to stop.", body = BatchView),
        (status = 400, description = "Not a batch id.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, description = "No such batch of yours.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = batch_id(&raw)?;
    Ok(Json(state.context.batches.cancel(&user.0, id).await?).into_response())
}

/// The body of `GET /api/trading/batches`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchList {
    /// Newest first.
    pub batches: Vec<BatchSummary>,
}

/// `GET /api/trading/batches` — yours, newest first.
#[utoipa::path(
    get,
    operation_id = "listBatches",
    path = "/api/trading/batches",
    tag = "batches",
    responses(
        (status = 200, description = "Your batches.", body = BatchList),
        (status = 401, response = super::responses::Unauthenticated),
    )
)]
pub async fn list(State(state): State<AppState>, Identity(user): Identity) -> Result<Response, ApiError> {
    Ok(Json(BatchList { batches: state.context.batches.list(&user.0).await? }).into_response())
}

/// The order of a batch page's table and its download.
#[derive(Debug, Deserialize)]
pub struct Sort {
    #[serde(default)]
    sort: String,
}

/// `GET /batches/:id/runs.csv` — the batch page's download, in the page's order (`sort`).
pub async fn runs_csv(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
    Query(Sort { sort }): Query<Sort>,
) -> Result<Response, ApiError> {
    let id = batch_id(&raw)?;
    let order = BatchOrder::parse(&sort).ok_or_else(|| {
        ApiError::field("sort", format!("'{sort}' is not given, rating, -rating, confidence or -confidence"))
    })?;
    let mut view = state.context.batches.view(&user.0, id).await?;
    order.sort(&mut view.runs);
    Ok(super::reply::csv_download(write_runs(&view), &format!("batch-{id}.csv")))
}

/// The runs as CSV: symbol, run, status, percent, rating, confidence and cost.
fn write_runs(view: &BatchView) -> Vec<u8> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["symbol", "run_id", "status", "percent", "rating", "confidence", "cost_usd"])
        .expect("writes to memory");
    for r in &view.runs {
        csv.write_record([
            r.symbol.clone(),
            r.run_id.to_string(),
            r.status.as_str().to_string(),
            r.percent.to_string(),
            r.rating.map(|r| r.as_str().to_string()).unwrap_or_default(),
            r.confidence.map(|c| format!("{c:.2}")).unwrap_or_default(),
            format!("{:.6}", r.cost_usd),
        ])
        .expect("writes to memory");
    }
    csv.into_inner().expect("writes to memory")
}

/// `POST /batches/:id/cancel`: the page's form; back to the batch's page.
pub async fn cancel_form(State(state): State<AppState>, Path(raw): Path<String>, parts: Parts) -> Response {
    let result = async {
        let id = batch_id(&raw)?;
        state.context.batches.cancel(&identity(&parts)?.0, id).await?;
        Ok(see_other(&format!("/batches/{id}")))
    }
    .await;
    let page = page_of(parts.uri.path(), 2);
    answer_form(&state, parts, page, result).await
}
