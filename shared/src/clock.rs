//! Timestamps: RFC 3339 in UTC with milliseconds, which also sort as strings; and the
//! [`Clock`] the store reads "now" from, which tests move forward without sleeping.
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
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
}
