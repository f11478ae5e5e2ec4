//! `server batch`: a batch in the terminal, through the same engine as the web app (a
//! temporary SQLite database, in-process workers), with a progress bar on stderr and a table of
//! the runs on stdout, most bullish first (`--json`: the whole batch, as
//! `GET /api/trading/batches/:id`).

use std::time::Duration;

use domain::batch::{BatchOrder, BatchRequest, BatchStatus, BatchView};

use crate::compose::{self, Error};
use crate::config::{BatchArgs, Common};
use crate::terminal;

pub async fn batch(common: &Common, args: &BatchArgs) -> Result<(), Error> {
    // The terminal's user has the workers to themselves.
    let common = Common { max_active_jobs_per_user: args.runs.workers.max(1) as u32, ..common.clone() };
    terminal::in_scratch_db(&common, "batch", |common| batch_in(common, args)).await
}

async fn batch_in(common: Common, args: &BatchArgs) -> Result<(), Error> {
    let parts = compose::build(&common).await?;
    let request = BatchRequest {
        symbols: args.symbols.clone(),
        model_id: args.runs.model.clone(),
        analysts: (!args.runs.analysts.is_empty()).then(|| args.runs.analysts.clone()),
        as_of: args.as_of.clone(),
        depth: args.runs.depth.clone(),
        ..BatchRequest::default()
    };
    let started = parts.batches.start(terminal::USER, &request).await.map_err(terminal::invalid)?;
    let mut view = terminal::follow(&parts, &common, args.runs.workers, Duration::from_millis(200), async || {
        let view = parts.batches.view(terminal::USER, started.batch_id).await?;
        let t = &view.totals;
        let ended = t.completed + t.failed + t.cancelled;
        let line = format!("{} {ended}/{} runs, {} running", terminal::bar(ended, t.runs), t.runs, t.running);
        Ok((line, (view.status != BatchStatus::Running).then_some(view)))
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        BatchOrder::Rating.sort(&mut view.runs);
        print!("{}", render(&view));
    }
    if view.totals.completed != view.totals.runs {
        return Err(format!(
            "{} of {} runs did not complete",
            view.totals.runs - view.totals.completed,
            view.totals.runs
        )
        .into());
    }
    Ok(())
}

/// The runs as a table.
pub fn render(view: &BatchView) -> String {
    let mut out = format!("\n  {:<8} {:<10} {:<11} {:>10}\n", "symbol", "status", "rating", "confidence");
    for r in &view.runs {
        out.push_str(&format!(
            "  {:<8} {:<10} {:<11} {:>10}\n",
            r.symbol,
            r.status.as_str(),
            r.rating.map_or("—", |r| r.as_str()),
            r.confidence.map_or("—".into(), |c| format!("{:.0}%", c * 100.0))
        ));
    }
    let t = &view.totals;
    out.push_str(&format!(
        "\n{} runs: {} completed, {} failed, cost ${:.4}\n",
        t.runs, t.completed, t.failed, t.cost_usd
    ));
    out
}
