//! `server schedule`: a watchlist on a cron in the terminal, through the same engine as the web
//! app (a temporary SQLite database, in-process workers and scheduler): each tick runs one batch
//! of the symbols, printed as a table once it has ended, until `--ticks` have.

use std::collections::HashSet;
use std::time::Duration;

use domain::BatchId;
use domain::batch::{BatchOrder, BatchStatus};
use domain::schedule::ScheduleRequest;

use crate::compose::{self, Error};
use crate::config::{Common, ScheduleArgs};
use crate::{batch_cli, terminal};

pub async fn schedule(common: &Common, args: &ScheduleArgs) -> Result<(), Error> {
    // The terminal's user has the workers to themselves.
    let common = Common { max_active_jobs_per_user: args.runs.workers.max(1) as u32, ..common.clone() };
    terminal::in_scratch_db(&common, "schedule", |common| schedule_in(common, args)).await
}

async fn schedule_in(common: Common, args: &ScheduleArgs) -> Result<(), Error> {
    let parts = compose::build(&common).await?;
    let request = ScheduleRequest {
        name: Some("terminal".into()),
        symbols: Some(args.symbols.clone()),
        cron: Some(args.cron.clone()),
        timezone: args.timezone.clone(),
        model_id: args.runs.model.clone(),
        analysts: (!args.runs.analysts.is_empty()).then(|| args.runs.analysts.clone()),
        depth: args.runs.depth.clone(),
        ..ScheduleRequest::default()
    };
    let created = parts.schedules.create(terminal::USER, &request).await.map_err(terminal::invalid)?;
    let id = created.schedule_id;
    let ticks = args.ticks.max(1);
    let mut printed: HashSet<BatchId> = HashSet::new();
    terminal::follow(&parts, &common, args.runs.workers, Duration::from_millis(250), async || {
        let schedule = parts.schedules.get(terminal::USER, id).await?;
        for fire in schedule.last_fires.iter().rev() {
            if printed.contains(&fire.batch_id) || printed.len() >= ticks {
                continue;
            }
            if let Some(error) = &fire.error {
                println!("\nTick {}: no batch ({error})", fire.tick_at.to_rfc3339());
                printed.insert(fire.batch_id);
                continue;
            }
            let Ok(mut view) = parts.batches.view(terminal::USER, fire.batch_id).await else { continue };
            if view.status == BatchStatus::Running {
                continue;
            }
            BatchOrder::Rating.sort(&mut view.runs);
            let note = fire.note().map(|n| format!(" ({n})")).unwrap_or_default();
            print!("\nTick {}{note}:{}", fire.tick_at.to_rfc3339(), batch_cli::render(&view));
            printed.insert(fire.batch_id);
        }
        let next = schedule.next_fire_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "none".into());
        let line = format!(
            "{} {}/{ticks} ticks run · next tick {next}",
            terminal::bar(printed.len() as u32, ticks as u32),
            printed.len()
        );
        Ok((line, (printed.len() >= ticks).then_some(())))
    })
    .await
}
