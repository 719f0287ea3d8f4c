//! Calendar spans for the `keep_within*` rules: `2d`, `1y2mo3d4h`, `90m`.
//!
//! A span is not a fixed length: one month back from 31 March is 2 March (or 3 March), because
//! months and years are counted on the calendar and overflowing days roll forward, the way Go's
//! `time.AddDate` (and so restic) does it. Hours and minutes are then subtracted as real time.

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

/// A length of calendar time. Units when written: `y` years, `mo` months, `w` weeks (7 days),
/// `d` days, `h` hours, `m` minutes (as everywhere else in the config: `m` is never months).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CalendarSpan {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
    pub minutes: u32,
}

/// Why a string is not a [`CalendarSpan`]. Messages name the input and say what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error("empty span; write a number with a unit such as 7d, 1y6mo or 36h")]
    Empty,
    #[error("`{0}` has no unit; write e.g. {0}d for days (units: y, mo, w, d, h, m)")]
    NoUnit(String),
    #[error("`{0}` is not a calendar span; write numbers with units y (years), mo (months), w (weeks), d (days), h (hours), m (minutes), e.g. 7d or 1y6mo")]
    Syntax(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl CalendarSpan {
    /// True when every field is 0; a zero span turns its rule off.
    pub fn is_zero(&self) -> bool {
        *self == CalendarSpan::default()
    }

    /// `t` moved back by this span: years, months and days on the wall clock in `tz` (a day that
    /// does not exist in the target month rolls over into the next, like Go's `AddDate`: 31 March
    /// − 1mo is 2 March in a leap year), then hours and minutes as elapsed time. A wall-clock time
    /// that falls into a DST gap resolves to the later side, a repeated one to its first
    /// occurrence. `None` when the result lies outside the representable years (-9999..=9999):
    /// the span then reaches back before any possible snapshot.
    pub fn before(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let dt = tz.to_datetime(t);
        let months = i64::from(dt.year()) * 12 + i64::from(dt.month() - 1)
            - i64::from(self.years) * 12
            - i64::from(self.months);
        let year = i16::try_from(months.div_euclid(12)).ok()?;
        let month = i8::try_from(months.rem_euclid(12) + 1).ok()?;
        let first = Date::new(year, month, 1).ok()?;
        let day_offset = i64::from(dt.day()) - 1 - i64::from(self.days);
        let date = first
            .checked_add(Span::new().try_days(day_offset).ok()?)
            .ok()?;
        let wall = tz
            .to_ambiguous_timestamp(date.to_datetime(dt.time()))
            .compatible()
            .ok()?;
        let secs = i64::from(self.hours) * 3600 + i64::from(self.minutes) * 60;
        wall.checked_sub(SignedDuration::from_secs(secs)).ok()
    }
}

impl FromStr for CalendarSpan {
    type Err = SpanError;

    /// Numbers with units, optionally separated by spaces: `2d`, `1y2mo3d4h`, `1y 6mo`, `90m`,
    /// `2w`. Weeks become days. A unit given twice adds up.
    fn from_str(s: &str) -> Result<CalendarSpan, SpanError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(SpanError::Empty);
        }
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SpanError::NoUnit(t.into()));
        }
        let too_large = || SpanError::TooLarge(t.into());
        let mut span = CalendarSpan::default();
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(SpanError::Syntax(t.into()));
            }
            let n: u32 = rest[..digits].parse().map_err(|_| too_large())?;
            rest = rest[digits..].trim_start();
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let (field, n) = match &rest[..unit_len] {
                "y" => (&mut span.years, n),
                "mo" => (&mut span.months, n),
                "w" => (&mut span.days, n.checked_mul(7).ok_or_else(too_large)?),
                "d" => (&mut span.days, n),
                "h" => (&mut span.hours, n),
                "m" => (&mut span.minutes, n),
                _ => return Err(SpanError::Syntax(t.into())),
            };
            *field = field.checked_add(n).ok_or_else(too_large)?;
            rest = rest[unit_len..].trim_start();
        }
        Ok(span)
    }
}

impl fmt::Display for CalendarSpan {
    /// The canonical form, largest unit first, zero fields left out: `1y2mo3d4h`, `14d`, `90m`.
    /// A zero span is `0d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0d");
        }
        for (n, unit) in [
            (self.years, "y"),
            (self.months, "mo"),
            (self.days, "d"),
            (self.hours, "h"),
            (self.minutes, "m"),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(s: &str) -> CalendarSpan {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_units_and_prints_canonically() {
        for (input, canonical) in [
            ("2d", "2d"),
            ("1y2mo3d4h", "1y2mo3d4h"),
            ("90m", "90m"),
            ("2w", "14d"),
            ("1w2d", "9d"),
            ("1y 6mo", "1y6mo"),
            ("4h1y", "1y4h"),
            ("1d1d", "2d"),
            (" 12h ", "12h"),
            ("0d", "0d"),
            ("1mo1m", "1mo1m"),
        ] {
            assert_eq!(span(input).to_string(), canonical, "{input}");
        }
        assert_eq!(
            span("1y2mo3d4h5m"),
            CalendarSpan {
                years: 1,
                months: 2,
                days: 3,
                hours: 4,
                minutes: 5
            }
        );
        assert_eq!("".parse::<CalendarSpan>(), Err(SpanError::Empty));
        assert_eq!(
            "30".parse::<CalendarSpan>(),
            Err(SpanError::NoUnit("30".into()))
        );
        for bad in ["1M", "1x", "d", "1.5d", "-1d", "1 d d", "1s", "1mon"] {
            assert!(
                matches!(bad.parse::<CalendarSpan>(), Err(SpanError::Syntax(_))),
                "{bad}"
            );
        }
        for big in ["99999999999d", "4294967295w", "4294967295d1d"] {
            assert!(
                matches!(big.parse::<CalendarSpan>(), Err(SpanError::TooLarge(_))),
                "{big}"
            );
        }
    }

    #[test]
    fn subtracts_on_the_calendar_with_overflow() {
        let utc = TimeZone::UTC;
        for (from, by, want) in [
            // Go's AddDate: 2016-02-31 does not exist and becomes 2016-03-02.
            ("2016-03-31T10:00:00Z", "1mo", "2016-03-02T10:00:00Z"),
            ("2015-03-31T10:00:00Z", "1mo", "2015-03-03T10:00:00Z"),
            ("2016-02-29T10:00:00Z", "1y", "2015-03-01T10:00:00Z"),
            ("2016-01-31T10:00:00Z", "2mo", "2015-12-01T10:00:00Z"),
            ("2016-01-01T01:00:00Z", "1d2h", "2015-12-30T23:00:00Z"),
            ("2016-01-18T12:02:03Z", "1y2mo3d3h", "2014-11-15T09:02:03Z"),
            ("2016-01-01T00:30:00Z", "45m", "2015-12-31T23:45:00Z"),
            ("2016-01-01T00:00:00Z", "2w", "2015-12-18T00:00:00Z"),
        ] {
            assert_eq!(
                span(by).before(ts(from), &utc),
                Some(ts(want)),
                "{from} - {by}"
            );
        }
        // Out of the representable range: before everything.
        assert_eq!(
            span("20000y").before(ts("2016-01-01T00:00:00Z"), &utc),
            None
        );
        assert!(span("9999y")
            .before(ts("2016-01-01T00:00:00Z"), &utc)
            .is_some());
    }

    #[test]
    fn days_keep_the_wall_clock_across_dst() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        // 2024-03-31 has 23 hours in Berlin: one day back from 12:00 CEST is 12:00 CET, 23 h earlier.
        assert_eq!(
            span("1d").before(ts("2024-04-01T10:00:00Z"), &berlin),
            Some(ts("2024-03-31T10:00:00Z"))
        );
        assert_eq!(
            span("1d").before(ts("2024-03-31T10:00:00Z"), &berlin),
            Some(ts("2024-03-30T11:00:00Z"))
        );
        // 24h is elapsed time, not a day.
        assert_eq!(
            span("24h").before(ts("2024-03-31T10:00:00Z"), &berlin),
            Some(ts("2024-03-30T10:00:00Z"))
        );
        // 02:30 does not exist on 2024-03-31 in Berlin: it resolves to 03:30 CEST.
        assert_eq!(
            span("1d").before(ts("2024-04-01T00:30:00Z"), &berlin),
            Some(ts("2024-03-31T01:30:00Z"))
        );
    }
}
