//! `server backtest`: a backtest in the terminal, through the same engine as the web app (a
//! temporary SQLite database, in-process workers), with a progress bar on stderr and the
//! scorecard on stdout (`--json`: the whole backtest, as `GET /api/trading/backtests/:id`).

use std::time::Duration;

use crate::compose::{self, Error};
use crate::config::{BacktestArgs, Common};
use crate::terminal;
use domain::backtest::{BacktestRequest, BacktestStatus, BacktestView, Metrics};

pub async fn backtest(common: &Common, args: &BacktestArgs) -> Result<(), Error> {
    // The terminal's user has the workers to themselves.
    let common = Common { max_running_cells_per_user: args.workers.max(1) as u32, ..common.clone() };
    terminal::in_scratch_db(&common, "backtest", |common| backtest_in(common, args)).await
}

async fn backtest_in(common: Common, args: &BacktestArgs) -> Result<(), Error> {
    let parts = compose::build(&common).await?;
    let request = BacktestRequest {
        symbols: args.symbols.clone(),
        from: Some(args.from.clone()),
        to: Some(args.to.clone()),
        every_days: Some(args.every),
        horizons: Some(args.horizons.clone()),
        model_id: args.model.clone(),
        analysts: (!args.analysts.is_empty()).then(|| args.analysts.clone()),
        depth: args.depth.clone(),
        bearish: args.bearish.clone(),
        confirm_cost: args.confirm_cost,
        ..BacktestRequest::default()
    };
    let started = match parts.backtests.start(terminal::USER, &request).await {
        Ok(s) => s,
        Err(application::Error::CostNotConfirmed(e)) => {
            return Err(format!(
                "{} cells with {} are expected to cost about ${:.4} (${:.4} a run); pass --confirm-cost to start",
                e.cells, e.model_id, e.expected_cost_usd, e.per_run_usd
            )
            .into());
        }
        Err(e) => return Err(terminal::invalid(e)),
    };
    let view = terminal::follow(&parts, &common, args.workers, Duration::from_millis(200), async || {
        let view = parts.backtests.view(terminal::USER, started.backtest_id).await?;
        let line = progress_line(&view);
        Ok((line, (view.status != BacktestStatus::Running).then_some(view)))
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render(&view));
    }
    Ok(())
}

/// Cells done out of all.
fn progress_line(view: &BacktestView) -> String {
    let done = view.cells.iter().filter(|c| c.status.is_terminal()).count() as u32;
    let total = view.cells.len() as u32;
    format!("{} {done}/{total} cells", terminal::bar(done, total))
}

fn pct(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{:+.2}%", x * 100.0))
}

fn metrics_line(name: &str, m: &Metrics) -> String {
    format!(
        "  {name:<22} {:>10} {:>11} {:>7} {:>9}\n",
        pct(Some(m.cumulative_return)),
        pct(Some(m.annualized_return)),
        m.sharpe.map_or("—".into(), |s| format!("{s:.2}")),
        pct(Some(-m.max_drawdown))
    )
}

/// The scorecard as text.
pub fn render(view: &BacktestView) -> String {
    let card = &view.scorecard;
    let spec = &view.spec;
    let done = view.cells.iter().filter(|c| c.rating.is_some()).count();
    let mut out = format!(
        "\nBacktest of {} from {} to {} every {} trading days: {done} of {} cells rated ({:?}).\nBenchmark: {}\n\n",
        spec.symbols.join(", "),
        spec.from,
        spec.to,
        spec.every_days,
        view.cells.len(),
        view.status,
        card.benchmark.label()
    );
    out.push_str("  rating       horizon  count  hit rate  mean return  mean alpha\n");
    for s in card.by_rating.iter().filter(|s| s.count > 0) {
        out.push_str(&format!(
            "  {:<12} {:>6}d {:>6} {:>9} {:>12} {:>11}\n",
            s.rating.as_str(),
            s.horizon,
            s.count,
            s.hit_rate.map_or("—".into(), |h| format!("{:.0}%", h * 100.0)),
            pct(s.mean_return),
            pct(s.mean_alpha)
        ));
    }
    if let (Some(strategy), Some(b)) = (&card.strategy, &card.baselines) {
        out.push_str(&format!(
            "\n  {:<22} {:>10} {:>11} {:>7} {:>9}\n",
            "strategy", "cumulative", "annualised", "Sharpe", "drawdown"
        ));
        out.push_str(&metrics_line(&format!("ratings ({})", card.bearish.id()), strategy));
        out.push_str(&metrics_line("Buy & Hold", &b.buy_and_hold));
        out.push_str(&metrics_line("SMA crossover (20/50)", &b.sma_crossover));
        out.push_str(&metrics_line("MACD (12, 26, 9)", &b.macd));
    }
    out
}
