//! Serving connections: HTTP/1.1, with a deadline on every request head.
//!
//! `axum::serve` waits for a request's head as long as the client likes, so a client that
//! opens connections and sends half a header (or nothing, or a byte now and then) holds
//! them, and their buffers, for ever. Here each connection is served by hyper with a timer:
//! from the moment the server waits for a request head — a new connection, or one kept
//! alive between requests — the whole head must arrive within [`Config::header_read_timeout`],
//! or the connection is closed. A request's body and a response being streamed (a live
//! progress stream) are not bounded by it.
//!
//! HTTP/1.1 only: browsers speak HTTP/2 over TLS alone, which the reverse proxy in front of
//! a public server terminates (see the README's public deployment); the proxy speaks
//! HTTP/1.1 to this server.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

/// How long a client may take to send a request head (`HEADER_READ_TIMEOUT_SECS`).
pub const HEADER_READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// From waiting for a request head to having all of it; past it the connection is closed.
    /// Also how long a kept-alive connection may stay idle.
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in flight
/// finish (as `axum::serve(…).with_graceful_shutdown` does). Each request carries the peer's
/// address as [`ConnectInfo`].
pub async fn serve(
    mut listener: tokio::net::TcpListener,
    router: Router,
    config: Config,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(config.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // `Listener::accept` retries on its own when accepting fails (too many open files…).
        let (stream, peer) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = tower::service_fn(move |mut req: axum::http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away, sends garbage or times out is not the server's error.
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    graceful.shutdown().await;
}
