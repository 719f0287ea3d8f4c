//! Cron expressions and their fire times, computed the way cronie does it.
//!
//! This module owns one question: given a cron expression, an instant and a time zone, when
//! does the job fire next? It is pure. It does no I/O, never reads the clock (the caller
//! passes `after`), and knows nothing about jobs, rsync or the daemon loop. The daemon asks
//! [`Schedule::next_after`] for the next instant, sleeps until then, runs the job, and asks
//! again with the instant it just used.
//!
//! The reference is cronie, the cron daemon of Fedora, RHEL and (as `cron` derivatives go) the
//! behaviour most Linux administrators have in their heads. Where cron implementations
//! disagree, this module follows cronie so that a line copied out of a crontab means the same
//! thing here. The rules, and why each one is the way it is:
//!
//! # Syntax
//!
//! An expression is either a macro or five fields separated by spaces or tabs:
//!
//! ```text
//! minute  hour  day-of-month  month  day-of-week
//! 0-59    0-23  1-31          1-12   0-7 (0 and 7 are Sunday)
//!                             jan..dec  sun..sat
//! ```
//!
//! Each field is a comma-separated list of `*`, `*/step`, a value `a`, a range `a-b` or a
//! stepped range `a-b/step`. Names are the three-letter English abbreviations, in any case,
//! and work wherever a number does (`mon-fri`, `jan-mar/2`). A step is a plain number of at
//! least 1.
//!
//! Things cronie rejects, and so do we: a number of fields other than five (there are no
//! seconds or years), values out of range, a step of 0, empty list items (`1,,2`), negative
//! numbers, full names (`monday`), and the Quartz and Jenkins extensions `L`, `W`, `#`, `?`
//! and `H`. Each error is a [`CronError`] naming the field, the byte offset of the offending
//! token (for a caret under the expression) and what would have been accepted.
//!
//! Two forms deserve a note because other crons accept them:
//!
//! * `a/n` (a single value with a step). Many libraries read it as `a-max/n`; cronie's
//!   parser has no such form and rejects it (cronie even fixed its own man page, which had
//!   shown `0/35`). We reject it too, with a message suggesting `a-max/n`, rather than give it
//!   a meaning cronie would refuse.
//! * A reversed range `b-a` (start after end). cronie up to 1.6 rejected it; 1.7 silently
//!   accepts it as an empty set, so the job never runs, except that a day-of-week range ending
//!   in Sunday written as `0` (`fri-sun`, `5-0`) means "through 7". We reject reversed
//!   ranges (a job that can never run is a mistake worth reporting) but accept the
//!   Sunday-as-end form.
//!
//! A step larger than its range (`*/90` in the minute field) is accepted, as cronie does
//! (it only warns): it selects just the start of the range.
//!
//! Macros are `@yearly` = `@annually` (`0 0 1 1 *`), `@monthly` (`0 0 1 * *`), `@weekly`
//! (`0 0 * * 0`), `@daily` = `@midnight` (`0 0 * * *`), `@hourly` (`0 * * * *`) and
//! `@reboot` (once when the daemon starts; it has no next time). As in cronie they are
//! case-sensitive and must stand alone.
//!
//! # Which days match
//!
//! The day-of-month and day-of-week fields combine in the traditional, surprising way: if
//! either field *starts with* `*` (so `*`, but also `*/2` or `*,5`), a day matches when both
//! fields match; if both are restricted, a day matches when either does. `0 0 1 * mon` runs on
//! the 1st and on every Monday, while `0 0 */2 * mon` runs on Mondays that fall on an odd day
//! of the month (`*/2` over 1-31 is 1, 3, 5, ...). The test is on the text, not on the set of
//! values, exactly as cronie's `DOM_STAR`/`DOW_STAR` flags are: `1-31` is "restricted" even
//! though it selects every day.
//!
//! # Time zones and daylight saving time
//!
//! Fields are matched against local civil time in the time zone the caller passes. Local time
//! is not a straight line: once a year an hour (or half an hour, in Australia/Lord_Howe) is
//! skipped, and once a year one is repeated. cronie (since 1.4, inheriting Vixie cron 4's
//! logic) tracks a "virtual" local clock and distinguishes two kinds of job by their text:
//!
//! * A **fixed-time job** is one whose minute and hour fields both do not start with `*`
//!   (`30 2 * * *`, and every macro except `@hourly`, whose hour is `*`; `@reboot` has no
//!   time at all but, lacking star flags in cronie too, reports fixed-time).
//!   [`Schedule::is_fixed_time`] tells which kind a schedule is.
//!   * When the clock springs forward over its time, it runs once, at the first instant after
//!     the gap (the transition itself). `0,30 2 * * *` on a 02:00→03:00 night gives a single
//!     run at 03:00.
//!   * When an hour repeats, it runs only on the first pass (the earlier instant).
//! * A **wildcard job** (minute or hour starts with `*`: `*/15 * * * *`, `0 * * * *`,
//!   `@hourly`) follows real time: minutes inside a gap simply do not happen, and in a
//!   repeated hour it runs on both passes.
//!
//! cronie only applies these rules to jumps up to three hours: a larger jump is "the clock
//! was changed", after which it resynchronises without catching up (forward) and without
//! suppressing repeats (backward). We mirror that, as we mirror that a forward jump of at most
//! four minutes is caught up for wildcard jobs too. No current zone has such jumps, but
//! historical ones (and Pacific/Apia's skipped day in 2011) do.
//!
//! Whatever the zone, the fire times returned are strictly increasing in real time, fall on
//! local minute boundaries (seconds 0) and lie strictly after `after`.
//!
//! # Where we knowingly differ from cronie
//!
//! * cronie's spring-forward catch-up starts a fixed-time job once per skipped matching
//!   minute, so `0,30 2 * * *` runs twice in a row at 03:00 (its queue is drained between the
//!   virtual minutes). A schedule yields instants, and two runs at one instant are one run.
//!   cronie's catch-up is also best-effort: if it overruns the real minute it drops the rest.
//! * The catch-up and the repeat suppression are computed from the time zone's transitions,
//!   not from a daemon's memory. A daemon that starts in the middle of a repeated hour with
//!   cronie runs fixed-time jobs on that second pass; here they stay suppressed.
//! * cronie 1.7's random values (`~`, `0~30`) are rejected: a schedule here is
//!   deterministic. Reversed ranges and `a/n` are rejected as explained above.
//!
//! # Evaluation
//!
//! [`Schedule::next_after`] never steps minute by minute. The time zone's offset is constant
//! between two transitions, so the timeline is walked segment by segment: within a segment the
//! first matching civil time is found by skipping whole fields (next matching month, then day,
//! then hour, then minute), which costs a few dozen steps even for `@yearly`; only at the
//! segment's end do the gap and fold rules come into play. An expression that can never fire
//! (`0 0 30 2 *`) is recognised when parsed; otherwise the search gives up after
//! [`HORIZON_YEARS`] years, which is more than the longest wait any valid expression can have
//! (February 29th on a given weekday, at most 40 years apart).

pub mod format;
mod parse;
pub mod plan;

use std::fmt;

use jiff::{
    civil::DateTime,
    tz::{Offset, TimeZone},
    SignedDuration, Timestamp,
};

/// How far ahead [`Schedule::next_after`] searches before concluding there is no next time.
pub const HORIZON_YEARS: i32 = 100;

/// A parsed cron expression or macro.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    expr: String,
    kind: Kind,
    fixed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Reboot,
    Cron(Fields),
}

/// The five fields as bit sets: bit `v` is set when value `v` is selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    minutes: u64,
    hours: u64,
    /// Bits 1..=31.
    days: u64,
    /// Bits 1..=12.
    months: u64,
    /// Bits 0..=6, Sunday is 0 (a 7 in the expression is folded into 0).
    weekdays: u64,
    /// Both day fields restricted: a day matches when either matches (else both must).
    day_or: bool,
}

/// Why an expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    /// "minute" | "hour" | "day-of-month" | "month" | "day-of-week", or None for
    /// whole-expression problems.
    pub field: Option<&'static str>,
    /// Byte offset within the trimmed expression of the offending token (for a caret). For a
    /// wrong field count it points at the first surplus field, if any; otherwise it is 0 for
    /// whole-expression problems.
    pub offset: usize,
    /// What is wrong and what is allowed, starting in lower case.
    pub message: String,
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{field} field: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for CronError {}

impl Schedule {
    /// Parses a 5-field cron expression or a macro. Leading/trailing whitespace is trimmed.
    pub fn parse(expr: &str) -> Result<Schedule, CronError> {
        let expr = expr.trim();
        let parsed = parse::parse(expr)?;
        Ok(Schedule {
            expr: expr.to_string(),
            kind: parsed.kind,
            fixed: parsed.fixed,
        })
    }

    /// The expression as written (trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// True for `@reboot` (runs once when the daemon starts; has no next time).
    pub fn is_reboot(&self) -> bool {
        self.kind == Kind::Reboot
    }

    /// True when the minute and hour fields do not start with `*` (a fixed-time job, e.g.
    /// `30 2 * * *`, `@daily`). All macros but `@hourly` count as fixed-time.
    pub fn is_fixed_time(&self) -> bool {
        self.fixed
    }

    /// The first fire instant strictly after `after`, evaluated in `tz`. None for `@reboot`,
    /// for an expression that can never fire (e.g. `0 0 30 2 *`), and when nothing fires
    /// within [`HORIZON_YEARS`] years or before the end of representable time.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let Kind::Cron(fields) = &self.kind else {
            return None;
        };
        if !fields.can_ever_fire() {
            return None;
        }
        Walk {
            fields,
            fixed: self.fixed,
            tz,
        }
        .next_after(after)
    }

    /// The next `n` fire instants after `after` (fewer if the schedule runs out).
    pub fn upcoming(&self, after: Timestamp, tz: &TimeZone, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut cursor = after;
        while out.len() < n {
            match self.next_after(cursor, tz) {
                Some(t) => {
                    out.push(t);
                    cursor = t;
                }
                None => break,
            }
        }
        out
    }
}

/// A local civil time to the minute. The derived order is chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Civil {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
}

impl Civil {
    /// The minute containing `dt` (seconds dropped).
    fn floor(dt: DateTime) -> Civil {
        Civil {
            year: i32::from(dt.year()),
            month: dt.month() as u32,
            day: dt.day() as u32,
            hour: dt.hour() as u32,
            minute: dt.minute() as u32,
        }
    }

    /// The first minute boundary at or after `dt`.
    fn ceil(dt: DateTime) -> Civil {
        let c = Civil::floor(dt);
        if dt.second() == 0 && dt.subsec_nanosecond() == 0 {
            c
        } else {
            c.next_minute()
        }
    }

    fn next_minute(mut self) -> Civil {
        self.minute += 1;
        if self.minute == 60 {
            self.minute = 0;
            self.hour += 1;
            if self.hour == 24 {
                self.hour = 0;
                self.day += 1;
                if self.day > days_in_month(self.year, self.month) {
                    self.day = 1;
                    self.month += 1;
                    if self.month == 13 {
                        self.month = 1;
                        self.year += 1;
                    }
                }
            }
        }
        self
    }

    fn to_datetime(self) -> Option<DateTime> {
        let year = i16::try_from(self.year).ok()?;
        DateTime::new(
            year,
            self.month as i8,
            self.day as i8,
            self.hour as i8,
            self.minute as i8,
            0,
            0,
        )
        .ok()
    }

    /// The instant this civil time denotes under a fixed `offset`.
    fn at(self, offset: Offset) -> Option<Timestamp> {
        offset.to_timestamp(self.to_datetime()?).ok()
    }
}

fn is_leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Day of the week, 0 = Sunday (proleptic Gregorian calendar).
fn weekday(year: i32, month: u32, day: u32) -> u32 {
    // Days since 1970-01-01 by the usual era-based count (March-based years).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // 1970-01-01 was a Thursday.
    (days + 4).rem_euclid(7) as u32
}

/// The lowest set bit of `mask` at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = mask >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

impl Fields {
    fn day_matches(&self, year: i32, month: u32, day: u32) -> bool {
        let dom = self.days & (1 << day) != 0;
        let dow = self.weekdays & (1 << weekday(year, month, day)) != 0;
        if self.day_or {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// Whether the fields match local civil time `c` (ignoring time zones).
    #[cfg(test)]
    fn matches(&self, c: Civil) -> bool {
        self.minutes & (1 << c.minute) != 0
            && self.hours & (1 << c.hour) != 0
            && self.months & (1 << c.month) != 0
            && self.day_matches(c.year, c.month, c.day)
    }

    /// False when no month in the set has a selected day (`0 0 30 2 *`). Only the AND rule
    /// can make this happen; every weekday falls on every possible date sooner or later.
    fn can_ever_fire(&self) -> bool {
        self.day_or
            || (1..=12).any(|m| {
                let longest = if m == 2 { 29 } else { days_in_month(2001, m) };
                self.months & (1 << m) != 0 && self.days & ((1u64 << (longest + 1)) - 2) != 0
            })
    }

    /// The first civil minute at or after `from` that matches, ignoring time zones, or None
    /// if there is none up to the end of `last_year` (or year 9999).
    fn next_civil(&self, from: Civil, last_year: i32) -> Option<Civil> {
        let last_year = last_year.min(9999);
        let mut c = from;
        'search: loop {
            if c.year > last_year {
                return None;
            }
            // Month.
            match next_bit(self.months, c.month) {
                Some(m) if m == c.month => {}
                Some(m) => {
                    c = Civil {
                        month: m,
                        day: 1,
                        hour: 0,
                        minute: 0,
                        ..c
                    }
                }
                None => {
                    c = Civil {
                        year: c.year + 1,
                        month: 1,
                        day: 1,
                        hour: 0,
                        minute: 0,
                    };
                    continue 'search;
                }
            }
            // Day.
            let last_day = days_in_month(c.year, c.month);
            while !(c.day <= last_day && self.day_matches(c.year, c.month, c.day)) {
                if c.day >= last_day {
                    c = next_month(c);
                    continue 'search;
                }
                c = Civil {
                    day: c.day + 1,
                    hour: 0,
                    minute: 0,
                    ..c
                };
            }
            // Hour.
            match next_bit(self.hours, c.hour) {
                Some(h) if h == c.hour => {}
                Some(h) if h < 24 => {
                    c = Civil {
                        hour: h,
                        minute: 0,
                        ..c
                    }
                }
                _ => {
                    c = next_day(c);
                    continue 'search;
                }
            }
            // Minute.
            match next_bit(self.minutes, c.minute) {
                Some(m) if m < 60 => return Some(Civil { minute: m, ..c }),
                _ => {
                    c = if c.hour == 23 {
                        next_day(c)
                    } else {
                        Civil {
                            hour: c.hour + 1,
                            minute: 0,
                            ..c
                        }
                    };
                }
            }
        }
    }
}

fn next_month(c: Civil) -> Civil {
    if c.month == 12 {
        Civil {
            year: c.year + 1,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
        }
    } else {
        Civil {
            month: c.month + 1,
            day: 1,
            hour: 0,
            minute: 0,
            ..c
        }
    }
}

fn next_day(c: Civil) -> Civil {
    if c.day >= days_in_month(c.year, c.month) {
        next_month(c)
    } else {
        Civil {
            day: c.day + 1,
            hour: 0,
            minute: 0,
            ..c
        }
    }
}

/// Forward clock jumps shorter than this are caught up for fixed-time jobs (cronie's
/// "medium" and "small" wake-ups); longer ones count as the clock being set.
const MAX_CATCH_UP: SignedDuration = SignedDuration::from_mins(180);
/// Forward jumps up to this are caught up for wildcard jobs too (cronie's "small" wake-up,
/// meant for a daemon that woke up a few minutes late).
const MAX_WILDCARD_CATCH_UP: SignedDuration = SignedDuration::from_mins(4);
/// Backward jumps up to this suppress the repeated runs of fixed-time jobs; cronie treats a
/// longer one as the clock being set and resynchronises.
const MAX_REPEAT_SUPPRESSION: SignedDuration = SignedDuration::from_mins(181);
/// A bound on the transitions crossed in one search (about two a year in DST zones).
const MAX_SEGMENTS: usize = 4 * HORIZON_YEARS as usize + 64;

/// One `next_after` search.
struct Walk<'a> {
    fields: &'a Fields,
    fixed: bool,
    tz: &'a TimeZone,
}

impl Walk<'_> {
    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let last_year = i32::from(self.tz.to_datetime(after).year()) + HORIZON_YEARS;
        let mut offset = self.tz.to_offset(after);
        let mut seg_start = after;
        // Only whole minutes strictly after `after` are candidates.
        let mut lo = Civil::floor(offset.to_datetime(after)).next_minute();
        if self.fixed {
            // `after` may sit in the second pass of a repeated hour, whose minutes a
            // fixed-time job has already had.
            let probe = after
                .checked_add(SignedDuration::from_nanos(1))
                .unwrap_or(after);
            if let Some(tr) = self.tz.preceding(probe).next() {
                if let Some(seen) = self.repeat_floor(tr.timestamp(), tr.offset()) {
                    lo = lo.max(seen);
                }
            }
        }
        // First match at or after `memo.0` is `memo.1`: every search from a lower bound in
        // between gives the same answer, which spares rescanning for each segment.
        let mut memo: Option<(Civil, Civil)> = None;
        for _ in 0..MAX_SEGMENTS {
            let found = match memo {
                Some((from, hit)) if from <= lo && lo <= hit => hit,
                _ => {
                    let hit = self.fields.next_civil(lo, last_year)?;
                    memo = Some((lo, hit));
                    hit
                }
            };
            let Some(tr) = self.tz.following(seg_start).next() else {
                return found.at(offset);
            };
            let (edge, next_offset) = (tr.timestamp(), tr.offset());
            // Civil times of this segment are those before `end` (exclusive).
            let end = offset.to_datetime(edge);
            let found_dt = found.to_datetime()?;
            if found_dt < end {
                return found.at(offset);
            }
            let jump = next_offset.duration_since(offset);
            if jump.is_positive() {
                // Spring forward: civil times in [end, resume) do not exist.
                let resume = next_offset.to_datetime(edge);
                let limit = if self.fixed {
                    MAX_CATCH_UP
                } else {
                    MAX_WILDCARD_CATCH_UP
                };
                let catch_up = if self.fixed {
                    jump < limit
                } else {
                    jump <= limit
                };
                if catch_up && found_dt < resume {
                    return Civil::ceil(resume).at(next_offset);
                }
            }
            lo = Civil::ceil(next_offset.to_datetime(edge));
            if let Some(seen) = self.repeat_floor(edge, next_offset) {
                lo = lo.max(seen);
            }
            offset = next_offset;
            seg_start = edge;
        }
        None
    }

    /// For a fixed-time job entering a segment at `edge` (new offset `new`) after a
    /// moderate fall back: the civil time before which every minute was already seen on the
    /// first pass, and must not fire again.
    fn repeat_floor(&self, edge: Timestamp, new: Offset) -> Option<Civil> {
        if !self.fixed {
            return None;
        }
        let before = self
            .tz
            .to_offset(edge.checked_sub(SignedDuration::from_secs(1)).ok()?);
        let back = before.duration_since(new);
        (back.is_positive() && back <= MAX_REPEAT_SUPPRESSION)
            .then(|| Civil::ceil(before.to_datetime(edge)))
    }
}

#[cfg(test)]
mod tests;
