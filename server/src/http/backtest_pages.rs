//! The backtest pages, rendered on the server as whole documents with no script at all: the
//! form (`GET /backtests`, posted natively to `POST /backtests`), a backtest's page
//! (`GET /backtests/:id`: the grid of cells filling in, refreshed every 2 s by a
//! `<meta http-equiv="refresh">` while it runs, the scorecard, the equity curves as SVG),
//! its cells as CSV (`…/cells.csv`) and its Cancel form (`POST …/cancel`). They call the same
//! [`application::backtests::Backtests`] as the REST API.

use std::collections::BTreeSet;
use std::fmt::Write;

use application::Error;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::backtest::{
    BacktestRequest, BacktestStatus, BacktestSummary, BacktestView, CostEstimate, EquityCurves, Metrics,
};
use domain::{FieldError, Rating};

use super::AppState;
use super::backtests::backtest_id;
use super::html::{esc, html, page};
use super::problem::ApiError;
use super::session::Identity;

fn pct(x: f64) -> String {
    format!("{:+.2} %", x * 100.0)
}

fn opt_pct(x: Option<f64>) -> String {
    x.map(pct).unwrap_or_else(|| "—".into())
}

/// `303 See Other` to `path`, so a reload never posts twice.
fn see_other(path: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut().insert(header::LOCATION, HeaderValue::from_str(path).expect("a path"));
    resp
}

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

/// The form, filled with what was sent and each field's error; with `estimate`, the expected
/// cost of a hosted model and the box confirming it.
fn form(state: &AppState, sent: &BacktestRequest, errors: &[FieldError], estimate: Option<&CostEstimate>) -> String {
    let error_of = |field: &str| -> String {
        errors
            .iter()
            .filter(|e| e.field == field)
            .map(|e| format!(r#"<p class="field-error" id="{field}-error">{}</p>"#, esc(&e.message)))
            .collect()
    };
    let text = |name: &str, label: &str, kind: &str, value: &str, hint: &str| {
        format!(
            r#"<div class="field"><label for="bt-{name}">{label}</label><input id="bt-{name}" name="{name}" type="{kind}" value="{}" {}><span class="muted">{hint}</span>{}</div>"#,
            esc(value),
            if errors.iter().any(|e| e.field == name) { r#"aria-invalid="true""# } else { "" },
            error_of(name)
        )
    };
    let symbols = if sent.symbols.is_empty() { "AAPL, NVDA".to_string() } else { sent.symbols.join(", ") };
    let horizons = sent
        .horizons
        .as_ref()
        .map_or("5, 20".to_string(), |h| h.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
    let mut models = String::new();
    for m in state.context.models.iter() {
        let selected = sent.model_id.as_deref() == Some(m.id.as_str()) || (sent.model_id.is_none() && m.default);
        let _ = write!(
            models,
            r#"<option value="{}"{}{}>{}</option>"#,
            esc(&m.id),
            if selected { " selected" } else { "" },
            if m.available { "" } else { " disabled" },
            esc(&m.label)
        );
    }
    let select = |name: &str, options: &[(&str, &str)], chosen: Option<&str>| {
        let mut out = String::new();
        for (value, label) in options {
            let selected = chosen == Some(*value);
            let _ =
                write!(out, r#"<option value="{value}"{}>{label}</option>"#, if selected { " selected" } else { "" });
        }
        format!(r#"<select id="bt-{name}" name="{name}">{out}</select>{}"#, error_of(name))
    };
    let general: Vec<&FieldError> = errors
        .iter()
        .filter(|e| {
            !["symbols", "from", "to", "everyDays", "horizons", "modelId", "depth", "bearish"]
                .contains(&e.field.as_str())
        })
        .collect();
    let mut out = String::from(
        r#"<section class="card"><h1>New backtest</h1><p class="muted">One analysis per symbol and as-of date; each rating is then scored against what the prices did next.</p>"#,
    );
    if !errors.is_empty() {
        out.push_str(r#"<div class="error-panel" role="alert"><p>Please correct the fields below.</p>"#);
        for e in general {
            let _ = write!(out, "<p>{}: {}</p>", esc(&e.field), esc(&e.message));
        }
        out.push_str("</div>");
    }
    out.push_str(r#"<form method="post" action="/backtests" class="backtest-form">"#);
    out.push_str(&text("symbols", "Symbols", "text", &symbols, "comma-separated, e.g. AAPL, NVDA"));
    out.push_str(&text("from", "From", "date", sent.from.as_deref().unwrap_or("2019-01-01"), ""));
    out.push_str(&text("to", "To", "date", sent.to.as_deref().unwrap_or("2019-06-28"), ""));
    out.push_str(&text(
        "everyDays",
        "Step (trading days)",
        "number",
        &sent.every_days.unwrap_or(application::backtests::EVERY_DAYS_DEFAULT).to_string(),
        "between two as-of dates",
    ));
    out.push_str(&text(
        "horizons",
        "Horizons (trading days)",
        "text",
        &horizons,
        "forward returns are read this many trading days on",
    ));
    let _ = write!(
        out,
        r#"<div class="field"><label for="bt-model">Model</label><select id="bt-model" name="model">{models}</select>{}</div>"#,
        error_of("modelId")
    );
    let _ = write!(
        out,
        r#"<div class="field"><label for="bt-depth">Research depth</label>{}</div>"#,
        select(
            "depth",
            &[("quick", "Quick"), ("standard", "Standard"), ("deep", "Deep")],
            sent.depth.as_deref().or(Some("quick"))
        )
    );
    let _ = write!(
        out,
        r#"<div class="field"><label for="bt-bearish">On Underweight and Sell</label>{}</div>"#,
        select(
            "bearish",
            &[("flat", "Stay out (flat)"), ("short", "Go short")],
            sent.bearish.as_deref().or(Some("flat"))
        )
    );
    if let Some(e) = estimate {
        let _ = write!(
            out,
            r#"<div class="cost-estimate" role="alert"><p>{} cells with {} are expected to cost about <strong id="expected-cost">${:.4}</strong>: {} model calls and about {} tokens a run, ${:.4} a run at the catalog's prices.</p><label><input type="checkbox" name="confirmCost" value="on"> I accept this cost</label></div>"#,
            e.cells,
            esc(&e.model_id),
            e.expected_cost_usd,
            e.calls_per_run,
            e.tokens_per_run,
            e.per_run_usd
        );
    }
    out.push_str(r#"<button type="submit" class="primary">Run backtest</button></form></section>"#);
    out
}

fn list(backtests: &[BacktestSummary]) -> String {
    if backtests.is_empty() {
        return r#"<section class="card"><h2>Your backtests</h2><p class="muted">None yet.</p></section>"#.into();
    }
    let mut out = String::from(r#"<section class="card"><h2>Your backtests</h2><ul class="backtest-list">"#);
    for b in backtests {
        let _ = write!(
            out,
            r#"<li><a href="/backtests/{}">{} · {} to {} every {} days</a> <span class="muted">{} cells{}</span></li>"#,
            b.backtest_id,
            esc(&b.spec.symbols.join(", ")),
            b.spec.from,
            b.spec.to,
            b.spec.every_days,
            b.cells,
            if b.cancelled { ", cancelled" } else { "" }
        );
    }
    out.push_str("</ul></section>");
    out
}

fn invalid(errors: Vec<FieldError>) -> Error {
    Error::Invalid(errors)
}

/// `GET /backtests`
pub async fn index(State(state): State<AppState>, Identity(user): Identity) -> Result<Response, ApiError> {
    let mine = state.backtests.list(&user.0).await?;
    let body = format!("{}{}", form(&state, &BacktestRequest::default(), &[], None), list(&mine));
    Ok(html(StatusCode::OK, page("Backtests", Some("/backtests"), false, &body)))
}

/// `POST /backtests` — `303` to the new backtest's page, or the form again with its errors.
pub async fn start(State(state): State<AppState>, Identity(user): Identity, body: Bytes) -> Result<Response, ApiError> {
    let (request, mut errors) = request_from_form(&body);
    let result =
        if errors.is_empty() { state.backtests.start(&user.0, &request).await } else { Err(invalid(Vec::new())) };
    match result {
        Ok(started) => Ok(see_other(&format!("/backtests/{}", started.backtest_id))),
        Err(Error::CostNotConfirmed(estimate)) => {
            let mine = state.backtests.list(&user.0).await?;
            let body = format!("{}{}", form(&state, &request, &[], Some(&estimate)), list(&mine));
            Ok(html(StatusCode::CONFLICT, page("Backtests", Some("/backtests"), false, &body)))
        }
        Err(Error::Invalid(more)) => {
            errors.extend(more);
            let mine = state.backtests.list(&user.0).await?;
            let body = format!("{}{}", form(&state, &request, &errors, None), list(&mine));
            Ok(html(StatusCode::BAD_REQUEST, page("Backtests", Some("/backtests"), false, &body)))
        }
        Err(e) => Err(e.into()),
    }
}

fn rating_class(r: Rating) -> String {
    format!("rating-{}", r.as_str().to_ascii_lowercase())
}

fn metrics_row(name: &str, m: &Metrics) -> String {
    format!(
        "<tr><th scope=\"row\">{name}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        pct(m.cumulative_return),
        pct(m.annualized_return),
        m.sharpe.map_or("—".into(), |s| format!("{s:.2}")),
        pct(-m.max_drawdown)
    )
}

/// The four equity curves as one SVG line chart.
pub fn equity_svg(curves: &EquityCurves) -> String {
    let series = [
        ("Ratings strategy", &curves.strategy, "var(--accent)"),
        ("Buy & Hold", &curves.buy_and_hold, "var(--muted)"),
        ("SMA crossover", &curves.sma_crossover, "var(--hold)"),
        ("MACD", &curves.macd, "var(--overweight)"),
    ];
    let n = curves.dates.len();
    if n < 2 {
        return String::new();
    }
    let values = series.iter().flat_map(|(_, v, _)| v.iter().copied());
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi - lo < 1e-9 { (lo - 0.01, hi + 0.01) } else { (lo, hi) };
    let (w, h, pad) = (640.0, 260.0, 36.0);
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / (n - 1) as f64;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v - lo) / (hi - lo);
    let mut out = format!(
        r#"<svg class="equity-chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="equity-title"><title id="equity-title">Equity of the ratings strategy against Buy &amp; Hold, SMA crossover and MACD, from {} to {}</title>"#,
        curves.dates[0],
        curves.dates[n - 1]
    );
    let _ = write!(
        out,
        r#"<line x1="{pad}" x2="{}" y1="{y1:.1}" y2="{y1:.1}" stroke="currentColor" stroke-opacity="0.3" stroke-dasharray="4 4"/>"#,
        w - pad,
        y1 = y(1.0).clamp(pad, h - pad)
    );
    let _ = write!(out, r#"<text x="4" y="{:.1}" font-size="11" fill="currentColor">{:.2}</text>"#, y(hi) + 4.0, hi);
    let _ = write!(out, r#"<text x="4" y="{:.1}" font-size="11" fill="currentColor">{:.2}</text>"#, y(lo), lo);
    let _ =
        write!(out, r#"<text x="{pad}" y="{}" font-size="11" fill="currentColor">{}</text>"#, h - 8.0, curves.dates[0]);
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" font-size="11" fill="currentColor" text-anchor="end">{}</text>"#,
        w - pad,
        h - 8.0,
        curves.dates[n - 1]
    );
    for (i, (name, values, color)) in series.iter().enumerate() {
        let points: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
        let _ = write!(
            out,
            r#"<polyline class="curve" data-series="{name}" fill="none" stroke="{color}" stroke-width="{}" points="{}"/>"#,
            if i == 0 { 2.5 } else { 1.5 },
            points.join(" ")
        );
        let _ = write!(
            out,
            r#"<text x="{}" y="16" font-size="11" fill="{color}">{}</text>"#,
            pad + i as f64 * 140.0,
            esc(name)
        );
    }
    out.push_str("</svg>");
    out
}

fn view_page(view: &BacktestView) -> String {
    let spec = &view.spec;
    let running = view.status == BacktestStatus::Running;
    let mut out = format!(
        r#"<section class="card"><h1>Backtest: {}</h1><p class="muted">{} to {}, every {} trading days; horizons {} trading days; model {}.</p><p class="backtest-status" data-status="{}">{} · {} % of {} cells</p>"#,
        esc(&spec.symbols.join(", ")),
        spec.from,
        spec.to,
        spec.every_days,
        spec.horizons.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
        esc(&spec.model_id),
        match view.status {
            BacktestStatus::Running => "running",
            BacktestStatus::Completed => "completed",
            BacktestStatus::Cancelled => "cancelled",
        },
        match view.status {
            BacktestStatus::Running => "Running",
            BacktestStatus::Completed => "Completed",
            BacktestStatus::Cancelled => "Cancelled",
        },
        view.progress,
        view.cells.len()
    );
    let _ = write!(
        out,
        r#"<p><progress max="100" value="{}">{} %</progress></p><p><a href="/backtests/{}/cells.csv" download>Download the cells (CSV)</a></p>"#,
        view.progress, view.progress, view.backtest_id
    );
    if running {
        let _ = write!(
            out,
            r#"<form method="post" action="/backtests/{}/cancel"><button type="submit">Cancel backtest</button></form>"#,
            view.backtest_id
        );
    }
    out.push_str("</section>");

    // The grid: one row per symbol, one column per as-of date.
    let dates: BTreeSet<_> = view.cells.iter().map(|c| c.as_of).collect();
    out.push_str(r#"<section class="card"><h2>Cells</h2><div class="table-scroll"><table class="backtest-grid"><thead><tr><th scope="col">Symbol</th>"#);
    for d in &dates {
        let _ = write!(out, r#"<th scope="col">{d}</th>"#);
    }
    out.push_str("</tr></thead><tbody>");
    for symbol in &spec.symbols {
        let _ = write!(out, r#"<tr><th scope="row">{}</th>"#, esc(symbol));
        for d in &dates {
            match view.cells.iter().find(|c| &c.symbol == symbol && c.as_of == *d) {
                Some(c) => {
                    let (text, class) = match c.rating {
                        Some(r) => (r.as_str().to_string(), rating_class(r)),
                        None => (c.status.label().to_string(), "muted".into()),
                    };
                    let _ = write!(
                        out,
                        r#"<td class="cell {class}" data-status="{}"><a href="/runs/{}">{}</a></td>"#,
                        c.status.as_str(),
                        c.run_id,
                        esc(&text)
                    );
                }
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div></section>");

    let card = &view.scorecard;
    let _ = write!(
        out,
        r#"<section class="card scorecard"><h2>Scorecard</h2><p class="muted">Benchmark: {}. Returns from adjusted closes; Hold is counted but not scored.</p><div class="table-scroll"><table class="by-rating"><thead><tr><th scope="col">Rating</th><th scope="col">Horizon</th><th scope="col">Count</th><th scope="col">Hit rate</th><th scope="col">Mean return</th><th scope="col">Mean alpha</th></tr></thead><tbody>"#,
        esc(&card.benchmark.label())
    );
    for s in card.by_rating.iter().filter(|s| s.count > 0) {
        let _ = write!(
            out,
            r#"<tr><th scope="row" class="{}">{}</th><td>{} d</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            rating_class(s.rating),
            s.rating.as_str(),
            s.horizon,
            s.count,
            s.hit_rate.map_or("—".into(), |h| format!("{:.0} %", h * 100.0)),
            opt_pct(s.mean_return),
            opt_pct(s.mean_alpha)
        );
    }
    out.push_str("</tbody></table></div>");
    if let (Some(strategy), Some(b)) = (&card.strategy, &card.baselines) {
        let _ = write!(
            out,
            r#"<h3>Following the ratings ({} on Underweight and Sell)</h3><div class="table-scroll"><table class="strategy"><thead><tr><th scope="col">Strategy</th><th scope="col">Cumulative</th><th scope="col">Annualised</th><th scope="col">Sharpe</th><th scope="col">Max drawdown</th></tr></thead><tbody>"#,
            card.bearish.id()
        );
        out.push_str(&metrics_row("Ratings strategy", strategy));
        out.push_str(&metrics_row("Buy &amp; Hold", &b.buy_and_hold));
        out.push_str(&metrics_row("SMA crossover (20/50)", &b.sma_crossover));
        out.push_str(&metrics_row("MACD (12, 26, 9)", &b.macd));
        out.push_str("</tbody></table></div>");
        out.push_str(&equity_svg(&card.curves));
    } else {
        out.push_str(r#"<p class="muted">The strategy is measured once cells have finished.</p>"#);
    }
    out.push_str("</section>");
    out
}

/// `GET /backtests/:id`
pub async fn show(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = backtest_id(&raw)?;
    let view = state.backtests.view(&user.0, id).await?;
    let running = view.status == BacktestStatus::Running;
    Ok(html(StatusCode::OK, page("Backtest", Some("/backtests"), running, &view_page(&view))))
}

/// The cells as CSV: symbol, as-of date, run, status, rating, then the forward and benchmark
/// returns of each horizon (six decimals; empty where there is none yet).
pub fn cells_csv(view: &BacktestView) -> Vec<u8> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["symbol".to_string(), "as_of".into(), "run_id".into(), "status".into(), "rating".into()];
    for h in &view.spec.horizons {
        header.extend([format!("forward_return_{h}"), format!("benchmark_return_{h}")]);
    }
    csv.write_record(&header).expect("writes to memory");
    for c in &view.cells {
        let mut row = vec![
            c.symbol.clone(),
            c.as_of.to_string(),
            c.run_id.to_string(),
            c.status.as_str().to_string(),
            c.rating.map(|r| r.as_str().to_string()).unwrap_or_default(),
        ];
        for h in &view.spec.horizons {
            let figure = |returns: &std::collections::BTreeMap<String, f64>| {
                returns.get(&h.to_string()).map(|v| format!("{v:.6}")).unwrap_or_default()
            };
            row.extend([figure(&c.forward_returns), figure(&c.benchmark_returns)]);
        }
        csv.write_record(&row).expect("writes to memory");
    }
    csv.into_inner().expect("writes to memory")
}

/// `GET /backtests/:id/cells.csv`
pub async fn csv(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = backtest_id(&raw)?;
    let view = state.backtests.view(&user.0, id).await?;
    let mut resp = cells_csv(&view).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    let name = format!("attachment; filename=\"backtest-{id}.csv\"");
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&name).expect("ascii"));
    Ok(resp)
}

/// `POST /backtests/:id/cancel` — `303` back to its page.
pub async fn cancel(
    State(state): State<AppState>,
    Identity(user): Identity,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = backtest_id(&raw)?;
    state.backtests.cancel(&user.0, id).await?;
    Ok(see_other(&format!("/backtests/{id}")))
}
