//! The operators' stats: `GET /api/trading/stats` (JSON) and `GET /stats` (a page with
//! server-drawn SVG charts, no script), from the database ([`application::stats`]) and this process's
//! own measurements (active pollers, store operation times).
//!
//! Readable from this machine (a loopback peer whose request was not forwarded by a proxy) or
//! with `Authorization: Bearer <ADMIN_TOKEN>`; anyone else gets a problem.

use std::fmt::Write;
use std::net::SocketAddr;

use application::stats::{HourBucket, Stats};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::html::esc;
use super::problem::ApiError;
use super::telemetry::{POLLER_WINDOW, statement_times};
use super::tokens::{OperatorToken, bearer};

/// The stats and what only this process knows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsBody {
    #[serde(flatten)]
    pub stats: Stats,
    /// Distinct runs whose progress this process served in the last 10 s.
    pub active_pollers: usize,
    /// Store operations timed by this process since it started, slowest on average first.
    pub database: Vec<StatementTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementTime {
    pub statement: String,
    pub count: u64,
    pub average_ms: f64,
}

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

/// `GET /stats`
pub async fn page(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    check(&req, &state.admin_token)?;
    let body = body(&state).await?;
    let mut resp = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        render(&body, &state.leptos.output_name),
    )
        .into_response();
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}

fn ms(v: Option<u64>) -> String {
    match v {
        Some(ms) if ms >= 1000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{ms} ms"),
        None => "—".into(),
    }
}

fn render(b: &StatsBody, output_name: &str) -> String {
    let s = &b.stats;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Stats · Trading Agents</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/pkg/{}.css\"></head><body><main class=\"stats\">\
         <h1>Stats</h1><p class=\"muted\">As of {} UTC.</p>",
        esc(output_name),
        s.generated_at.format("%Y-%m-%d %H:%M:%S")
    );
    let rate = |r: Option<f64>| r.map(|r| format!("{:.1} %", r * 100.0)).unwrap_or_else(|| "—".into());
    let db = b
        .database
        .iter()
        .take(3)
        .map(|d| format!("{} {:.1} ms", esc(&d.statement), d.average_ms))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(
        out,
        "<section><h2>Figures</h2><table class=\"figures\"><thead><tr><th scope=\"col\"></th>\
         <th scope=\"col\">Last hour</th><th scope=\"col\">Last day</th></tr></thead><tbody>\
         <tr><th scope=\"row\">Average job duration</th><td>{}</td><td>{}</td></tr>\
         <tr><th scope=\"row\">Jobs per hour</th><td>{:.1}</td><td>{:.1}</td></tr>\
         <tr><th scope=\"row\">Failure rate</th><td>{}</td><td>{}</td></tr>\
         <tr><th scope=\"row\">Active polling connections</th><td colspan=\"2\">{} (this process, last 10 s)</td></tr>\
         <tr><th scope=\"row\">Database query performance</th><td colspan=\"2\">{} (slowest on average, this process)</td></tr>\
         </tbody></table></section>",
        ms(s.last_hour.average_duration_ms),
        ms(s.last_day.average_duration_ms),
        s.last_hour.jobs_per_hour,
        s.last_day.jobs_per_hour,
        rate(s.last_hour.failure_rate),
        rate(s.last_day.failure_rate),
        b.active_pollers,
        if db.is_empty() { "—".into() } else { db },
    );
    let _ = write!(
        out,
        "<section><h2>Queue</h2><p>{} waiting, {} running.</p></section>\
         <section><h2>Runs per hour</h2>{}</section><section><h2>Duration percentiles</h2>{}</section>",
        s.queue.pending,
        s.queue.running,
        runs_chart(&s.per_hour),
        percentile_chart(&s.per_hour)
    );
    out.push_str("<section><h2>Slowest steps</h2><table><thead><tr><th scope=\"col\">Step</th><th scope=\"col\">Runs</th><th scope=\"col\">Average</th><th scope=\"col\">Longest</th></tr></thead><tbody>");
    for st in &s.slowest_steps {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&st.step),
            st.count,
            ms(Some(st.average_ms)),
            ms(Some(st.max_ms))
        );
    }
    out.push_str("</tbody></table></section><section><h2>Recent failures</h2><table><thead><tr><th scope=\"col\">Run</th><th scope=\"col\">Status</th><th scope=\"col\">Symbol</th><th scope=\"col\">Model</th><th scope=\"col\">Error</th></tr></thead><tbody>");
    for f in &s.recent_failures {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f.run_id,
            f.status.as_str(),
            esc(&f.symbol),
            esc(&f.model_id),
            esc(f.error.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody></table></section></main></body></html>");
    out
}

const W: f64 = 640.0;
const H: f64 = 180.0;
const PAD: f64 = 24.0;

/// Bars of finished runs per hour, the failed part in its own colour.
fn runs_chart(hours: &[HourBucket]) -> String {
    let max = hours.iter().map(|h| h.finished).max().unwrap_or(0).max(1) as f64;
    let slot = (W - 2.0 * PAD) / hours.len().max(1) as f64;
    let total: u64 = hours.iter().map(|h| h.finished).sum();
    let mut svg = format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"Runs finished per hour over the last day: {total} in all, at most {max} in an hour.\">"
    );
    for (i, h) in hours.iter().enumerate() {
        let x = PAD + slot * i as f64;
        let height = (H - 2.0 * PAD) * h.finished as f64 / max;
        let failed = (H - 2.0 * PAD) * h.failed as f64 / max;
        let _ = write!(
            svg,
            "<rect class=\"bar-ok\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\"><title>{}: {} finished, {} failed</title></rect>",
            H - PAD - height,
            slot * 0.8,
            h.start.format("%H:00"),
            h.finished,
            h.failed
        );
        if h.failed > 0 {
            let _ = write!(
                svg,
                "<rect class=\"bar-bad\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{failed:.1}\"/>",
                H - PAD - failed,
                slot * 0.8
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{PAD}\" y=\"{:.1}\" class=\"axis\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text></svg></figure>",
        H - 6.0,
        hours.first().map(|h| h.start.format("%H:00").to_string()).unwrap_or_default(),
        W - PAD,
        H - 6.0,
        hours.last().map(|h| h.start.format("%H:00").to_string()).unwrap_or_default()
    );
    svg
}

/// p50, p90 and p99 of completed runs' durations per hour, as lines (gaps where none).
fn percentile_chart(hours: &[HourBucket]) -> String {
    let max = hours.iter().filter_map(|h| h.p99_ms).max().unwrap_or(0).max(1) as f64;
    let n = hours.len().max(2) as f64;
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / (n - 1.0);
    let y = |v: u64| H - PAD - (H - 2.0 * PAD) * v as f64 / max;
    let mut svg = format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"Run duration percentiles per hour (p50, p90, p99); the highest p99 is {}.\">",
        ms(Some(max as u64))
    );
    for (class, pick) in [
        ("p50", (|h: &HourBucket| h.p50_ms) as fn(&HourBucket) -> Option<u64>),
        ("p90", |h: &HourBucket| h.p90_ms),
        ("p99", |h: &HourBucket| h.p99_ms),
    ] {
        let points: Vec<String> =
            hours.iter().enumerate().filter_map(|(i, h)| pick(h).map(|v| format!("{:.1},{:.1}", x(i), y(v)))).collect();
        if !points.is_empty() {
            let _ = write!(svg, "<polyline class=\"{class}\" fill=\"none\" points=\"{}\"/>", points.join(" "));
            for p in &points {
                let (px, py) = p.split_once(',').expect("x,y");
                let _ = write!(svg, "<circle class=\"{class}\" cx=\"{px}\" cy=\"{py}\" r=\"2.5\"/>");
            }
        }
    }
    svg.push_str("</svg><figcaption>p50, p90 and p99 of completed runs, per hour.</figcaption></figure>");
    svg
}
