//! The REST API of runs: `/api/trading/…`.

use application::Started;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{AnalystInfo, JobStatus, RunId, RunsQuery, StartRequest, StartResponse};

use super::AppState;
use super::extract::{JsonBody, run_id};
use super::problem::ApiError;
use super::reply::{csv_download, made_at, tagged_json};
use super::session::Identity;

fn accepted(started: Started, state: &AppState) -> Response {
    let body = StartResponse {
        run_id: started.run_id,
        status: started.status,
        message: if started.created {
            "Analysis queued. Poll the progress URL for updates.".into()
        } else {
            "This request was already received; here is its run.".into()
        },
    };
    let mut resp = made_at(StatusCode::ACCEPTED, &format!("/api/trading/progress/{}", started.run_id), body);
    let h = resp.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(state.service.config().poll_after.as_secs().max(1)));
    if !started.created {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// `POST /api/trading/run`
#[utoipa::path(
    post,
    operation_id = "startRun",
    path = "/api/trading/run",
    tag = "runs",
    request_body(content = StartRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[\x21-\x7E]+$", description = "Repeats with the same key return the first run: 1 to 255 visible ASCII characters."),
        ("Prefer" = Option<String>, Header, description = "`wait=N` (RFC 7240): hold the request until the run ends or N seconds pass (at most 60; 0 or an unreadable value is ignored). A run that ends in time is answered `200` with its final progress; otherwise, or when the server begins to stop, the usual `202`."),
    ),
    responses(
        (status = 200, description = "Asked to wait (`Prefer: wait=N`), the run ended within N seconds: its final progress, as `GET /api/trading/progress/{runId}` gives it.", body = domain::Progress, headers(
            ("Location" = String, description = "Its progress."),
            ("ETag" = String, description = "The run's version."),
            ("Preference-Applied" = String, description = "`wait=N`, the seconds waited at most."),
        )),
        (status = 202, description = "The run is queued.", body = StartResponse, headers(
            ("Location" = String, description = "Its progress."),
            ("Retry-After" = u64, description = "Seconds until the next poll is useful."),
            ("Idempotent-Replayed" = String, description = "`true` when an earlier request with this key made the run."),
        )),
        (status = 400, description = "A field is invalid (each one named in `errors`) or the body is not JSON.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 403, description = "A cross-site request.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The Idempotency-Key was used for another request.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many active runs, too many starts a minute, or the daily budget spent (`Retry-After`).", body = domain::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue is full or the database unreachable (`Retry-After`).", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    Identity(user): Identity,
    headers: HeaderMap,
    JsonBody(request): JsonBody<StartRequest>,
) -> Result<Response, ApiError> {
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(v.to_str().map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?),
        None => None,
    };
    let started = state.service.start(&user.0, &request, key).await?;
    if let Some(secs) = preferred_wait(&headers)
        && let Some(done) = held_until_done(&state, &user, started.run_id, secs).await?
    {
        return Ok(done);
    }
    Ok(accepted(started, &state))
}

/// The longest a start waits for its run's end when asked to (`Prefer: wait=N`).
pub const WAIT_MAX_SECS: u64 = 60;

/// The seconds of a `wait` preference (RFC 7240 `Prefer: wait=N`), at most
/// [`WAIT_MAX_SECS`]; none without one, or with one that is zero or not a number — a
/// preference the server cannot honour is ignored, as the RFC says. Read by hand: the
/// header's grammar here is `token[=value]` items separated by commas, each with optional
/// `;` parameters, which no maintained crate parses on its own.
fn preferred_wait(headers: &HeaderMap) -> Option<u64> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| {
            let (name, value) = item.split(';').next()?.split_once('=')?;
            let value = value.trim().trim_matches('"');
            name.trim().eq_ignore_ascii_case("wait").then(|| value.parse::<u64>().ok()).flatten()
        })
        .find(|secs| *secs > 0)
        .map(|secs| secs.min(WAIT_MAX_SECS))
}

/// Holds a start until its run ends or `secs` pass: its final progress document (`200`,
/// `Preference-Applied: wait=N`) if it ended in time; `None` — the usual `202` — if not, or
/// as soon as the process begins to stop.
async fn held_until_done(
    state: &AppState,
    owner: &application::UserId,
    id: RunId,
    secs: u64,
) -> Result<Option<Response>, ApiError> {
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut rx = state.service.progress_cache().feed().subscribe();
    loop {
        let body = state.service.progress_body(&owner.0, id).await?;
        if !body.is_active() {
            let mut resp = tagged_json(&HeaderMap::new(), &body.etag, body.body.clone(), None);
            let h = resp.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_str(&format!("/api/trading/progress/{id}")).expect("ascii"));
            h.insert("preference-applied", HeaderValue::from_str(&format!("wait={secs}")).expect("ascii"));
            return Ok(Some(resp));
        }
        tokio::select! {
            () = tokio::time::sleep_until(until) => return Ok(None),
            () = state.shutdown.cancelled() => return Ok(None),
            () = super::live::run_may_have_changed(&state.service, &mut rx, id) => {}
        }
    }
}

/// `GET /api/trading/progress/:runId` — from the process's progress cache when it is current,
/// so a 304, and a 200 of an unchanged version, cost no database query.
#[utoipa::path(
    get,
    operation_id = "getProgress",
    path = "/api/trading/progress/{runId}",
    tag = "runs",
    params(
        ("runId" = uuid::Uuid, Path, description = "The run's id, a UUID."),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of an earlier answer."),
    ),
    responses(
        (status = 200, description = "The run's state and, once completed, its result.", body = domain::Progress, headers(
            ("ETag" = String, description = "The run's version."),
            ("Retry-After" = u64, description = "While the run is active."),
        )),
        (status = 304, description = "Unchanged since the `ETag` named."),
        (status = 400, response = super::responses::BadRunId),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, response = super::responses::RunNotFound),
    )
)]
pub async fn progress(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    progress_of(&state, &user, id, &headers).await
}

/// The progress answer of `owner`'s run: a 304 when `If-None-Match` names its version.
pub(crate) async fn progress_of(
    state: &AppState,
    owner: &application::UserId,
    id: RunId,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let body = state.service.progress_body(&owner.0, id).await?;
    let retry_after = body.is_active().then(|| state.service.config().poll_after.as_secs().max(1));
    let resp = tagged_json(headers, &body.etag, body.body.clone(), retry_after);
    super::telemetry::poll(state, id, resp.status() == StatusCode::NOT_MODIFIED);
    Ok(resp)
}

/// `POST /api/trading/cancel/:runId` — 202 while the run is stopping, 200 once it has ended.
#[utoipa::path(
    post,
    operation_id = "cancelRun",
    path = "/api/trading/cancel/{runId}",
    tag = "runs",
    params(("runId" = uuid::Uuid, Path, description = "The run's id, a UUID.")),
    responses(
        (status = 200, description = "The run has ended.", body = domain::Progress),
        (status = 202, description = "The run is stopping.", body = domain::Progress),
        (status = 400, response = super::responses::BadRunId),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, response = super::responses::RunNotFound),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    let progress = state.service.cancel(&user.0, id).await?;
    let status = if progress.run.status.is_terminal() { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(progress)).into_response())
}

/// `POST /api/trading/retry/:runId`
#[utoipa::path(
    post,
    operation_id = "retryRun",
    path = "/api/trading/retry/{runId}",
    tag = "runs",
    params(("runId" = uuid::Uuid, Path, description = "A failed, timed-out or cancelled run's id.")),
    responses(
        (status = 202, description = "A new run, with `retryOf` set, is queued.", body = StartResponse, headers(
            ("Location" = String, description = "Its progress."),
        )),
        (status = 400, response = super::responses::BadRunId),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, response = super::responses::RunNotFound),
        (status = 409, description = "The run cannot be retried.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many active runs, too many starts a minute, or the daily budget spent (`Retry-After`).", body = domain::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue is full or the database unreachable.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    let started = state.service.retry(&user.0, id).await?;
    Ok(accepted(started, &state))
}

/// `GET /api/trading/runs/:runId/outcome`
#[utoipa::path(
    get,
    operation_id = "getRunOutcome",
    path = "/api/trading/runs/{runId}/outcome",
    tag = "runs",
    params(("runId" = uuid::Uuid, Path, description = "The run's id, a UUID.")),
    responses(
        (status = 200, description = "How the run turned out: the stock's and the index's returns 5 and 20 trading days after its as-of day, the excess and whether the rating's direction was right, from the prices its analysts read (each figure absent while the prices do not reach it); `outcome` is null before the run completed.", body = domain::RunOutcome),
        (status = 400, response = super::responses::BadRunId),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, response = super::responses::RunNotFound),
    )
)]
pub async fn outcome(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    let outcome = state.service.outcome(&user.0, id).await?;
    let mut resp = Json(outcome).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}

/// `POST /api/trading/runs/:runId/rerun`
#[utoipa::path(
    post,
    operation_id = "rerunRun",
    path = "/api/trading/runs/{runId}/rerun",
    tag = "runs",
    params(("runId" = uuid::Uuid, Path, description = "The run to take the stages before `from` over from.")),
    request_body(content = domain::RerunRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "A new run, with `rerunOf` set, is queued: the steps before `from` taken over (`reused`), the rest to run.", body = StartResponse, headers(
            ("Location" = String, description = "Its progress."),
        )),
        (status = 400, description = "`from` is not a stage, not one of the new run's, or the run has not finished a step before it; or another field is invalid (each named in `errors`); or the body is not JSON.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 403, description = "A cross-site request.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 404, response = super::responses::RunNotFound),
        (status = 413, description = "The body is larger than 64 KiB.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many active runs, too many starts a minute, or the daily budget spent (`Retry-After`).", body = domain::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue is full or the database unreachable.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rerun(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
    JsonBody(request): JsonBody<domain::RerunRequest>,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    let started = state.service.rerun(&user.0, id, &request).await?;
    Ok(accepted(started, &state))
}

/// `GET /api/trading/runs/:runId/transcript`
#[utoipa::path(
    get,
    operation_id = "getTranscript",
    path = "/api/trading/runs/{runId}/transcript",
    tag = "runs",
    params(("runId" = uuid::Uuid, Path, description = "The run's id, a UUID.")),
    responses(
        (status = 200, description = "The text the run's models wrote, one entry per model step; a running step's text so far.", body = domain::Transcript),
        (status = 400, response = super::responses::BadRunId),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, response = super::responses::RunNotFound),
    )
)]
pub async fn transcript(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    transcript_of(&state, &user.0, id).await
}

/// The transcript of `owner`'s run, not to be cached by anyone else.
pub async fn transcript_of(state: &AppState, owner: &str, id: RunId) -> Result<Response, ApiError> {
    let transcript = state.service.transcript(owner, id).await?;
    let mut resp = Json(transcript).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}

/// `GET /api/trading/runs/:runId/log`
#[utoipa::path(
    get,
    operation_id = "getRunLog",
    path = "/api/trading/runs/{runId}/log",
    tag = "runs",
    params(("runId" = uuid::Uuid, Path, description = "The run's id, a UUID.")),
    responses(
        (status = 200, description = "The run's log so far: data read, model calls with their tokens, cost and first-output latency, retries with the wait honoured, stalls, checkpoints taken over, cancellation, its end.", body = domain::RunLog),
        (status = 400, response = super::responses::BadRunId),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, response = super::responses::RunNotFound),
    )
)]
pub async fn log(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    log_of(&state, &user.0, id).await
}

/// `GET /api/trading/runs/:runId/deliveries`
#[utoipa::path(
    get,
    operation_id = "listDeliveries",
    path = "/api/trading/runs/{runId}/deliveries",
    tag = "runs",
    params(("runId" = uuid::Uuid, Path, description = "The run's id, a UUID.")),
    responses(
        (status = 200, description = "The deliveries of the run's events to its webhook, oldest first: each event's `webhook-id`, attempts, the receiver's last status, and whether it was delivered, given up on, or when it is tried next.", body = domain::webhook::DeliveryList),
        (status = 400, response = super::responses::BadRunId),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, response = super::responses::RunNotFound),
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = run_id(&raw)?;
    let deliveries = state.context.webhooks.deliveries(&user.0, id).await?;
    let mut resp = Json(domain::webhook::DeliveryList { deliveries }).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}

/// The log of `owner`'s run, not to be cached by anyone else.
pub async fn log_of(state: &AppState, owner: &str, id: RunId) -> Result<Response, ApiError> {
    let log = state.service.log(owner, id).await?;
    let mut resp = Json(log).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}

/// `GET /api/trading/runs?symbol=&rating=&status=&modelId=&depth=&from=&to=&asOfFrom=&asOfTo=&tag=&q=&cursor=&page=&perPage=`
#[utoipa::path(
    get,
    operation_id = "listRuns",
    path = "/api/trading/runs",
    tag = "runs",
    params(
        ("symbol" = Option<String>, Query, max_length = 10, description = "Only runs of this ticker symbol."),
        ("rating" = Option<domain::Rating>, Query, description = "Only runs that ended with this rating."),
        ("status" = Option<JobStatus>, Query, description = "Only runs in this status."),
        ("modelId" = Option<String>, Query, max_length = 100, description = "Only runs of this model."),
        ("depth" = Option<domain::Depth>, Query, description = "Only runs of this research depth."),
        ("from" = Option<String>, Query, description = "A day, YYYY-MM-DD (empty: no filter, as a form sends it). Only runs created on or after this day (UTC)."),
        ("to" = Option<String>, Query, description = "A day, YYYY-MM-DD (empty: no filter, as a form sends it). Only runs created on or before this day (UTC)."),
        ("asOfFrom" = Option<String>, Query, description = "A day, YYYY-MM-DD (empty: no filter, as a form sends it). Only runs analysed as of this day or later."),
        ("asOfTo" = Option<String>, Query, description = "A day, YYYY-MM-DD (empty: no filter, as a form sends it). Only runs analysed as of this day or earlier."),
        ("tag" = Option<String>, Query, max_length = 32, description = "Only runs carrying this tag."),
        ("q" = Option<String>, Query, max_length = 200, description = "Words (up to 8) that must all occur in the summary or the reports."),
        ("outcome" = Option<String>, Query, description = "`right` or `wrong`: only completed runs whose rating's direction the stock's move over 20 trading days after the as-of day proved right (or wrong); a Hold or Review names no direction and matches neither."),
        ("sort" = Option<String>, Query, description = "`newest` (the default), `-return` (highest 20-day return first) or `return` (lowest first); runs without a 20-day return come last. Another order than `newest` pages by `page`, not `cursor`, and gives no `next`."),
        ("cursor" = Option<String>, Query, description = "The `next` of the previous page: the runs after it, newest first, however many runs started since."),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "From 1 (the default); ignored with a cursor."),
        ("perPage" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Runs a page: 20 unless given."),
    ),
    responses(
        (status = 200, description = "Your runs that match every filter given, newest first.", body = domain::RunsPage),
        (status = 400, description = "A bad filter, cursor, page or perPage, each named.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Identity(user): Identity,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let query = RunsQuery::parse(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|errors| ApiError::from(application::Error::Invalid(errors)))?;
    let runs = state.service.list(&user.0, &query).await?;
    Ok(Json(runs).into_response())
}

/// The most runs one CSV download of the history holds (the newest that match).
pub const HISTORY_CSV_MAX: u32 = 10_000;

/// `GET /runs.csv?<the history's filters>` — the history page's download: the runs that match,
/// newest first (at most [`HISTORY_CSV_MAX`]), one line each.
pub async fn history_csv(
    State(state): State<AppState>,
    Identity(user): Identity,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let mut query = RunsQuery::parse(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|errors| ApiError::from(application::Error::Invalid(errors)))?;
    query.per_page = application::runs::PER_PAGE_MAX;
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "run_id",
        "created_at",
        "symbol",
        "as_of",
        "model_id",
        "depth",
        "analysts",
        "status",
        "rating",
        "confidence",
        "cost_usd",
        "duration_ms",
        "tags",
        "archived",
        "return_5d",
        "return_20d",
        "excess_20d",
        "right_20d",
    ])
    .expect("writes to memory");
    let mut written = 0;
    loop {
        let page = state.service.list(&user.0, &query).await?;
        for r in &page.runs {
            let analysts: Vec<&str> = r.analysts.iter().map(|a| a.id()).collect();
            let after = |days: u32, f: fn(&domain::HorizonOutcome) -> Option<String>| {
                r.outcome.iter().find(|h| h.days == days).and_then(f).unwrap_or_default()
            };
            csv.write_record([
                r.run_id.to_string(),
                r.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                r.symbol.clone(),
                r.as_of.map(|d| d.to_string()).unwrap_or_default(),
                r.model_id.clone(),
                r.depth.id().to_string(),
                analysts.join(" "),
                r.status.as_str().to_string(),
                r.rating.map(|x| x.as_str().to_string()).unwrap_or_default(),
                r.confidence.map(|c| format!("{c:.4}")).unwrap_or_default(),
                format!("{:.6}", r.cost_usd),
                r.duration.map(|d| d.to_string()).unwrap_or_default(),
                r.tags.join("; "),
                r.archived.to_string(),
                after(5, |h| h.stock_return.map(|x| format!("{x:.6}"))),
                after(20, |h| h.stock_return.map(|x| format!("{x:.6}"))),
                after(20, |h| h.excess.map(|x| format!("{x:.6}"))),
                after(20, |h| h.right.map(|x| x.to_string())),
            ])
            .expect("writes to memory");
        }
        written += page.runs.len() as u32;
        match page.next.as_deref().and_then(domain::Cursor::decode) {
            Some(next) if written < HISTORY_CSV_MAX => query.cursor = Some(next),
            // Another order than newest first pages by number.
            None if query.order != domain::HistoryOrder::Newest
                && !page.runs.is_empty()
                && u64::from(written) < page.total
                && written < HISTORY_CSV_MAX =>
            {
                query.page += 1
            }
            _ => break,
        }
    }
    Ok(csv_download(csv.into_inner().expect("writes to memory"), "runs.csv"))
}

/// The runs of a `runs` query parameter (listed with commas, repeated, or both).
fn compared_ids(query: &[(String, String)]) -> Result<Vec<RunId>, ApiError> {
    let values = query.iter().filter(|(k, _)| k == "runs").map(|(_, v)| v.as_str());
    domain::compare::parse_ids(values).map_err(|e| ApiError::from(application::Error::Invalid(vec![e])))
}

/// `GET /api/trading/compare?runs=<id>,<id>[,…]`
#[utoipa::path(
    get,
    operation_id = "compareRuns",
    path = "/api/trading/compare",
    tag = "runs",
    params(
        ("runs" = String, Query, description = "2 to 4 of your runs' ids, separated by commas (or the parameter repeated), in the order to show them."),
    ),
    responses(
        (status = 200, description = "The runs side by side: settings, rating and confidence, each analyst's stance, the research verdict, the final plan, cost and duration, one row each, `differs` where the runs do not agree.", body = domain::Comparison),
        (status = 400, description = "`runs` names fewer than 2 or more than 4 runs, or something that is not a run id.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, description = "One of the runs does not exist or is not yours.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn compare(
    State(state): State<AppState>,
    Identity(user): Identity,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let comparison = state.service.compare(&user.0, &compared_ids(&query)?).await?;
    let mut resp = Json(comparison).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}

/// `GET /compare.csv?runs=…` — the compare page's download: the same rows, one line each, a
/// column per run (headed by its id), and whether the runs differ.
pub async fn compare_csv(
    State(state): State<AppState>,
    Identity(user): Identity,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let comparison = state.service.compare(&user.0, &compared_ids(&query)?).await?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    let mut head = vec!["section".to_string(), "field".to_string()];
    head.extend(comparison.runs.iter().map(|r| r.run_id.to_string()));
    head.push("differs".into());
    csv.write_record(&head).expect("writes to memory");
    for row in &comparison.rows {
        let mut line = vec![row.section.clone(), row.label.clone()];
        line.extend(row.values.iter().cloned());
        line.push(row.differs.to_string());
        csv.write_record(&line).expect("writes to memory");
    }
    Ok(csv_download(csv.into_inner().expect("writes to memory"), "compare.csv"))
}

/// Body of `PUT /api/trading/runs/:runId/tags`, and its answer.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Tags {
    /// Short labels: at most 10, each 1–32 letters, digits, spaces, `-`, `_` or `.`; stored
    /// trimmed and in lower case, duplicates dropped.
    #[schema(max_items = 10)]
    pub tags: Vec<String>,
}

/// `PUT /api/trading/runs/:runId/tags`
#[utoipa::path(
    put,
    operation_id = "setTags",
    path = "/api/trading/runs/{runId}/tags",
    tag = "runs",
    params(("runId" = uuid::Uuid, Path, description = "Your run's id.")),
    request_body = Tags,
    responses(
        (status = 200, description = "The run's tags as stored, in place of any it had.", body = Tags),
        (status = 400, description = "A bad run id or tag, each named.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, response = super::responses::RunNotFound),
        (status = 415, description = "The body is not sent as JSON.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn set_tags(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody<Tags>,
) -> Result<Response, ApiError> {
    let tags = state.service.set_tags(&user.0, run_id(&raw)?, &body.tags).await?;
    Ok(Json(Tags { tags }).into_response())
}

/// `GET /api/trading/models`
#[utoipa::path(get, operation_id = "listModels", path = "/api/trading/models", tag = "catalog", security(()),
    responses((status = 200, description = "The model catalog.", body = Vec<domain::ModelInfo>)))]
pub async fn models(State(state): State<AppState>) -> Response {
    Json(state.context.models.as_ref().clone()).into_response()
}

/// `GET /api/trading/analysts`
#[utoipa::path(get, operation_id = "listAnalysts", path = "/api/trading/analysts", tag = "catalog", security(()),
    responses((status = 200, description = "Every analyst a run can include.", body = Vec<AnalystInfo>)))]
pub async fn analysts() -> Response {
    Json(AnalystInfo::all()).into_response()
}

/// `GET /api/trading/symbols` — the symbols the market data can list (empty for online sources).
#[utoipa::path(get, operation_id = "listSymbols", path = "/api/trading/symbols", tag = "catalog", security(()),
    responses((status = 200, description = "Ticker symbols.", body = Vec<String>)))]
pub async fn symbols(State(state): State<AppState>) -> Response {
    Json(state.context.symbols.as_ref().clone()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_preference_is_read_bounded_and_otherwise_ignored() {
        let wait = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("prefer", HeaderValue::from_str(v).unwrap());
            }
            preferred_wait(&h)
        };
        assert_eq!(wait(&["wait=10"]), Some(10));
        assert_eq!(wait(&["respond-async, Wait=5"]), Some(5));
        assert_eq!(wait(&["handling=lenient", "wait=\"7\"; foo=bar"]), Some(7));
        assert_eq!(wait(&["wait=3600"]), Some(WAIT_MAX_SECS));
        assert_eq!(wait(&["wait=0"]), None);
        assert_eq!(wait(&["wait=-1"]), None);
        assert_eq!(wait(&["wait"]), None);
        assert_eq!(wait(&["waiting=5"]), None);
        assert_eq!(wait(&[]), None);
    }
}
