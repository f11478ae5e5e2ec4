//! Schedules over REST (`/api/schedules…`) and the `/schedules` page's forms, posted natively:
//! create, edit, pause, resume and delete, each answered with `303 See Other` back to the page,
//! or the page again with why not (the create form keeps what was typed).

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::ScheduleId;
use domain::batch::split_symbols;
use domain::schedule::{Schedule, ScheduleList, ScheduleRequest};
use leptos::prelude::provide_context;

use super::AppState;
use super::extract::JsonBody;
use super::pages::{answer_form, form_body, refused, render_refused};
use super::problem::ApiError;
use super::reply::{made_at, see_other};
use super::session::{Identity, identity};

fn schedule_id(raw: &str) -> Result<ScheduleId, ApiError> {
    raw.parse().map_err(|e: domain::IdError| ApiError::field("scheduleId", e.0))
}

/// `POST /api/schedules` — `201` with the schedule and its next tick.
#[utoipa::path(
    post,
    operation_id = "createSchedule",
    path = "/api/schedules",
    tag = "schedules",
    request_body(content = ScheduleRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The schedule, with its next tick.", body = Schedule, headers(
            ("Location" = String, description = "The schedule."),
        )),
        (status = 400, description = "A bad schedule, each field named in `errors`: `name`, `symbols` and `cron` are required; a cron has 5 or 6 fields, its ticks at least `MIN_SCHEDULE_INTERVAL_SECS` apart; `timezone` is an IANA zone; the settings are a batch's.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 415, description = "The body is not sent as JSON.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Identity(user): Identity,
    JsonBody(request): JsonBody<ScheduleRequest>,
) -> Result<Response, ApiError> {
    let schedule = state.context.schedules.create(&user.0, &request).await?;
    Ok(made_at(StatusCode::CREATED, &format!("/api/schedules/{}", schedule.schedule_id), &schedule))
}

/// `GET /api/schedules` — yours, oldest first, each with its next tick and latest batches.
#[utoipa::path(
    get,
    operation_id = "listSchedules",
    path = "/api/schedules",
    tag = "schedules",
    responses(
        (status = 200, description = "Your schedules.", body = ScheduleList),
        (status = 401, response = super::responses::Unauthenticated),
    )
)]
pub async fn list(State(state): State<AppState>, Identity(user): Identity) -> Result<Response, ApiError> {
    Ok(Json(ScheduleList { schedules: state.context.schedules.list(&user.0).await? }).into_response())
}

/// `GET /api/schedules/:id`.
#[utoipa::path(
    get,
    operation_id = "getSchedule",
    path = "/api/schedules/{scheduleId}",
    tag = "schedules",
    params(("scheduleId" = uuid::Uuid, Path, description = "The schedule's id, a UUID.")),
    responses(
        (status = 200, description = "The schedule, its next tick and latest batches.", body = Schedule),
        (status = 400, description = "Not a schedule id.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, description = "No such schedule of yours.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.context.schedules.get(&user.0, schedule_id(&raw)?).await?).into_response())
}

/// `PATCH /api/schedules/:id` — pauses (`{"paused": true}`), resumes or edits it.
#[utoipa::path(
    patch,
    operation_id = "updateSchedule",
    path = "/api/schedules/{scheduleId}",
    tag = "schedules",
    params(("scheduleId" = uuid::Uuid, Path, description = "The schedule's id, a UUID.")),
    request_body(content = ScheduleRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The schedule as it is now; its next tick computed again.", body = Schedule),
        (status = 400, description = "A bad field, each named, or not a schedule id.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, description = "No such schedule of yours.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
    JsonBody(request): JsonBody<ScheduleRequest>,
) -> Result<Response, ApiError> {
    let id = schedule_id(&raw)?;
    Ok(Json(state.context.schedules.update(&user.0, id, &request).await?).into_response())
}

/// `DELETE /api/schedules/:id` — `204`; the batches it started stay.
#[utoipa::path(
    delete,
    operation_id = "deleteSchedule",
    path = "/api/schedules/{scheduleId}",
    tag = "schedules",
    params(("scheduleId" = uuid::Uuid, Path, description = "The schedule's id, a UUID.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "Not a schedule id.", body = domain::Problem, content_type = "application/problem+json"),
        (status = 401, response = super::responses::Unauthenticated),
        (status = 404, description = "No such schedule of yours.", body = domain::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    state.context.schedules.delete(&user.0, schedule_id(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The create and edit forms' fields as a browser encodes them (empty: not given, except that
/// an empty time zone is UTC; the analysts' boxes replace the list when any is sent).
fn request_from_form(body: &[u8]) -> ScheduleRequest {
    let mut r = ScheduleRequest::default();
    for (name, value) in form_urlencoded::parse(body) {
        let value = value.trim().to_string();
        let given = (!value.is_empty()).then_some(value.clone());
        match name.as_ref() {
            "name" => r.name = Some(value),
            "symbols" => r.symbols = Some(split_symbols(&value)),
            "cron" => r.cron = Some(value),
            "timezone" => r.timezone = Some(value),
            "model" => r.model_id = given,
            "depth" => r.depth = given,
            "analysts" => r.analysts.get_or_insert_with(Vec::new).push(value),
            _ => {}
        }
    }
    r
}

/// `POST /schedules`: a new schedule, `303` back to the list; or the page again with what was
/// typed and why not.
pub async fn create_form(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match form_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let request = request_from_form(&body);
    let user = match identity(&parts) {
        Ok(user) => user,
        Err(e) => return refused(&state, parts, "/schedules".into(), e).await,
    };
    match state.context.schedules.create(&user.0, &request).await {
        Ok(_) => see_other("/schedules"),
        Err(e @ (application::Error::Internal(_) | application::Error::Unavailable(_))) => {
            refused(&state, parts, "/schedules".into(), e.into()).await
        }
        Err(e) => {
            let e = ApiError::from(e);
            let rejected = app::routes::schedules::Rejected { request, problem: (*e.problem).clone() };
            render_refused(&state, parts, "/schedules", e, move || provide_context(rejected.clone())).await
        }
    }
}

/// `POST /schedules/:id` (edit), `/schedules/:id/pause`, `/resume`, `/delete`: back to the list.
pub async fn change_form(State(state): State<AppState>, Path(path): Path<Vec<String>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let result = async {
        let (raw, what) = match path.as_slice() {
            [raw] => (raw, "edit"),
            [raw, what] => (raw, what.as_str()),
            _ => return Err(ApiError::from(application::Error::NotFound)),
        };
        let id = schedule_id(raw)?;
        let user = identity(&parts)?;
        let schedules = &state.context.schedules;
        match what {
            "edit" => {
                let mut request = request_from_form(&form_body(body).await?);
                // The edit form does not change whether it is paused.
                request.paused = None;
                schedules.update(&user.0, id, &request).await?;
            }
            "pause" | "resume" => {
                let request = ScheduleRequest { paused: Some(what == "pause"), ..ScheduleRequest::default() };
                schedules.update(&user.0, id, &request).await?;
            }
            "delete" => schedules.delete(&user.0, id).await?,
            _ => return Err(application::Error::NotFound.into()),
        }
        Ok(see_other("/schedules"))
    }
    .await;
    answer_form(&state, parts, "/schedules".into(), result).await
}
