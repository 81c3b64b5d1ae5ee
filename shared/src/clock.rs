//! Timestamps: RFC 3339 in UTC with milliseconds, which also sort as strings; and the
//! [`Clock`] the store reads "now" from and waits on, which tests move forward without sleeping.
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};

const RFC3339_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Where the store reads the time: the system clock, shifted by an offset that only tests move.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
    /// A wait moves the clock forward at once instead of passing ([`Clock::manual`]).
    manual: bool,
}

/// One reading of a clock on both its scales, to measure a duration from ([`Stamp::elapsed_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    wall_ms: i64,
    ticks_ms: i64,
}

impl Stamp {
    /// The time from this reading to `later`: the longer of what the wall clock and the
    /// monotonic clock measured, so that neither a wall clock set forward nor a monotonic one
    /// that stood still (a frozen instance) shortens it; `None` when either ran backwards
    /// (a wall clock set back), which trusts neither.
    pub fn elapsed_to(&self, later: Stamp) -> Option<Duration> {
        let wall = later.wall_ms.checked_sub(self.wall_ms).filter(|d| *d >= 0)?;
        let ticks = later.ticks_ms.checked_sub(self.ticks_ms).filter(|d| *d >= 0)?;
        Some(Duration::from_millis(wall.max(ticks) as u64))
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The system clock, whose waits ([`Clock::sleep`]) move it forward at once: for tests,
    /// which never sleep.
    pub fn manual() -> Clock {
        Clock { manual: true, ..Clock::default() }
    }

    /// Now, on the wall clock and on a monotonic one (both moved by [`Clock::advance`]).
    pub fn stamp(&self) -> Stamp {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let ticks_ms = ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as i64 + offset;
        Stamp { wall_ms: self.now_epoch_millis(), ticks_ms }
    }

    /// Waits `by`: on a [`Clock::manual`] clock, moves it forward instead.
    pub async fn sleep(&self, by: Duration) {
        if self.manual {
            self.advance(by);
        } else {
            tokio::time::sleep(by).await;
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        now() + time::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    pub fn now_epoch_seconds(&self) -> i64 {
        self.now().unix_timestamp()
    }

    pub fn now_epoch_millis(&self) -> i64 {
        (self.now().unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }

    /// Moves this clock (and every clone of it) back by `by`: a test's wall clock set back.
    pub fn rewind(&self, by: Duration) {
        self.offset_ms.fetch_sub(by.as_millis() as i64, Ordering::Relaxed);
    }
}

/// The epoch seconds of a timestamp this module formatted, or `None` for anything else.
pub fn parse_epoch_seconds(timestamp: &str) -> Option<i64> {
    time::PrimitiveDateTime::parse(timestamp, RFC3339_MILLIS).ok().map(|at| at.assume_utc().unix_timestamp())
}

pub fn format(at: OffsetDateTime) -> String {
    at.format(RFC3339_MILLIS).unwrap_or_default()
}

pub fn format_epoch_seconds(epoch_seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(epoch_seconds)
        .map(format)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_millis() {
        assert_eq!(
            format_epoch_seconds(1_700_000_000),
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(
            parse_epoch_seconds("2023-11-14T22:13:20.000Z"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_epoch_seconds("yesterday"), None);
    }

    #[test]
    fn an_advanced_clock_moves_every_clone() {
        let clock = Clock::system();
        let copy = clock.clone();
        let before = copy.now_epoch_seconds();
        clock.advance(Duration::from_secs(30 * 86_400));
        assert!(copy.now_epoch_seconds() >= before + 30 * 86_400);
    }

    #[test]
    fn a_duration_is_the_longer_of_both_scales_and_none_when_either_ran_back() {
        let at = Stamp { wall_ms: 1_000, ticks_ms: 50 };
        assert_eq!(at.elapsed_to(Stamp { wall_ms: 1_400, ticks_ms: 60 }), Some(Duration::from_millis(400)));
        assert_eq!(at.elapsed_to(Stamp { wall_ms: 1_010, ticks_ms: 950 }), Some(Duration::from_millis(900)));
        assert_eq!(at.elapsed_to(Stamp { wall_ms: 999, ticks_ms: 5_000 }), None, "the wall clock was set back");
        assert_eq!(at.elapsed_to(Stamp { wall_ms: 9_000, ticks_ms: 49 }), None);
    }

    #[tokio::test]
    async fn a_manual_clock_waits_by_moving_forward() {
        let clock = Clock::manual();
        let (wall, at) = (clock.now_epoch_millis(), clock.stamp());
        clock.sleep(Duration::from_secs(3_600)).await;
        assert!(clock.now_epoch_millis() >= wall + 3_600_000);
        assert!(at.elapsed_to(clock.stamp()).unwrap() >= Duration::from_secs(3_600));
        clock.rewind(Duration::from_secs(7_200));
        assert_eq!(at.elapsed_to(clock.stamp()), None);
    }
}
