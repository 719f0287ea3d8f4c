//! Retention: which snapshots a policy keeps, and why. restic's `forget` semantics, exactly.
//!
//! [`apply`] is a pure function from a policy, a list of snapshot points, a time zone and "now" to
//! one [`Decision`] per point. It reads no clock and touches no files; the snapshot store lists its
//! snapshots, calls it, and deletes what it says to remove. It imports nothing from the rest of the
//! crate, so config, the engine and tests can all use it.
//!
//! The rules, in restic's words and order (restic ≥ 0.16):
//! 1. Points are sorted newest first; equal times keep their input order (a stable sort).
//! 2. **Count rules** (`keep_last`, `keep_hourly` … `keep_yearly`) are independent of each other.
//!    Walking from the newest point to the oldest, a rule with budget left keeps the first point
//!    of every period it has not seen yet and spends one unit of its budget. A point may be kept
//!    by several rules and is charged to each (`keep_daily: 7, keep_weekly: 5` keeps 7 days and
//!    the weeks among them count towards the 5). Periods without points are not counted: "the
//!    last 7 days *that have* snapshots". `keep_last` puts every point in a period of its own.
//! 3. **Oldest**: a rule that still has budget when the walk reaches the oldest point keeps that
//!    point too (reason `oldest daily snapshot`), so a young repository keeps its full history.
//!    With [`Count::All`] this always applies.
//! 4. **`keep_within D`** keeps every point strictly newer than `latest − D`, where `latest` is
//!    the newest point *not in the future* of `now` (so a snapshot with a clock gone wrong cannot
//!    push the window ahead) and `− D` is calendar arithmetic ([`CalendarSpan::before`]). Points
//!    in the future are inside every window.
//! 5. **`keep_within_hourly D`** … `keep_within_yearly D`: inside the same kind of window, the
//!    newest point of every period, with no count (and the oldest point, if it is in the window).
//! 6. **`keep_tags`**: a point is kept when it has every tag of one of the lists (`""` matches an
//!    untagged point). Kept for restic parity; backupmanager's snapshots carry no tags yet.
//! 7. A point is kept when any rule keeps it. A policy with no rule keeps nothing: callers must
//!    refuse such a policy ([`Policy::keeps_something`]) rather than delete everything.
//!
//! Periods (hour, day, ISO week, month, year) are taken on the wall clock of the zone passed in,
//! so the same snapshots can fall into different days in `Europe/Berlin` and in UTC. restic uses
//! each snapshot's recorded UTC offset instead; with one zone for all, a DST change cannot split
//! or merge a day. The reasons are restic's strings, except that spans print in this config's
//! notation (`1mo` for a month, `m` for minutes), where restic writes `1m` for a month.
//!
//! Why restic and not borg: borg 1.2 lets a point kept by an earlier rule use up a later rule's
//! period without counting it (`keep_daily: 7, keep_weekly: 4` is 7 days *plus* 4 further weeks)
//! and measures `keep_within` from the wall clock, so a host that stops backing up would age out
//! its last snapshots. restic's rules are independent and anchored at the newest snapshot.

mod period;
mod span;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use period::Period;
pub use span::{CalendarSpan, SpanError};

/// How many periods a count rule keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// The newest point of each of the last N periods that have points. `N(0)` keeps nothing
    /// (the config never produces it).
    N(u32),
    /// The newest point of every period, however many.
    All,
}

/// A retention policy. Every rule is optional; the result is the union of what each keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: Option<Count>,
    pub keep_hourly: Option<Count>,
    pub keep_daily: Option<Count>,
    pub keep_weekly: Option<Count>,
    pub keep_monthly: Option<Count>,
    pub keep_yearly: Option<Count>,
    pub keep_within: Option<CalendarSpan>,
    pub keep_within_hourly: Option<CalendarSpan>,
    pub keep_within_daily: Option<CalendarSpan>,
    pub keep_within_weekly: Option<CalendarSpan>,
    pub keep_within_monthly: Option<CalendarSpan>,
    pub keep_within_yearly: Option<CalendarSpan>,
    /// Keep points carrying all tags of any one list. Not configurable yet (snapshots have no tags).
    pub keep_tags: Vec<Vec<String>>,
}

impl Policy {
    /// Whether any rule can keep a point. A policy that cannot would remove every snapshot.
    pub fn keeps_something(&self) -> bool {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        let spans = [
            self.keep_within,
            self.keep_within_hourly,
            self.keep_within_daily,
            self.keep_within_weekly,
            self.keep_within_monthly,
            self.keep_within_yearly,
        ];
        counts
            .iter()
            .any(|c| matches!(c, Some(Count::All) | Some(Count::N(1..))))
            || spans.iter().flatten().any(|s| !s.is_zero())
            || !self.keep_tags.is_empty()
    }

    /// The count rules in restic's order, with their reasons.
    fn count_rules(&self) -> [(Option<Count>, Bucket, &'static str); 6] {
        [
            (self.keep_last, Bucket::Each, "last snapshot"),
            (
                self.keep_hourly,
                Bucket::Of(Period::Hour),
                "hourly snapshot",
            ),
            (self.keep_daily, Bucket::Of(Period::Day), "daily snapshot"),
            (
                self.keep_weekly,
                Bucket::Of(Period::Week),
                "weekly snapshot",
            ),
            (
                self.keep_monthly,
                Bucket::Of(Period::Month),
                "monthly snapshot",
            ),
            (
                self.keep_yearly,
                Bucket::Of(Period::Year),
                "yearly snapshot",
            ),
        ]
    }

    /// The `keep_within_<period>` rules in restic's order.
    fn within_rules(&self) -> [(Option<CalendarSpan>, Period); 5] {
        [
            (self.keep_within_hourly, Period::Hour),
            (self.keep_within_daily, Period::Day),
            (self.keep_within_weekly, Period::Week),
            (self.keep_within_monthly, Period::Month),
            (self.keep_within_yearly, Period::Year),
        ]
    }
}

/// One snapshot as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// The caller's name for it (a snapshot directory); returned untouched.
    pub id: String,
    pub time: Timestamp,
    /// For `keep_tags` only.
    pub tags: Vec<String>,
}

impl Point {
    /// A point without tags.
    pub fn new(id: impl Into<String>, time: Timestamp) -> Point {
        Point {
            id: id.into(),
            time,
            tags: Vec::new(),
        }
    }
}

/// What [`apply`] decided for one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    pub time: Timestamp,
    pub keep: bool,
    /// Every rule that keeps it, in restic's wording and order ("daily snapshot", "within 2d",
    /// "oldest yearly snapshot"); empty when it is to be removed.
    pub reasons: Vec<String>,
}

/// How a count rule groups points.
#[derive(Debug, Clone, Copy)]
enum Bucket {
    /// Every point is its own group (`keep_last`).
    Each,
    Of(Period),
}

/// Decides, for every point, whether `policy` keeps it. The result is in newest-first order (ties
/// in input order) and has one entry per point. Periods are computed in `tz`; `now` only decides
/// which points are in the future (see the module docs).
pub fn apply(policy: &Policy, points: &[Point], tz: &TimeZone, now: Timestamp) -> Vec<Decision> {
    let mut order: Vec<&Point> = points.iter().collect();
    order.sort_by_key(|p| std::cmp::Reverse(p.time));

    let latest = order.iter().map(|p| p.time).find(|t| *t <= now);
    // `None`: the window reaches back before any time (no point in the past, or a huge span).
    let cutoff = |span: &CalendarSpan| latest.and_then(|l| span.before(l, tz));
    let inside = |cutoff: Option<Timestamp>, t: Timestamp| cutoff.is_none_or(|c| t > c);

    // (budget left, None = all; grouping; last period seen; reason)
    let mut counts: Vec<(Option<u32>, Bucket, Option<i64>, &str)> = policy
        .count_rules()
        .into_iter()
        .filter_map(|(count, bucket, reason)| match count? {
            Count::N(0) => None,
            Count::N(n) => Some((Some(n), bucket, None, reason)),
            Count::All => Some((None, bucket, None, reason)),
        })
        .collect();
    let within = policy
        .keep_within
        .filter(|s| !s.is_zero())
        .map(|s| (cutoff(&s), format!("within {s}")));
    // (window start, period, last period seen, span as written in reasons)
    let mut within_periods: Vec<(Option<Timestamp>, Period, Option<i64>, String)> = policy
        .within_rules()
        .into_iter()
        .filter_map(|(span, period)| {
            let span = span.filter(|s| !s.is_zero())?;
            Some((cutoff(&span), period, None, span.to_string()))
        })
        .collect();

    let oldest = order.len().saturating_sub(1);
    let mut out = Vec::with_capacity(order.len());
    for (nr, point) in order.into_iter().enumerate() {
        let wall = tz.to_datetime(point.time);
        let mut reasons = Vec::new();

        for tags in &policy.keep_tags {
            if has_tags(point, tags) {
                reasons.push(format!("has tags [{}]", tags.join(", ")));
            }
        }
        if let Some((cutoff, reason)) = &within {
            if inside(*cutoff, point.time) {
                reasons.push(reason.clone());
            }
        }
        for (left, bucket, last, reason) in &mut counts {
            if *left == Some(0) {
                continue;
            }
            let key = match bucket {
                Bucket::Each => nr as i64,
                Bucket::Of(p) => p.key(wall),
            };
            let new_period = *last != Some(key);
            if new_period || nr == oldest {
                *last = Some(key);
                if let Some(n) = left {
                    *n -= 1;
                }
                reasons.push(if new_period {
                    reason.to_string()
                } else {
                    format!("oldest {reason}")
                });
            }
        }
        for (cutoff, period, last, span) in &mut within_periods {
            if !inside(*cutoff, point.time) {
                continue;
            }
            let key = period.key(wall);
            let new_period = *last != Some(key);
            if new_period || nr == oldest {
                *last = Some(key);
                let oldest = if new_period { "" } else { "oldest " };
                reasons.push(format!("{oldest}{} within {span}", period.adjective()));
            }
        }

        out.push(Decision {
            id: point.id.clone(),
            time: point.time,
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    out
}

/// restic's `HasTags`: every tag of the list is on the point; `""` matches a point without tags.
fn has_tags(point: &Point, tags: &[String]) -> bool {
    for tag in tags {
        if tag.is_empty() && point.tags.is_empty() {
            return true;
        }
        if !point.tags.contains(tag) {
            return false;
        }
    }
    true
}
