//! Server functions and the browser's REST calls.
//!
//! Server functions are thin: take the app context and the caller's id, call the same
//! [`application::RunService`] as the REST API, turn its error into the same problem details. The
//! progress poll goes to the REST endpoint instead, because it speaks HTTP caching (ETag,
//! `If-None-Match` → 304) and sends a `Retry-After` hint, which server functions cannot.

use std::fmt;

use domain::{AnalystInfo, ModelInfo, Problem, Progress, RunLog, RunState, RunsPage, StartRequest, StartResponse};
use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use serde::{Deserialize, Serialize};

/// An error as the UI sees it: a problem details body, from the server or made up locally
/// when the server could not be reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppError(pub Problem);

impl AppError {
    pub fn local(title: &str, detail: impl Into<String>) -> Self {
        AppError(Problem {
            kind: "/problems/client".into(),
            title: title.into(),
            status: 0,
            detail: detail.into(),
            errors: vec![],
        })
    }

    pub fn status(&self) -> u16 {
        self.0.status
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.detail)
    }
}

impl std::error::Error for AppError {}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        // Arguments the server could not read are the caller's mistake: a 400 problem, as the
        // REST API answers malformed bodies, not a 500.
        if let ServerFnErrorErr::Args(detail) | ServerFnErrorErr::MissingArg(detail) = &value {
            #[cfg(feature = "ssr")]
            ssr::problem_status(400);
            return AppError(Problem {
                kind: "/problems/invalid-request".into(),
                title: "Invalid request".into(),
                status: 400,
                detail: format!("The server function's arguments cannot be read: {detail}."),
                errors: vec![],
            });
        }
        let detail = match &value {
            ServerFnErrorErr::Request(_) => {
                "The server cannot be reached. Check your connection; we will keep trying.".to_string()
            }
            other => other.to_string(),
        };
        AppError::local("Connection problem", detail)
    }
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! What the server provides to server functions.

    use std::sync::Arc;

    use application::access::Access;
    use application::backtests::Backtests;
    use application::batches::Batches;
    use application::schedules::Schedules;
    use application::webhooks::Dispatcher;
    use application::{Error, RunService, UserId};
    use domain::{ModelInfo, Problem};
    use leptos::prelude::*;

    use super::AppError;

    /// How the HTTP edge answers an error of the application: its problem body and, where a
    /// later try may succeed, the seconds to wait. The server provides its one mapping
    /// (`server::http::problem`), so pages and server functions answer exactly as the REST API.
    pub type Answer = fn(&Error) -> (Problem, Option<u64>);

    /// Provided by the server as context for every request.
    #[derive(Clone)]
    pub struct AppContext {
        pub runs: Arc<RunService>,
        pub backtests: Arc<Backtests>,
        pub batches: Arc<Batches>,
        pub schedules: Arc<Schedules>,
        pub webhooks: Arc<Dispatcher>,
        pub access: Access,
        /// The model catalog with availability, fixed at start-up (keys come from the environment).
        pub models: Arc<Vec<ModelInfo>>,
        /// Symbols the market data can list, for suggestions.
        pub symbols: Arc<Vec<String>>,
        /// The last day of each listed symbol's data: what "as of" means when it is left empty.
        pub data_ends: Arc<Vec<(String, chrono::NaiveDate)>>,
        /// How run pages follow progress.
        pub transport: domain::ProgressTransport,
        pub answer: Answer,
    }

    pub fn internal(detail: &str) -> AppError {
        tracing::error!(error = %detail, "server function failed");
        problem_status(500);
        AppError(Problem {
            kind: "/problems/internal".into(),
            title: "Internal error".into(),
            status: 500,
            detail: "Something went wrong on our side. It has been logged.".into(),
            errors: vec![],
        })
    }

    /// The context and the caller: an internal error if the server was wired wrongly, a 401
    /// when the request carries no identity (no session cookie).
    pub fn context() -> Result<(AppContext, UserId), AppError> {
        let ctx = use_context::<AppContext>().ok_or_else(|| internal("no app context"))?;
        let parts = use_context::<http::request::Parts>().ok_or_else(|| internal("no request parts"))?;
        let user = parts.extensions.get::<UserId>().cloned().ok_or_else(unauthenticated)?;
        Ok((ctx, user))
    }

    /// Answers with a problem's status — and, to a server function's own request (not a page
    /// calling it while rendering), with the problem media type the REST API uses.
    pub fn problem_status(status: u16) {
        let Some(resp) = use_context::<leptos_axum::ResponseOptions>() else { return };
        let Ok(status) = http::StatusCode::from_u16(status) else { return };
        resp.set_status(status);
        let called = use_context::<http::request::Parts>().is_some_and(|p| p.uri.path().starts_with("/api/"));
        if called {
            resp.insert_header(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/problem+json"));
        }
    }

    fn unauthenticated() -> AppError {
        problem_status(401);
        AppError(Problem {
            kind: "/problems/unauthenticated".into(),
            title: "No identity".into(),
            status: 401,
            detail: "This request carries no session. Reload the page to get one.".into(),
            errors: vec![],
        })
    }

    /// Answers an application error as the REST API does: the same problem, status and
    /// `Retry-After`.
    pub fn fail(e: Error) -> AppError {
        // Logged once, here where it is handled, through the same subscriber as the REST API
        // (inside the request's span, so with its request id).
        if let Error::Internal(detail) | Error::Unavailable(detail) = &e {
            tracing::error!(error = %detail, "server function failed");
        }
        let Some(ctx) = use_context::<AppContext>() else { return internal("no app context") };
        let (problem, retry_after) = (ctx.answer)(&e);
        problem_status(problem.status);
        if let (Some(secs), Some(resp)) = (retry_after, use_context::<leptos_axum::ResponseOptions>()) {
            resp.insert_header(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        AppError(problem)
    }

    /// A run id from the address: one that cannot be a run id names no run of the caller's.
    pub fn run_id(raw: &str) -> Result<domain::RunId, AppError> {
        raw.parse().map_err(|_| fail(Error::NotFound))
    }
}

#[server]
pub async fn start_run(request: StartRequest) -> Result<StartResponse, AppError> {
    let (ctx, user) = ssr::context()?;
    let started = ctx.runs.start(&user.0, &request, None).await.map_err(ssr::fail)?;
    Ok(StartResponse { run_id: started.run_id, status: started.status, message: "Analysis queued".into() })
}

#[server]
pub async fn run_progress(run_id: String) -> Result<Progress, AppError> {
    let (ctx, user) = ssr::context()?;
    let (progress, _) = ctx.runs.progress(&user.0, ssr::run_id(&run_id)?).await.map_err(ssr::fail)?;
    Ok(progress)
}

#[server]
pub async fn read_run_log(run_id: String) -> Result<RunLog, AppError> {
    let (ctx, user) = ssr::context()?;
    ctx.runs.log(&user.0, ssr::run_id(&run_id)?).await.map_err(ssr::fail)
}

#[server]
pub async fn run_outcome(run_id: String) -> Result<domain::RunOutcome, AppError> {
    let (ctx, user) = ssr::context()?;
    ctx.runs.outcome(&user.0, ssr::run_id(&run_id)?).await.map_err(ssr::fail)
}

/// Returns the run's state without its result: a cancelled run has none, and the browser's
/// live view never parses results (the server renders them).
#[server]
pub async fn cancel_run(run_id: String) -> Result<RunState, AppError> {
    let (ctx, user) = ssr::context()?;
    Ok(ctx.runs.cancel(&user.0, ssr::run_id(&run_id)?).await.map_err(ssr::fail)?.run)
}

#[server]
pub async fn retry_run(run_id: String) -> Result<StartResponse, AppError> {
    let (ctx, user) = ssr::context()?;
    let started = ctx.runs.retry(&user.0, ssr::run_id(&run_id)?).await.map_err(ssr::fail)?;
    Ok(StartResponse { run_id: started.run_id, status: started.status, message: "Retry queued".into() })
}

/// A page of the caller's history: `filters` are the `/runs` page's query parameters, read as
/// `GET /api/trading/runs` reads them (a bad one is a `400` naming it).
#[server]
pub async fn list_runs(filters: std::collections::BTreeMap<String, String>) -> Result<RunsPage, AppError> {
    let (ctx, user) = ssr::context()?;
    let query = domain::RunsQuery::parse(filters.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|errors| ssr::fail(application::Error::Invalid(errors)))?;
    ctx.runs.list(&user.0, &query).await.map_err(ssr::fail)
}

/// What the new-analysis form offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFormOptions {
    /// The model catalog, unavailable models included (shown disabled, with the reason).
    pub models: Vec<ModelInfo>,
    pub analysts: Vec<AnalystInfo>,
    /// Symbols the market data can list, for suggestions.
    pub symbols: Vec<String>,
    /// The last day of each listed symbol's data.
    pub data_ends: Vec<(String, chrono::NaiveDate)>,
}

#[server]
pub async fn form_options() -> Result<RunFormOptions, AppError> {
    let (ctx, _) = ssr::context()?;
    Ok(RunFormOptions {
        models: ctx.models.as_ref().clone(),
        analysts: AnalystInfo::all(),
        symbols: ctx.symbols.as_ref().clone(),
        data_ends: ctx.data_ends.as_ref().clone(),
    })
}

/// What one poll of the REST progress endpoint returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// A new state, its ETag, and the server's `Retry-After` hint in seconds.
    Changed(Box<RunState>, Option<String>, Option<u32>),
    /// 304: nothing moved since the ETag we sent.
    Unchanged(Option<u32>),
}

/// `GET /api/trading/progress/:runId`, with `If-None-Match` when we have an ETag.
#[cfg(feature = "hydrate")]
pub async fn fetch_progress(run_id: &str, etag: Option<&str>) -> Result<Poll, AppError> {
    use gloo_net::http::Request;
    // `no-store`: the browser's own cache would revalidate behind our back and hand us a 200;
    // we keep the ETag ourselves, so an unchanged run is a 304 we can see (and skip parsing).
    let mut req = Request::get(&format!("/api/trading/progress/{run_id}"))
        .cache(web_sys::RequestCache::NoStore)
        .header("accept", "application/json");
    if let Some(tag) = etag {
        req = req.header("if-none-match", tag);
    }
    let resp = req.send().await.map_err(|_| AppError::local("Connection problem", "The server cannot be reached."))?;
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.trim().parse::<u32>().ok());
    match resp.status() {
        304 => Ok(Poll::Unchanged(retry_after)),
        200 => {
            let tag = resp.headers().get("etag");
            // The body also carries the result once there is one; it is not read here.
            let body: RunState = resp
                .json()
                .await
                .map_err(|e| AppError::local("Unexpected answer", format!("The progress could not be read: {e}")))?;
            Ok(Poll::Changed(Box::new(body), tag, retry_after))
        }
        status => {
            let problem = resp.json::<Problem>().await.unwrap_or_else(|_| Problem {
                kind: "/problems/http".into(),
                title: "Server error".into(),
                status,
                detail: format!("The server answered {status}."),
                errors: vec![],
            });
            Err(AppError(problem))
        }
    }
}

/// `GET /api/trading/runs/:runId/log`.
#[cfg(feature = "hydrate")]
pub async fn fetch_log(run_id: &str) -> Result<RunLog, AppError> {
    use gloo_net::http::Request;
    let resp = Request::get(&format!("/api/trading/runs/{run_id}/log"))
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|_| AppError::local("Connection problem", "The server cannot be reached."))?;
    if !resp.ok() {
        return Err(AppError::local("Unexpected answer", format!("The log could not be read ({}).", resp.status())));
    }
    resp.json().await.map_err(|e| AppError::local("Unexpected answer", format!("The log could not be read: {e}")))
}
