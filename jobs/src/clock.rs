//! Time as the queue sees it.
//!
//! Several hosts claim, heartbeat and rescue on PostgreSQL, and their clocks drift: if each wrote
//! and judged leases by its own clock, a host running a minute fast would rescue jobs whose
//! workers are alive. So the PostgreSQL store takes every instant it writes or compares —
//! leases, heartbeats, deadlines, created and updated times — from the database
//! (`queue_now()`) whenever [`Clock::lease_time`] says so, which the [`SystemClock`] does. A
//! test's [`ManualClock`] decides instead, so tests can move time forward and watch leases
//! expire without waiting. SQLite is one file on one machine: its processes share a clock, and
//! it uses [`Clock::now`] throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// The instant a shared database should use, or `None` to let its own clock decide. A
    /// clock that tests drive answers its time.
    fn lease_time(&self) -> Option<DateTime<Utc>> {
        Some(self.now())
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// The database's: this machine's clock is not the only one that judges leases.
    fn lease_time(&self) -> Option<DateTime<Utc>> {
        None
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { millis: Arc::new(AtomicI64::new(start.timestamp_millis())) }
    }

    /// Starts at the current wall-clock time, rounded to the millisecond.
    pub fn starting_now() -> Self {
        Self::new(Utc::now())
    }

    pub fn advance(&self, by: Duration) {
        self.millis.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.millis.load(Ordering::SeqCst)).single().expect("valid time")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let c = ManualClock::starting_now();
        let c2 = c.clone();
        let t0 = c.now();
        c.advance(Duration::seconds(90));
        assert_eq!(c2.now() - t0, Duration::seconds(90));
    }
}
