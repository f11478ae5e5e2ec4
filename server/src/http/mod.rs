//! The HTTP side: the REST API, the Leptos pages and server functions, health and metrics,
//! behind the session layer.

use std::sync::Arc;

use app::api::ssr::AppContext;
use app::{App, shell};
use application::RunService;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{any, get, post};
use leptos::config::LeptosOptions;
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{LeptosRoutes, generate_route_list_with_exclusions};
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub mod backtest_forms;
pub mod backtests;
pub mod batches;
pub mod connections;
pub mod extract;
pub mod guard;
pub mod headers;
pub mod health;
pub mod limits;
pub mod live;
pub mod openapi;
pub mod pages;
pub mod problem;
pub mod proxy;
pub mod reply;
pub mod responses;
pub mod runs;
pub mod schedules;
pub mod session;
pub mod shares;
pub mod stats;
pub mod telemetry;
pub mod tokens;

/// Request bodies are small JSON documents; anything bigger is a mistake or an attack.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler and layer reads. Cloned for every request that reaches a handler
/// (axum hands each its own copy), so it is one reference count: [`Shared`] holds the fields.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    pub service: Arc<RunService>,
    pub backtests: Arc<application::backtests::Backtests>,
    pub context: AppContext,
    pub leptos: LeptosOptions,
    pub sessions: session::Sessions,
    /// Renders `/metrics`.
    pub recorder: metrics_exporter_prometheus::PrometheusHandle,
    /// The bearer token `/metrics` asks for (`METRICS_TOKEN`), if any.
    pub metrics_token: tokens::OperatorToken,
    /// Who may read the stats from elsewhere than this machine.
    pub admin_token: tokens::OperatorToken,
    /// Runs polled lately, for the active-pollers gauge.
    pub pollers: Arc<telemetry::Pollers>,
    /// Workers this process runs (for metrics).
    pub workers: usize,
    /// How run pages follow progress (`PROGRESS_TRANSPORT`).
    pub transport: domain::ProgressTransport,
    /// Origins allowed to send unsafe requests besides the server's own.
    pub origins: guard::Origins,
    /// Security headers.
    pub policy: headers::Policy,
    /// Open live streams, bounded per identity and per process.
    pub streams: Arc<live::StreamSlots>,
    /// Reverse proxies whose forwarding headers are believed.
    pub proxies: proxy::TrustedProxies,
    /// How fast runs may be started, per address and per identity.
    pub limits: limits::RunLimits,
    /// Personal API tokens.
    pub access: application::access::Access,
    /// The header a trusted single sign-on proxy names the user in.
    pub auth_proxy: proxy::AuthProxy,
    /// Fires when the process stops: held requests (`Prefer: wait`) answer at once.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// What every page render gets: the app context, and a `Content-Security-Policy` allowing
/// only this site's scripts and the inline ones Leptos writes with this response's nonce
/// (hydration, serialized resources), plus compiling the WASM.
pub fn page_context(state: &AppState) -> impl Fn() + Clone + Send + Sync + 'static {
    let context = state.context.clone();
    move || {
        provide_context(context.clone());
        if let (Some(nonce), Some(resp)) = (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>())
            && let Ok(csp) = HeaderValue::from_str(&content_security_policy(&nonce))
        {
            resp.insert_header(header::CONTENT_SECURITY_POLICY, csp);
        }
    }
}

/// `'self'` rather than `'strict-dynamic'`: Leptos preloads its module with a `<link>` that
/// carries no nonce, which `'strict-dynamic'` would refuse.
pub fn content_security_policy(nonce: &str) -> String {
    format!("script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; object-src 'none'; base-uri 'self'")
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/trading/run", post(runs::start))
        .route("/api/trading/progress/{run_id}", get(runs::progress))
        .route("/api/trading/events/{run_id}", get(live::events))
        .route("/api/trading/cancel/{run_id}", post(runs::cancel))
        .route("/api/trading/retry/{run_id}", post(runs::retry))
        .route("/api/trading/runs", get(runs::list))
        .route("/api/trading/runs/{run_id}/tags", axum::routing::put(runs::set_tags))
        .route("/api/trading/runs/{run_id}/shares", post(shares::create).get(shares::list))
        .route("/api/trading/shares/{id}", axum::routing::delete(shares::revoke))
        .route("/api/trading/share/{secret}", get(shares::progress))
        .route("/api/trading/runs/{run_id}/transcript", get(runs::transcript))
        .route("/api/trading/share/{secret}/transcript", get(shares::transcript))
        .route("/api/trading/runs/{run_id}/log", get(runs::log))
        .route("/api/trading/runs/{run_id}/deliveries", get(runs::deliveries))
        .route("/api/trading/runs/{run_id}/rerun", post(runs::rerun))
        .route("/api/trading/runs/{run_id}/outcome", get(runs::outcome))
        .route("/api/trading/compare", get(runs::compare))
        .route("/runs/{run_id}/rerun", post(pages::rerun))
        .route("/api/trading/share/{secret}/log", get(shares::log))
        .route("/api/trading/models", get(runs::models))
        .route("/api/trading/analysts", get(runs::analysts))
        .route("/api/trading/symbols", get(runs::symbols))
        .route("/api/trading/stats", get(stats::json))
        .route("/stats", get(stats::page))
        .route("/api/trading/backtests", post(backtests::start).get(backtests::list))
        .route("/api/trading/backtests/{backtest_id}", get(backtests::view))
        .route("/api/trading/backtests/{backtest_id}/cancel", post(backtests::cancel))
        .route("/api/trading/batches", post(batches::start).get(batches::list))
        .route("/api/trading/batches/{batch_id}", get(batches::view))
        .route("/api/trading/batches/{batch_id}/cancel", post(batches::cancel))
        .route("/api/schedules", post(schedules::create).get(schedules::list))
        .route("/api/schedules/{schedule_id}", get(schedules::get).patch(schedules::update).delete(schedules::delete))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/{*rest}", any(problem::not_found))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(telemetry::metrics))
        .method_not_allowed_fallback(problem::method_not_allowed);
    // The pages' forms posted without WASM (the GET routes of the same paths are the pages),
    // and the download a page links to.
    let forms = Router::new()
        .route("/", post(pages::start))
        .route("/runs/{run_id}/report.md", get(pages::report_md))
        .route("/runs/{run_id}/cancel", post(pages::cancel))
        .route("/runs/{run_id}/retry", post(pages::retry))
        .route("/runs/{run_id}/tags", post(pages::tags))
        .route("/runs.csv", get(runs::history_csv))
        .route("/compare.csv", get(runs::compare_csv))
        .route("/runs/{run_id}/share", post(shares::create_form))
        .route("/runs/{run_id}/shares/{id}/revoke", post(shares::revoke_form))
        .route("/settings/tokens", post(tokens::create))
        .route("/settings/tokens/{id}/revoke", post(tokens::revoke))
        .route("/backtests", post(backtest_forms::start))
        .route("/backtests/{backtest_id}/cancel", post(backtest_forms::cancel))
        .route("/backtests/{backtest_id}/cells.csv", get(backtests::cells_csv))
        .route("/batches/{batch_id}/cancel", post(batches::cancel_form))
        .route("/batches/{batch_id}/runs.csv", get(batches::runs_csv))
        .route("/schedules", post(schedules::create_form))
        .route("/schedules/{schedule_id}", post(schedules::change_form))
        .route("/schedules/{schedule_id}/{what}", post(schedules::change_form));

    // Every page is a route of the app. `/stats` is rendered by its own handler, after its
    // check of who asks.
    let routes = generate_route_list_with_exclusions(App, Some(vec!["/stats".into()]));
    let options = state.leptos.clone();
    Router::new()
        .merge(api)
        .merge(forms)
        .leptos_routes_with_context(&state, routes, page_context(&state), move || shell(options.clone()))
        // A file of the site, or else the app's not-found page, with the pages' headers.
        .fallback(file_or_not_found)
        // Inside the session layer, which names the identity counted.
        .layer(axum::middleware::from_fn_with_state(state.limits.clone(), limits::layer))
        .layer(axum::middleware::from_fn_with_state(state.sessions.clone(), session::layer))
        // A trusted proxy's user, and outside it a bearer token's identity, which the layers
        // inside then leave alone.
        .layer(axum::middleware::from_fn_with_state(state.auth_proxy.clone(), proxy::identity_layer))
        .layer(axum::middleware::from_fn_with_state(state.access.clone(), tokens::layer))
        // Before the session layer: a refused cross-site request gets no cookie either.
        .layer(axum::middleware::from_fn_with_state(state.origins.clone(), guard::layer))
        .layer(axum::middleware::from_fn_with_state(state.policy, headers::layer))
        // Outside everything that asks who the client is.
        .layer(axum::middleware::from_fn_with_state(state.proxies.clone(), proxy::layer))
        .layer(axum::middleware::from_fn_with_state(extract::ServerFnPaths::registered(), extract::server_fn_body))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Pages, JSON and (unless cargo-leptos precompressed them) the site's files, gzipped
        // for clients that ask; already-encoded responses pass through untouched.
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn(telemetry::track))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // Outermost: every line logged for a request carries its id, and so does the answer.
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::from_fn(plain_request_id))
        .with_state(state)
}

/// The longest path segment that can name a file (a file name is at most 255 bytes).
pub const MAX_SEGMENT: usize = 255;

/// A file of the site (`/pkg/…`, `/favicon.ico`), or else the app's not-found page. A path
/// with a segment longer than [`MAX_SEGMENT`] names no file: it is not looked up at all (the
/// file system would refuse the name, and the file server answer that refusal with a 500 and
/// an error in the log), only answered with the not-found page.
async fn file_or_not_found(uri: axum::http::Uri, state: axum::extract::State<AppState>, req: Request) -> Response {
    let page = leptos_axum::file_and_error_handler_with_context::<AppState, _>(page_context(&state), shell);
    let looked_up = match uri.path().split('/').any(|segment| segment.len() > MAX_SEGMENT) {
        // A name no file of the site has, that the file server looks up quietly.
        true => axum::http::Uri::from_static("/.no-such-file"),
        false => uri,
    };
    page(looked_up, state, req).await
}

/// What a client sent (a path, a method), as logged: at most 200 bytes of it, cut at a
/// character boundary and marked `…`, so a client cannot write lines of any length into the log.
fn cut_for_log(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.into();
    }
    let cut = (0..=MAX).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}…", &text[..cut]).into()
}

/// The longest `X-Request-Id` a client may choose.
pub const MAX_REQUEST_ID: usize = 64;

/// A client's `X-Request-Id` is kept — logged with every line of its request and sent back —
/// only when it is short and plain (letters, digits, `-`, `_`, `.`, `:`); any other is
/// dropped, and the request gets a new UUID as if it had sent none. So no client can make the
/// server echo or log what it likes.
async fn plain_request_id(mut req: Request, next: axum::middleware::Next) -> Response {
    let plain = |v: &HeaderValue| {
        (1..=MAX_REQUEST_ID).contains(&v.len())
            && v.as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    if !req.headers().get_all("x-request-id").iter().all(plain) {
        req.headers_mut().remove("x-request-id");
    }
    next.run(req).await
}

/// Request headers from name–value pairs, for unit tests.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&'static str, &'static str)]) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

/// The span of one request: its id (the client's `X-Request-Id`, or a new UUID), method and
/// path (cut short when long) — never the query string or headers, which may carry tokens.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let method = cut_for_log(req.method().as_str());
    tracing::info_span!("request", requestId = %id, method = %method, path = %cut_for_log(req.uri().path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_logged_cut_short() {
        assert_eq!(cut_for_log("/runs/abc"), "/runs/abc");
        let long = format!("/{}", "a".repeat(300));
        assert_eq!(cut_for_log(&long), format!("/{}…", "a".repeat(199)));
        // Never inside a character.
        let wide = "é".repeat(150);
        let cut = cut_for_log(&wide);
        assert!(cut.len() <= 200 + "…".len() && cut.ends_with('…'), "{cut}");
    }
}
