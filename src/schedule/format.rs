//! How instants are written for people and machines: RFC 3339 with the zone's offset.
//!
//! Must not: read the clock.

use jiff::{tz::TimeZone, Timestamp};

/// RFC 3339 with the zone's offset, seconds always shown: `2026-03-29T03:00:00+02:00`.
pub fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}
