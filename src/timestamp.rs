//! Timestamps as the table stores them: UTC, millisecond precision, fixed width, so that
//! string order is time order in sort keys.

use time::{format_description::well_known::Rfc3339, macros::format_description, OffsetDateTime, UtcOffset};

/// A point in time, normalised to UTC milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The wall clock.
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Parses an RFC 3339 date-time (`2025-01-15T10:30:00Z`, `…+02:00`, fractions allowed).
    /// `None` also for a time that has no UTC form in years 0000-9999
    /// (`9999-12-31T23:59:59-01:00`).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
        Self::from_unix_millis((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// The instant `millis` after the Unix epoch, if it lies in years 0000-9999.
    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        let datetime = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()?;
        // Keys hold four-digit years: anything else would not sort (or not format).
        (0..=9999).contains(&datetime.year()).then_some(Self(datetime))
    }

    fn from_datetime(datetime: OffsetDateTime) -> Self {
        let utc = datetime.to_offset(UtcOffset::UTC);
        let millis = utc.millisecond();
        // Truncate below the millisecond so equal keys mean equal stored values.
        Self(utc.replace_millisecond(millis).unwrap_or(utc))
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// `days` later, or `None` past year 9999.
    pub fn plus_days(self, days: u32) -> Option<Self> {
        self.plus_millis(i64::from(days) * 86_400_000)
    }

    /// `millis` later (or earlier, when negative), or `None` outside years 0000-9999.
    pub fn plus_millis(self, millis: i64) -> Option<Self> {
        Self::from_unix_millis(self.unix_millis().checked_add(millis)?)
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form used in keys and attributes.
    pub fn to_key_string(self) -> String {
        String::from_utf8_lossy(&self.key_bytes()).into_owned()
    }

    /// The key string's 24 ASCII bytes, written digit by digit: every item of a delivery
    /// carries one, and a format description costs several times more.
    pub fn key_bytes(self) -> [u8; 24] {
        let t = self.0;
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, value: u32| {
            let mut value = value;
            for position in (at..at + width).rev() {
                if let Some(byte) = out.get_mut(position) {
                    *byte = b'0' + (value % 10) as u8;
                }
                value /= 10;
            }
        };
        // Years are 0000-9999 (see `from_unix_millis`).
        put(0, 4, t.year().unsigned_abs());
        put(5, 2, u32::from(u8::from(t.month())));
        put(8, 2, u32::from(t.day()));
        put(11, 2, u32::from(t.hour()));
        put(14, 2, u32::from(t.minute()));
        put(17, 2, u32::from(t.second()));
        put(20, 3, u32::from(t.millisecond()));
        out
    }

    /// `Wed 15 Jan 2025, 10:30 UTC`, for people reading an alert.
    pub fn to_readable_string(self) -> String {
        const READABLE_FORMAT: &[time::format_description::FormatItem<'static>] = format_description!(
            "[weekday repr:short] [day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
        );
        self.0.format(READABLE_FORMAT).unwrap_or_else(|_| self.to_key_string())
    }

    /// `15 Jan 10:30 UTC`, short enough for an SMS.
    pub fn to_short_string(self) -> String {
        const SHORT_FORMAT: &[time::format_description::FormatItem<'static>] =
            format_description!("[day padding:none] [month repr:short] [hour]:[minute] UTC");
        self.0.format(SHORT_FORMAT).unwrap_or_else(|_| self.to_key_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_string_is_utc_with_milliseconds() {
        let ts = Timestamp::parse_rfc3339("2025-01-15T10:30:00Z").unwrap();
        assert_eq!(ts.to_key_string(), "2025-01-15T10:30:00.000Z");
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let ts = Timestamp::parse_rfc3339("2025-01-15T12:30:00.5+02:00").unwrap();
        assert_eq!(ts.to_key_string(), "2025-01-15T10:30:00.500Z");
    }

    #[test]
    fn sub_millisecond_digits_are_truncated() {
        let a = Timestamp::parse_rfc3339("2025-01-15T10:30:00.123456789Z").unwrap();
        let b = Timestamp::parse_rfc3339("2025-01-15T10:30:00.123Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_key_string(), "2025-01-15T10:30:00.123Z");
    }

    #[test]
    fn key_strings_sort_like_time() {
        let earlier = Timestamp::parse_rfc3339("2025-01-15T23:59:59.999+00:00").unwrap();
        let later = Timestamp::parse_rfc3339("2025-01-15T20:00:00-05:00").unwrap();
        assert!(earlier < later);
        assert!(earlier.to_key_string() < later.to_key_string());
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for text in ["", "yesterday", "2025-01-15", "2025-01-15 10:30", "2025-13-01T00:00:00Z"] {
            assert!(Timestamp::parse_rfc3339(text).is_none(), "{text:?} should not parse");
        }
    }

    #[test]
    fn readable_forms() {
        let ts = Timestamp::parse_rfc3339("2025-01-15T10:30:00Z").unwrap();
        assert_eq!(ts.to_readable_string(), "Wed 15 Jan 2025, 10:30 UTC");
        assert_eq!(ts.to_short_string(), "15 Jan 10:30 UTC");
    }

    #[test]
    fn unix_round_trip() {
        let ts = Timestamp::parse_rfc3339("2025-01-15T10:30:00.250Z").unwrap();
        assert_eq!(Timestamp::from_unix_millis(ts.unix_millis()), Some(ts));
        assert_eq!(ts.plus_days(1).unwrap().unix_seconds() - ts.unix_seconds(), 86_400);
        assert_eq!(ts.plus_days(u32::MAX), None);
    }

    #[test]
    fn times_without_a_four_digit_utc_year_are_refused_not_panicked_on() {
        assert_eq!(Timestamp::parse_rfc3339("9999-12-31T23:59:59-01:00"), None);
        assert_eq!(Timestamp::parse_rfc3339("0000-01-01T00:00:00+01:00"), None);
        let last = Timestamp::parse_rfc3339("9999-12-31T23:59:59.999Z").unwrap();
        assert_eq!(last.to_key_string(), "9999-12-31T23:59:59.999Z");
        assert_eq!(last.plus_millis(1), None);
    }
}
