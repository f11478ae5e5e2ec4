//! Time as the engine sees it.
//!
//! Every timestamp the engine writes (leases, deadlines, created/updated times) comes from a
//! [`Clock`] rather than from the database's `now()`, so tests can move time forward with a
//! [`ManualClock`] and watch leases expire without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
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
