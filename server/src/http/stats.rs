//! The operators' stats: `GET /api/trading/stats` (JSON) and `GET /stats` (the Leptos page
//! `app::routes::stats`, with its charts), from the database ([`application::stats`]) and
//! this process's own measurements (active pollers, store operation times).
//!
//! Readable from this machine (a loopback peer whose request was not forwarded by a proxy) or
//! with `Authorization: Bearer <ADMIN_TOKEN>`; anyone else gets a problem.

use std::net::SocketAddr;

use app::routes::stats::{StatementTime, StatsBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use leptos::prelude::provide_context;

use super::AppState;
use super::pages::render;
use super::problem::ApiError;
use super::telemetry::{POLLER_WINDOW, statement_times};
use super::tokens::{OperatorToken, bearer};

/// Whether the request may read the stats: the admin token, or from this machine directly.
fn check(req: &Request, token: &OperatorToken) -> Result<(), ApiError> {
    if token.sent_in(req.headers()) {
        return Ok(());
    }
    let loopback = req.extensions().get::<ConnectInfo<SocketAddr>>().is_some_and(|c| c.0.ip().is_loopback());
    let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|h| req.headers().contains_key(*h));
    if loopback && !forwarded {
        return Ok(());
    }
    Err(match token.is_set() {
        true => {
            let mut e = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Admin token required",
                "The stats are readable from the server's own machine or with Authorization: Bearer <ADMIN_TOKEN>.",
            );
            let sent = bearer(req.headers()).is_some();
            e.problem.detail.push_str(if sent { " The token given is not it." } else { "" });
            e
        }
        false => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Local access only",
            "The stats are readable from the server's own machine only; set ADMIN_TOKEN to read them from elsewhere.",
        ),
    })
}

async fn body(state: &AppState) -> Result<StatsBody, ApiError> {
    let stats = state.service.stats().await?;
    let mut database: Vec<StatementTime> = statement_times(&state.recorder.render())
        .into_iter()
        .map(|(statement, count, secs)| StatementTime {
            statement,
            count,
            average_ms: if count > 0 { secs * 1000.0 / count as f64 } else { 0.0 },
        })
        .collect();
    database.sort_by(|a, b| b.average_ms.total_cmp(&a.average_ms));
    Ok(StatsBody { stats, active_pollers: state.pollers.active(POLLER_WINDOW), database })
}

/// `GET /api/trading/stats`
pub async fn json(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    check(&req, &state.admin_token)?;
    let body = body(&state).await?;
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `GET /stats`: once the caller may read them, the Leptos page `/stats` with the figures.
pub async fn page(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    check(&req, &state.admin_token)?;
    let body = body(&state).await?;
    let (parts, _) = req.into_parts();
    let mut resp = render(&state, parts, "/stats", move || provide_context(body.clone())).await;
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
