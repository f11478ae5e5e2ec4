//! What a page shows of a run's remaining time: a countdown to the server's estimated end
//! that stays honest as the estimates change.
//!
//! The server re-estimates the end at every write of the run (see `application::eta`); taken
//! as they come, the estimates bounce (4 → 7 s) and, when a step overruns, the page counted
//! down to a time already past. The countdown takes an earlier end as it comes, but a later one
//! moves the shown end by no more than the shown estimate's error band ([`band`]); and once
//! the shown end has passed, it shows no number at all (the page says "taking longer than
//! usual") until a new estimate arrives.

use chrono::{DateTime, Duration, Utc};

/// The error band of an estimate of `left` remaining: a quarter of it, at least two seconds.
/// An estimate rises by no more than its band between two readings.
pub fn band(left: Duration) -> Duration {
    (left / 4).max(Duration::seconds(2))
}

/// The end a page counts down to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Countdown {
    /// When the run is shown as ending.
    pub ends_at: DateTime<Utc>,
    /// How far a later estimate may move `ends_at`: the band of the remaining time it showed
    /// when it was set.
    pub band: Duration,
    /// The estimate it last followed: the same one read again (a body delivered twice) moves
    /// nothing.
    pub estimate: DateTime<Utc>,
}

impl Countdown {
    /// The first estimate, as it is.
    pub fn new(ends_at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        Self::set(ends_at, ends_at, now)
    }

    fn set(ends_at: DateTime<Utc>, estimate: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        Self { ends_at, band: band((ends_at - now).max(Duration::zero())), estimate }
    }

    /// A new estimate of the end, read at `now`: an earlier end is taken as it is; a later one
    /// is followed by at most the band (from the shown end, or from `now` if that has passed).
    pub fn update(self, estimate: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        if estimate == self.estimate {
            return self;
        }
        if estimate <= self.ends_at {
            return Self::new(estimate, now);
        }
        let ends_at = estimate.min(self.ends_at.max(now) + self.band);
        Self::set(ends_at, estimate, now)
    }

    /// The same countdown after an estimate that may be missing (the run is no longer active).
    pub fn follow(previous: Option<Self>, estimate: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<Self> {
        let estimate = estimate?;
        Some(match previous {
            Some(p) => p.update(estimate, now),
            None => Self::new(estimate, now),
        })
    }

    /// Whole seconds left at `now` (rounded up), or `None` once the shown end has passed: a
    /// page never shows a remaining time it has already counted through.
    pub fn left(&self, now: DateTime<Utc>) -> Option<u64> {
        let left = self.ends_at - now;
        if left <= Duration::zero() {
            return None;
        }
        let whole = left.num_seconds();
        Some((whole + i64::from(left > Duration::seconds(whole))) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T04:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn secs(s: i64) -> Duration {
        Duration::seconds(s)
    }

    /// A small deterministic generator, so the cases are many and the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below
        }
    }

    #[test]
    fn the_band_is_a_quarter_and_at_least_two_seconds() {
        assert_eq!(band(secs(0)), secs(2));
        assert_eq!(band(secs(8)), secs(2));
        assert_eq!(band(secs(40)), secs(10));
        assert_eq!(band(secs(600)), secs(150));
    }

    #[test]
    fn earlier_ends_are_taken_and_later_ones_follow_by_the_band_at_most() {
        let now = t0();
        let c = Countdown::new(now + secs(40), now);
        assert_eq!(c.band, secs(10));
        // 5 s on, the estimate is 4 s earlier: taken.
        let c = c.update(now + secs(36), now + secs(5));
        assert_eq!(c.ends_at, now + secs(36));
        // Then a minute later than that: moved by the band of the 31 s shown (7.75 s).
        let c = c.update(now + secs(96), now + secs(5));
        assert_eq!(c.ends_at, now + secs(36) + Duration::milliseconds(7750));
        // The same estimate read again moves nothing; a small rise within the band is
        // followed exactly.
        assert_eq!(c.update(now + secs(96), now + secs(6)), c);
        let c2 = c.update(c.ends_at + secs(1), now + secs(6));
        assert_eq!(c2.ends_at, c.ends_at + secs(1));
    }

    #[test]
    fn a_passed_end_shows_no_number_until_a_new_estimate_and_then_a_small_one() {
        let now = t0();
        let c = Countdown::new(now + secs(3), now);
        assert_eq!(c.left(now), Some(3));
        assert_eq!(c.left(now + Duration::milliseconds(2001)), Some(1));
        assert_eq!(c.left(now + secs(3)), None, "no \"about 1 s\" at the end it promised");
        assert_eq!(c.left(now + secs(8)), None, "nor five seconds later");
        // The server now says 30 s more: the page follows from now, by its band (2 s).
        let c = c.update(now + secs(38), now + secs(8));
        assert_eq!(c.left(now + secs(8)), Some(2));
        assert_eq!(Countdown::follow(Some(c), None, now), None, "no estimate, no countdown");
        assert_eq!(Countdown::follow(None, Some(now + secs(9)), now).unwrap().left(now), Some(9));
    }

    /// Property-style: many random runs of estimates (early, late, bouncing, wildly off) read
    /// at random moments. Between any two readings the shown time left never rises by more
    /// than the band it showed; a shown number always lies ahead (never one already counted
    /// through); and an estimate at or before the shown end is shown as it is.
    #[test]
    fn the_shown_time_never_rises_beyond_its_band_nor_shows_a_passed_value() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..2000 {
            let start = t0();
            let mut now = start;
            let mut truth = start + secs(1 + rng.next(300) as i64);
            let mut shown: Option<Countdown> = None;
            let mut last: Option<(DateTime<Utc>, u64, Duration)> = None;
            for _ in 0..60 {
                now += Duration::milliseconds(rng.next(4000) as i64);
                // Sometimes the run turns out slower (or faster) than thought.
                match rng.next(6) {
                    0 => truth += secs(rng.next(40) as i64),
                    1 => truth -= secs(rng.next(10) as i64),
                    _ => {}
                }
                let noise = Duration::milliseconds(rng.next(8000) as i64 - 4000);
                let estimate = (truth + noise).max(now + secs(1));
                let before = shown;
                let c = Countdown::follow(shown, Some(estimate), now).unwrap();
                shown = Some(c);
                if let Some(b) = before
                    && estimate <= b.ends_at
                {
                    assert_eq!(c.ends_at, estimate, "case {case}: an earlier end is taken as it is");
                }
                // Read it now and a moment later, as a page ticking between estimates does.
                for later in [0, rng.next(3000) as i64] {
                    let at = now + Duration::milliseconds(later);
                    let Some(left) = c.left(at) else {
                        assert!(c.ends_at <= at, "case {case}: no number only once the end has passed");
                        continue;
                    };
                    assert!(at + secs(left as i64) >= c.ends_at, "case {case}: rounded up, never down");
                    assert!(at < c.ends_at, "case {case}: a number only while its end lies ahead");
                    if let Some((then, was, band)) = last {
                        // What the last reading promised at `at` (0 if that has passed), plus
                        // its band and the second that rounding up may add.
                        let promised = (was as i64 - (at - then).num_seconds()).max(0);
                        let allowed = promised + (band.num_milliseconds() + 999) / 1000 + 1;
                        assert!(
                            left as i64 <= allowed,
                            "case {case}: {was} s then {left} s {} ms later rises beyond the band {band}",
                            (at - then).num_milliseconds()
                        );
                    }
                    last = Some((at, left, c.band));
                }
            }
        }
    }

    /// When every estimate is right, the page counts down to the real end second by second.
    #[test]
    fn right_estimates_count_down_to_the_real_end() {
        let now = t0();
        let end = now + secs(20);
        let mut c = Countdown::new(end, now);
        for s in 0..20 {
            let at = now + secs(s);
            c = c.update(end, at);
            assert_eq!(c.left(at), Some(20 - s as u64));
        }
        assert_eq!(c.left(end), None);
    }
}
