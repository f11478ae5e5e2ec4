//! The backtest pages' forms, posted natively (the pages are Leptos routes: `/backtests`,
//! `/backtests/:id`): `POST /backtests` starts a backtest and answers `303 See Other` to its
//! page, or renders `/backtests` again with what was sent and why not — each field's error
//! (`400`), a hosted model's cost to confirm (`409`), a limit (`429`); `POST /backtests/:id/cancel`
//! cancels one and leads back to its page. The same [`application::backtests::Backtests`] as
//! the REST API.

use app::routes::backtests::Rejected;
use application::Error;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use domain::FieldError;
use domain::backtest::BacktestRequest;
use leptos::prelude::provide_context;

use super::AppState;
use super::backtests::backtest_id;
use super::limits::{Limited, refusal};
use super::pages::{answer_form, form_body, page_of, refused, render_refused};
use super::problem::ApiError;
use super::reply::see_other;
use super::session::identity;

/// The form's fields as a browser encodes them. Empty fields mean "not given".
fn request_from_form(body: &[u8]) -> (BacktestRequest, Vec<FieldError>) {
    let mut request = BacktestRequest::default();
    let mut errors = Vec::new();
    for (name, value) in form_urlencoded::parse(body) {
        let value = value.trim().to_string();
        let given = (!value.is_empty()).then_some(value.clone());
        match name.as_ref() {
            "symbols" => {
                request.symbols =
                    value.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
            }
            "from" => request.from = given,
            "to" => request.to = given,
            "everyDays" => match value.parse() {
                Ok(n) => request.every_days = Some(n),
                Err(_) if value.is_empty() => {}
                Err(_) => errors.push(FieldError::new("everyDays", format!("'{}' is not a whole number", value))),
            },
            "horizons" => {
                let parsed: Result<Vec<u32>, _> =
                    value.split([',', ' ']).filter(|s| !s.is_empty()).map(str::parse).collect();
                match parsed {
                    Ok(h) if !h.is_empty() => request.horizons = Some(h),
                    Ok(_) => {}
                    Err(_) => {
                        errors.push(FieldError::new("horizons", "list whole numbers of trading days, e.g. 5, 20"))
                    }
                }
            }
            "model" => request.model_id = given,
            "depth" => request.depth = given,
            "bearish" => request.bearish = given,
            "confirmCost" => request.confirm_cost = matches!(value.as_str(), "on" | "true" | "1"),
            _ => {}
        }
    }
    (request, errors)
}

/// `POST /backtests`: `303` to the new backtest's page, or the form again with why not.
pub async fn start(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match form_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let (request, errors) = request_from_form(&body);
    let limited = parts.extensions.get::<Limited>().copied();
    let (error, estimate) = match (limited, identity(&parts)) {
        (Some(Limited(secs)), _) => (refusal(secs), None),
        (None, Err(e)) => return refused(&state, parts, "/backtests".into(), e).await,
        // What could not be read is named before anything is checked.
        (None, Ok(_)) if !errors.is_empty() => (Error::Invalid(errors).into(), None),
        (None, Ok(user)) => match state.backtests.start(&user.0, &request).await {
            Ok(started) => return see_other(&format!("/backtests/{}", started.backtest_id)),
            Err(Error::CostNotConfirmed(estimate)) => {
                let shown = (*estimate).clone();
                (Error::CostNotConfirmed(estimate).into(), Some(shown))
            }
            // Not the form's fault: answered as any form's refusal.
            Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => {
                return refused(&state, parts, "/backtests".into(), e.into()).await;
            }
            Err(e) => (ApiError::from(e), None),
        },
    };
    let rejected = Rejected { request, problem: (*error.problem).clone(), estimate };
    render_refused(&state, parts, "/backtests", error, move || provide_context(rejected.clone())).await
}

/// `POST /backtests/:id/cancel`: back to its page.
pub async fn cancel(State(state): State<AppState>, Path(raw): Path<String>, parts: Parts) -> Response {
    let result = async {
        let id = backtest_id(&raw)?;
        state.backtests.cancel(&identity(&parts)?.0, id).await?;
        Ok(see_other(&format!("/backtests/{id}")))
    }
    .await;
    let page = page_of(parts.uri.path(), 2);
    answer_form(&state, parts, page, result).await
}
