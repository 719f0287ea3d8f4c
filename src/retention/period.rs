//! Calendar periods a snapshot falls into: hour, day, ISO week, month, year, on the wall clock of
//! the zone retention is computed in.

use jiff::civil::DateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Period {
    Hour,
    Day,
    /// ISO 8601 week: Monday to Sunday, numbered within the ISO week-year (2016-01-01, a Friday,
    /// is in week 53 of 2015).
    Week,
    Month,
    Year,
}

impl Period {
    /// A number naming the period `dt` is in; equal exactly when two times share the period.
    pub(super) fn key(self, dt: DateTime) -> i64 {
        let (y, m, d, h) = (
            i64::from(dt.year()),
            i64::from(dt.month()),
            i64::from(dt.day()),
            i64::from(dt.hour()),
        );
        match self {
            Period::Hour => ((y * 100 + m) * 100 + d) * 100 + h,
            Period::Day => (y * 100 + m) * 100 + d,
            Period::Week => {
                let w = dt.date().iso_week_date();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Period::Month => y * 100 + m,
            Period::Year => y,
        }
    }

    /// The word restic uses in its reasons: "daily snapshot", "weekly within 1mo".
    pub(super) fn adjective(self) -> &'static str {
        match self {
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(year: i64, week: i64) -> i64 {
        year * 100 + week
    }

    fn key(p: Period, s: &str) -> i64 {
        p.key(s.parse().unwrap())
    }

    #[test]
    fn iso_weeks_cross_year_boundaries() {
        // Thursday 2015-12-31 to Sunday 2016-01-03 are all in 2015-W53; Monday 2016-01-04 starts W01.
        for d in [
            "2015-12-28T00:00",
            "2015-12-31T23:59",
            "2016-01-01T00:00",
            "2016-01-03T23:59",
        ] {
            assert_eq!(key(Period::Week, d), iso(2015, 53), "{d}");
        }
        assert_eq!(key(Period::Week, "2016-01-04T00:00"), iso(2016, 1));
        // Monday 2024-12-30 is already in 2025-W01.
        assert_eq!(key(Period::Week, "2024-12-30T00:00"), iso(2025, 1));
        assert_eq!(key(Period::Week, "2024-12-29T23:59"), iso(2024, 52));
    }

    #[test]
    fn keys_separate_periods() {
        assert_eq!(
            key(Period::Hour, "2016-01-04T12:59"),
            key(Period::Hour, "2016-01-04T12:00")
        );
        assert_ne!(
            key(Period::Hour, "2016-01-04T12:59"),
            key(Period::Hour, "2016-01-04T13:00")
        );
        assert_ne!(
            key(Period::Day, "2016-01-04T00:00"),
            key(Period::Day, "2016-01-05T00:00")
        );
        assert_eq!(
            key(Period::Month, "2016-01-01T00:00"),
            key(Period::Month, "2016-01-31T23:59")
        );
        assert_ne!(
            key(Period::Month, "2015-12-31T23:59"),
            key(Period::Month, "2016-01-01T00:00")
        );
        assert_eq!(
            key(Period::Year, "2016-01-01T00:00"),
            key(Period::Year, "2016-12-31T23:59")
        );
    }
}
