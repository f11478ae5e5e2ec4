//! Schedules: a named watchlist started as a batch on every tick of a cron expression.
//!
//! A schedule's cron has 5 fields, or 6 with seconds first (read by `croner`), and is read in
//! an IANA time zone (`chrono-tz`), so `30 8 * * MON-FRI` in `America/New_York` fires at 08:30
//! there, summer and winter. Two ticks are never closer than the operator's floor
//! (`MIN_SCHEDULE_INTERVAL_SECS`).
//!
//! Every process with workers runs the [`Scheduler`], which looks for due schedules about once
//! a second. Taking a tick is one transaction: the schedule's next tick moves on only if it is
//! still the one found due, and the tick is recorded with the id its batch will have — so
//! however many processes share the database, one takes each tick. Its batch is started after,
//! with the tick as the batch's idempotency key; a tick whose process stopped in between is
//! started by the next pass of any process (its record says it was not started yet), and never
//! twice. Ticks that passed while nothing was running are not replayed one by one: the latest
//! runs once, and its record counts the ones it stood for.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use domain::batch::BatchRequest;
use domain::schedule::{MAX_NAME_CHARS, Schedule, ScheduleFire, ScheduleRequest};
use domain::{BatchId, FieldError, ScheduleId};
use tokio_util::sync::CancellationToken;

use crate::batches::Batches;
use crate::error::{Error, Result};
use crate::store::{FireRow, ScheduleRow, Store};

/// The shortest interval between two ticks, by default (`MIN_SCHEDULE_INTERVAL_SECS`).
pub const MIN_INTERVAL_DEFAULT: Duration = Duration::from_secs(300);
/// How often the scheduler looks for due schedules.
pub const PASS_EVERY: Duration = Duration::from_secs(1);
/// Ticks listed with a schedule.
const FIRES_LISTED: u32 = 10;
/// Schedules one identity may keep: each starts batches on its own, without its owner.
pub const SCHEDULES_PER_USER_MAX: usize = 20;
/// Missed ticks counted at most, when a schedule catches up after a long stop.
const MISSED_COUNTED_AT_MOST: u32 = 10_000;
/// Upcoming ticks checked against the interval floor.
const TICKS_CHECKED: usize = 12;

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build()
}

/// A cron expression of 5 or 6 fields, read in a time zone.
#[derive(Debug, Clone)]
pub struct Timetable {
    cron: Cron,
    tz: Tz,
}

impl Timetable {
    /// The timetable of `cron` in `timezone`, each problem named by its field.
    pub fn parse(cron: &str, timezone: &str) -> std::result::Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let fields = cron.split_whitespace().count();
        let parsed = if !(5..=6).contains(&fields) {
            errors.push(FieldError::new(
                "cron",
                format!("{fields} fields: a cron has 5 (minute hour day month weekday) or 6 (seconds first)"),
            ));
            None
        } else {
            parser().parse(cron).map_err(|e| errors.push(FieldError::new("cron", format!("'{cron}': {e}")))).ok()
        };
        let tz = Tz::from_str(timezone.trim())
            .map_err(|_| {
                errors.push(FieldError::new(
                    "timezone",
                    format!("'{timezone}' is not an IANA time zone, e.g. Europe/London"),
                ))
            })
            .ok();
        match (parsed, tz) {
            (Some(cron), Some(tz)) if errors.is_empty() => Ok(Self { cron, tz }),
            _ => Err(errors),
        }
    }

    /// The first tick after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t.with_timezone(&self.tz), false).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The last tick at or before `t`.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&t.with_timezone(&self.tz), true).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The shortest gap between the next few ticks after `t` (none if it never fires twice).
    pub fn shortest_gap(&self, t: DateTime<Utc>) -> Option<chrono::Duration> {
        let mut ticks = Vec::with_capacity(TICKS_CHECKED);
        let mut at = t;
        while ticks.len() < TICKS_CHECKED {
            match self.next_after(at) {
                Some(next) => {
                    ticks.push(next);
                    at = next;
                }
                None => break,
            }
        }
        ticks.windows(2).map(|w| w[1] - w[0]).min()
    }
}

/// What a due schedule's pass does: fire the latest tick at or before `now` (standing for the
/// `missed` ticks since `due` that passed unfired), and wait for `next`.
pub fn catch_up(
    table: &Timetable,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, u32, Option<DateTime<Utc>>) {
    let latest = table.last_at_or_before(now).filter(|l| *l >= due).unwrap_or(due);
    let mut missed = 0;
    let mut t = due;
    while t < latest && missed < MISSED_COUNTED_AT_MOST {
        missed += 1;
        match table.next_after(t) {
            Some(n) => t = n,
            None => break,
        }
    }
    (latest, missed, table.next_after(now.max(latest)))
}

pub struct Schedules {
    store: Store,
    batches: Arc<Batches>,
    clock: Arc<dyn jobs::Clock>,
    min_interval: Duration,
}

impl Schedules {
    pub fn new(store: Store, batches: Arc<Batches>, clock: Arc<dyn jobs::Clock>, min_interval: Duration) -> Self {
        Self { store, batches, clock, min_interval }
    }

    /// Checks a whole schedule: its name, symbols and settings (as a batch's), cron and zone.
    async fn validate(&self, name: &str, request: &BatchRequest, cron: &str, timezone: &str) -> Result<Timetable> {
        let mut errors = Vec::new();
        let name_chars = name.trim().chars().count();
        if name_chars == 0 {
            errors.push(FieldError::new("name", "name the watchlist, e.g. Morning tech"));
        } else if name_chars > MAX_NAME_CHARS {
            errors.push(FieldError::new("name", format!("{name_chars} characters: at most {MAX_NAME_CHARS}")));
        }
        if let Err(Error::Invalid(e)) = self.batches.validate(request) {
            errors.extend(e);
        }
        if let Err(e) = self.batches.check_webhook(request).await {
            errors.extend(e);
        }
        let table = match Timetable::parse(cron, timezone) {
            Ok(table) => {
                let floor = self.min_interval.as_secs();
                if let Some(gap) = table.shortest_gap(self.clock.now())
                    && (gap.num_seconds().max(0) as u64) < floor
                {
                    errors.push(FieldError::new(
                        "cron",
                        format!(
                            "'{cron}' fires {} s apart: the shortest interval here is {floor} s",
                            gap.num_seconds()
                        ),
                    ));
                }
                Some(table)
            }
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        match table {
            Some(table) if errors.is_empty() => Ok(table),
            _ => Err(Error::Invalid(errors)),
        }
    }

    /// Creates a schedule of `owner`'s; its first tick is the first after now.
    pub async fn create(&self, owner: &str, r: &ScheduleRequest) -> Result<Schedule> {
        let mut missing = Vec::new();
        for (field, given) in [("name", r.name.is_some()), ("symbols", r.symbols.is_some()), ("cron", r.cron.is_some())]
        {
            if !given {
                missing.push(FieldError::new(field, format!("{field} is required")));
            }
        }
        if !missing.is_empty() {
            return Err(Error::Invalid(missing));
        }
        if self.store.schedules_of(owner).await?.len() >= SCHEDULES_PER_USER_MAX {
            let message = format!("you already have {SCHEDULES_PER_USER_MAX} schedules; delete one first");
            return Err(Error::field("name", message));
        }
        let now = self.clock.now();
        let row = ScheduleRow {
            schedule_id: ScheduleId::from_uuid(uuid::Uuid::new_v4()).to_string(),
            user_id: owner.to_string(),
            name: String::new(),
            cron: String::new(),
            timezone: "UTC".into(),
            request: "{}".into(),
            paused: false,
            next_fire_at: None,
            created_at: now.timestamp_millis(),
            updated_at: now.timestamp_millis(),
            webhook_disabled_at: None,
        };
        let row = self.apply(row, r).await?;
        self.store.insert_schedule(&row).await?;
        self.view(row).await
    }

    /// `row` changed as `r` says, checked whole, with its next tick computed again.
    async fn apply(&self, mut row: ScheduleRow, r: &ScheduleRequest) -> Result<ScheduleRow> {
        let mut request: BatchRequest = serde_json::from_str(&row.request)
            .map_err(|e| Error::Internal(format!("schedule {}: request: {e}", row.schedule_id)))?;
        if let Some(symbols) = &r.symbols {
            request.symbols = symbols.clone();
        }
        macro_rules! set {
            ($($field:ident),*) => {$(
                if r.$field.is_some() {
                    request.$field = r.$field.clone();
                }
            )*};
        }
        set!(model_id, analysts, depth, deep_model_id, max_cost_usd, max_tokens, webhook_events);
        if let Some(url) = &r.webhook {
            // Set again (or removed), a webhook given up on is tried anew.
            request.webhook = Some(url.trim().to_string()).filter(|u| !u.is_empty());
            row.webhook_disabled_at = None;
            if request.webhook.is_none() {
                request.webhook_events = None;
            }
        }
        if let Some(name) = &r.name {
            row.name = name.trim().to_string();
        }
        if let Some(cron) = &r.cron {
            row.cron = cron.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        if let Some(tz) = &r.timezone {
            row.timezone = if tz.trim().is_empty() { "UTC".into() } else { tz.trim().to_string() };
        }
        if let Some(paused) = r.paused {
            row.paused = paused;
        }
        let table = self.validate(&row.name, &request, &row.cron, &row.timezone).await?;
        request.symbols = request.symbols().map_err(|e| Error::Invalid(vec![e]))?;
        let now = self.clock.now();
        row.request = serde_json::to_string(&request).map_err(|e| Error::Internal(e.to_string()))?;
        row.next_fire_at = if row.paused { None } else { table.next_after(now).map(|t| t.timestamp_millis()) };
        row.updated_at = now.timestamp_millis();
        Ok(row)
    }

    async fn owned(&self, owner: &str, id: ScheduleId) -> Result<ScheduleRow> {
        self.store.schedule(owner, &id.to_string()).await?.ok_or(Error::NotFound)
    }

    /// Edits, pauses or resumes a schedule of `owner`'s.
    pub async fn update(&self, owner: &str, id: ScheduleId, r: &ScheduleRequest) -> Result<Schedule> {
        let row = self.apply(self.owned(owner, id).await?, r).await?;
        if !self.store.update_schedule(&row).await? {
            return Err(Error::NotFound);
        }
        self.view(row).await
    }

    /// Deletes a schedule of `owner`'s (the batches it started stay).
    pub async fn delete(&self, owner: &str, id: ScheduleId) -> Result<()> {
        if self.store.delete_schedule(owner, &id.to_string()).await? { Ok(()) } else { Err(Error::NotFound) }
    }

    pub async fn get(&self, owner: &str, id: ScheduleId) -> Result<Schedule> {
        let row = self.owned(owner, id).await?;
        self.view(row).await
    }

    /// `owner`'s schedules, oldest first, each with its latest ticks.
    pub async fn list(&self, owner: &str) -> Result<Vec<Schedule>> {
        let rows = self.store.schedules_of(owner).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.schedule_id.clone()).collect();
        let mut fires = self.store.fires_of(&ids, FIRES_LISTED).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mine: Vec<FireRow> = fires.extract_if(.., |f| f.schedule_id == row.schedule_id).collect();
            out.push(to_schedule(row, mine)?);
        }
        Ok(out)
    }

    async fn view(&self, row: ScheduleRow) -> Result<Schedule> {
        let fires = self.store.fires_of(std::slice::from_ref(&row.schedule_id), FIRES_LISTED).await?;
        to_schedule(row, fires)
    }

    /// One pass: starts the batches of ticks taken but not started, then takes every due tick
    /// and starts its batch. The number of batches started.
    pub async fn pass(&self) -> Result<u32> {
        let now = self.clock.now();
        let mut started = 0;
        for (schedule, fire) in self.store.unstarted_fires(now - chrono::Duration::days(1)).await? {
            started += u32::from(self.start(&schedule, &fire).await?);
        }
        for schedule in self.store.due_schedules(now, 100).await? {
            let Some(due) = schedule.next_fire_at.and_then(DateTime::from_timestamp_millis) else { continue };
            let table = match Timetable::parse(&schedule.cron, &schedule.timezone) {
                Ok(table) => table,
                Err(e) => {
                    // Checked when written: only a zone dropped from the time zone database
                    // can fail here. It waits, paused, for its owner to mend it.
                    tracing::warn!(schedule = %schedule.schedule_id, errors = ?e, "schedule cannot be read; paused");
                    let paused = ScheduleRow { paused: true, next_fire_at: None, ..schedule };
                    self.store.update_schedule(&paused).await?;
                    continue;
                }
            };
            let (tick, missed, next) = catch_up(&table, due, now);
            let fire = FireRow {
                schedule_id: schedule.schedule_id.clone(),
                tick_at: tick.timestamp_millis(),
                fired_at: now.timestamp_millis(),
                batch_id: BatchId::from_uuid(uuid::Uuid::new_v4()).to_string(),
                missed: i64::from(missed),
                started: false,
                error: None,
            };
            // A cron with no tick left (a date long past) stops here.
            let next = next.map_or(i64::MAX, |n| n.timestamp_millis());
            if self.store.take_tick(due.timestamp_millis(), next, &fire).await? {
                started += u32::from(self.start(&schedule, &fire).await?);
            }
        }
        Ok(started)
    }

    /// Starts a taken tick's batch, once; whether it was started. A refusal that a later try
    /// would meet again (the budget spent, a symbol gone) is recorded with the tick; a database
    /// out of reach is left for the next pass.
    async fn start(&self, schedule: &ScheduleRow, fire: &FireRow) -> Result<bool> {
        let request: BatchRequest = serde_json::from_str(&schedule.request)
            .map_err(|e| Error::Internal(format!("schedule {}: request: {e}", schedule.schedule_id)))?;
        let batch_id: BatchId = fire.batch_id.parse().map_err(|e: domain::IdError| Error::Internal(e.0))?;
        let key = format!("schedule:{}:{}", schedule.schedule_id, fire.tick_at);
        let request = match schedule.webhook_disabled_at {
            Some(_) => BatchRequest { webhook: None, webhook_events: None, ..request },
            None => request,
        };
        let id = Some(schedule.schedule_id.clone());
        match self.batches.start_as(&schedule.user_id, &request, batch_id, Some(key), id).await {
            Ok(_) => {
                self.store.fire_started(&schedule.schedule_id, fire.tick_at, None).await?;
                crate::telemetry::schedule_fired(true);
                Ok(true)
            }
            Err(e @ Error::Unavailable(_)) => Err(e),
            Err(e) => {
                let why = match &e {
                    Error::Invalid(errors) => {
                        errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
                    }
                    e => e.to_string(),
                };
                tracing::warn!(schedule = %schedule.schedule_id, error = %why, "a tick started no batch");
                self.store.fire_started(&schedule.schedule_id, fire.tick_at, Some(&why)).await?;
                crate::telemetry::schedule_fired(false);
                Ok(false)
            }
        }
    }
}

fn to_schedule(row: ScheduleRow, fires: Vec<FireRow>) -> Result<Schedule> {
    let time = |ms: i64| {
        DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::Internal(format!("a time out of range: {ms}")))
    };
    let request: BatchRequest = serde_json::from_str(&row.request)
        .map_err(|e| Error::Internal(format!("schedule {}: request: {e}", row.schedule_id)))?;
    let last_fires = fires
        .into_iter()
        .map(|f| {
            Ok(ScheduleFire {
                tick_at: time(f.tick_at)?,
                fired_at: time(f.fired_at)?,
                batch_id: f.batch_id.parse().map_err(|e: domain::IdError| Error::Internal(e.0))?,
                missed: f.missed.clamp(0, i64::from(u32::MAX)) as u32,
                error: f.error,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let next_fire_at = row.next_fire_at.filter(|n| *n != i64::MAX).map(time).transpose()?;
    let next_fire_local = match (next_fire_at, Tz::from_str(&row.timezone)) {
        (Some(next), Ok(tz)) => Some(next.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z").to_string()),
        _ => None,
    };
    Ok(Schedule {
        schedule_id: row.schedule_id.parse().map_err(|e: domain::IdError| Error::Internal(e.0))?,
        name: row.name,
        cron: row.cron,
        timezone: row.timezone,
        paused: row.paused,
        request,
        next_fire_at,
        next_fire_local,
        webhook_disabled_at: row.webhook_disabled_at.map(time).transpose()?,
        last_fires,
        created_at: time(row.created_at)?,
        updated_at: time(row.updated_at)?,
    })
}

/// Runs a pass about every [`PASS_EVERY`] until `shutdown`.
pub struct Scheduler {
    schedules: Arc<Schedules>,
    every: Duration,
}

impl Scheduler {
    pub fn new(schedules: Arc<Schedules>) -> Self {
        Self { schedules, every: PASS_EVERY }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.schedules.pass().await {
                tracing::warn!(error = %e, "scheduler pass failed; trying again");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.every) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_cron_is_read_in_its_time_zone_across_daylight_saving() {
        let t = Timetable::parse("30 8 * * MON-FRI", "America/New_York").unwrap();
        // Friday 2026-03-06 08:30 EST is 13:30 UTC; after the clocks change, 08:30 EDT is 12:30.
        assert_eq!(t.next_after(utc("2026-03-06T00:00:00Z")), Some(utc("2026-03-06T13:30:00Z")));
        assert_eq!(t.next_after(utc("2026-03-06T14:00:00Z")), Some(utc("2026-03-09T12:30:00Z")));
        let seconds = Timetable::parse("*/5 * * * * *", "UTC").unwrap();
        assert_eq!(seconds.shortest_gap(utc("2026-01-01T00:00:00Z")), Some(chrono::Duration::seconds(5)));
    }

    #[test]
    fn bad_crons_and_zones_are_named() {
        let fields = |c: &str, z: &str| -> Vec<String> {
            Timetable::parse(c, z).unwrap_err().into_iter().map(|e| e.field).collect()
        };
        assert_eq!(fields("* * * *", "UTC"), ["cron"]);
        assert_eq!(fields("0 0 * * * * 2027", "UTC"), ["cron"]);
        assert_eq!(fields("61 * * * *", "Mars/Olympus"), ["cron", "timezone"]);
    }

    /// After a stop, the latest tick fires once for those missed; a tick on time misses none.
    #[test]
    fn a_late_pass_fires_the_latest_tick_once() {
        let t = Timetable::parse("*/5 * * * * *", "UTC").unwrap();
        let due = utc("2026-01-01T00:00:05Z");
        let (tick, missed, next) = catch_up(&t, due, utc("2026-01-01T00:00:27Z"));
        assert_eq!((tick, missed), (utc("2026-01-01T00:00:25Z"), 4));
        assert_eq!(next, Some(utc("2026-01-01T00:00:30Z")));
        let (tick, missed, next) = catch_up(&t, due, utc("2026-01-01T00:00:05.300Z"));
        assert_eq!((tick, missed, next), (due, 0, Some(utc("2026-01-01T00:00:10Z"))));
    }
}
