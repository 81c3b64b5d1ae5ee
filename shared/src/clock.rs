//! Timestamps: RFC 3339 in UTC with milliseconds, which also sort as strings.
use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};

const RFC3339_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
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
        assert_eq!(format_epoch_seconds(1_700_000_000), "2023-11-14T22:13:20.000Z");
    }
}
