//! The scheduler's pure decision: given a job's schedule, how far its slots have been handled,
//! and the current time, what is due. No clock, no threads, no I/O: tests inject `now`.
//!
//! Each job carries `covered_until`: every slot at or before it has been handled (run, skipped
//! because the job was still running, or dropped as missed). That one instant gives the rules the
//! daemon promises:
//! - a slot is never run twice: the next candidate is always strictly after `covered_until`, also
//!   after the wall clock steps backwards;
//! - slots missed while the daemon was down or the machine slept collapse into one run
//!   (`on_missed: run_once`) or are dropped (`skip`);
//! - a slot reached on time always runs.
//!
//! One exception to "never twice": a `covered_until` more than [`FUTURE_TOLERANCE`] ahead of the
//! wall clock was written while the clock was wrong (ahead) and has been stepped back since.
//! Trusting it would run nothing, silently, until the clock catches up (also across restarts,
//! since it is persisted); [`resume_from_now`] says to resume from `now` instead, and the
//! daemon logs it loudly. A step back within the tolerance (NTP corrections) keeps the rule.

use std::time::Duration;

use jiff::{tz::TimeZone, Timestamp};

use crate::config::OnMissed;
use crate::schedule::Schedule;

/// A slot reached within this much of its time is on time, not missed.
pub const ON_TIME_GRACE: Duration = Duration::from_secs(60);
/// How far `covered_until` may lie ahead of the wall clock before it is taken as written by a
/// clock that was wrong. Small steps (NTP) stay within it; a wrong clock is usually off by more.
pub const FUTURE_TOLERANCE: Duration = Duration::from_secs(300);
/// Counting missed slots stops here (a `* * * * *` job offline for months).
const MAX_COUNT: u32 = 1_000_000;

/// What is due for one job at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The slot to run now, if any (the latest slot at or before `now`).
    pub run: Option<Timestamp>,
    /// Slots passed over without a run (missed while down or asleep, or dropped by `skip`).
    pub missed: u32,
    /// The new `covered_until`.
    pub covered_until: Timestamp,
}

/// Decides what is due. `None` when nothing is due yet (the next slot is after `now`).
pub fn due(
    schedule: &Schedule,
    tz: &TimeZone,
    covered_until: Timestamp,
    now: Timestamp,
    on_missed: OnMissed,
) -> Option<Due> {
    let first = schedule.next_after(covered_until, tz)?;
    if first > now {
        return None;
    }
    let mut latest = first;
    let mut count: u32 = 1;
    while count < MAX_COUNT {
        match schedule.next_after(latest, tz) {
            Some(t) if t <= now => {
                latest = t;
                count += 1;
            }
            _ => break,
        }
    }
    let on_time = now.duration_since(latest).unsigned_abs() <= ON_TIME_GRACE;
    let run = (on_time || on_missed == OnMissed::RunOnce).then_some(latest);
    Some(Due {
        run,
        missed: count - u32::from(run.is_some()),
        covered_until: latest,
    })
}

/// The next instant worth waking for this job: its next slot after both `covered_until` and
/// `now` (a clock stepped back does not make old slots due again).
pub fn next_wake(
    schedule: &Schedule,
    tz: &TimeZone,
    covered_until: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    schedule
        .next_after(covered_until.max(now), tz)
        .or_else(|| schedule.next_after(covered_until, tz))
}

/// `Some(now)` when `covered_until` is more than [`FUTURE_TOLERANCE`] after `now`: the position
/// was written by a clock that was ahead, and scheduling resumes from `now` (the caller logs
/// it). `None` when the position is trustworthy.
pub fn resume_from_now(covered_until: Timestamp, now: Timestamp) -> Option<Timestamp> {
    let ahead = covered_until.duration_since(now);
    (ahead.is_positive() && ahead.unsigned_abs() > FUTURE_TOLERANCE).then_some(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn utc() -> TimeZone {
        TimeZone::UTC
    }

    fn every_minute() -> Schedule {
        Schedule::parse("* * * * *").unwrap()
    }

    #[test]
    fn nothing_due_before_the_next_slot() {
        let s = Schedule::parse("30 2 * * *").unwrap();
        assert_eq!(
            due(
                &s,
                &utc(),
                t("2026-01-01T00:00:00Z"),
                t("2026-01-01T02:29:59Z"),
                OnMissed::RunOnce
            ),
            None
        );
    }

    #[test]
    fn an_on_time_slot_runs_once_and_is_covered() {
        let s = Schedule::parse("30 2 * * *").unwrap();
        let d = due(
            &s,
            &utc(),
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T02:30:00.004Z"),
            OnMissed::Skip,
        )
        .unwrap();
        assert_eq!(
            d,
            Due {
                run: Some(t("2026-01-01T02:30:00Z")),
                missed: 0,
                covered_until: t("2026-01-01T02:30:00Z")
            }
        );
        // Asking again right away: nothing (never run a slot twice).
        assert_eq!(
            due(
                &s,
                &utc(),
                d.covered_until,
                t("2026-01-01T02:30:01Z"),
                OnMissed::Skip
            ),
            None
        );
    }

    #[test]
    fn missed_slots_collapse_into_one_run() {
        // Down from 10:00:30 to 10:05:20: slots 10:01..10:05 missed.
        let d = due(
            &every_minute(),
            &utc(),
            t("2026-01-01T10:00:30Z"),
            t("2026-01-01T10:05:20Z"),
            OnMissed::RunOnce,
        )
        .unwrap();
        assert_eq!(d.run, Some(t("2026-01-01T10:05:00Z")));
        assert_eq!(d.missed, 4);
        assert_eq!(d.covered_until, t("2026-01-01T10:05:00Z"));
    }

    #[test]
    fn skip_drops_missed_slots_but_not_an_on_time_one() {
        let s = Schedule::parse("0 * * * *").unwrap();
        // Asleep from 07:10 to 10:30: 08:00, 09:00, 10:00 missed, 10:00 is 30 min late.
        let d = due(
            &s,
            &utc(),
            t("2026-01-01T07:10:00Z"),
            t("2026-01-01T10:30:00Z"),
            OnMissed::Skip,
        )
        .unwrap();
        assert_eq!(
            (d.run, d.missed, d.covered_until),
            (None, 3, t("2026-01-01T10:00:00Z"))
        );
        let d = due(
            &s,
            &utc(),
            t("2026-01-01T07:10:00Z"),
            t("2026-01-01T10:30:00Z"),
            OnMissed::RunOnce,
        )
        .unwrap();
        assert_eq!((d.run, d.missed), (Some(t("2026-01-01T10:00:00Z")), 2));
        // Woken 20 s late for 11:00: on time, runs even with skip.
        let d = due(
            &s,
            &utc(),
            d.covered_until,
            t("2026-01-01T11:00:20Z"),
            OnMissed::Skip,
        )
        .unwrap();
        assert_eq!((d.run, d.missed), (Some(t("2026-01-01T11:00:00Z")), 0));
    }

    #[test]
    fn a_clock_stepped_back_does_not_repeat_slots() {
        let s = every_minute();
        let covered = t("2026-01-01T12:00:00Z");
        // The clock jumps back an hour: nothing is due, and the next wake is after `now`.
        let now = t("2026-01-01T11:00:10Z");
        assert_eq!(due(&s, &utc(), covered, now, OnMissed::RunOnce), None);
        assert_eq!(
            next_wake(&s, &utc(), covered, now),
            Some(t("2026-01-01T12:01:00Z"))
        );
        // Back to normal, the next new slot runs.
        let d = due(
            &s,
            &utc(),
            covered,
            t("2026-01-01T12:01:00Z"),
            OnMissed::RunOnce,
        )
        .unwrap();
        assert_eq!(d.run, Some(t("2026-01-01T12:01:00Z")));
    }

    #[test]
    fn a_position_far_in_the_future_resumes_from_now() {
        let s = every_minute();
        // Written while the clock was a day ahead; the clock has been stepped back since.
        let covered = t("2026-01-02T12:00:00Z");
        let now = t("2026-01-01T12:00:30Z");
        let resumed = resume_from_now(covered, now).expect("a day ahead is not trusted");
        assert_eq!(resumed, now);
        // From there the schedule runs again at its next slot, not a day later.
        assert_eq!(
            next_wake(&s, &utc(), resumed, now),
            Some(t("2026-01-01T12:01:00Z"))
        );
        let d = due(
            &s,
            &utc(),
            resumed,
            t("2026-01-01T12:01:00Z"),
            OnMissed::RunOnce,
        )
        .unwrap();
        assert_eq!(d.run, Some(t("2026-01-01T12:01:00Z")));
        // Within the tolerance (an NTP step), or in the past: trusted as is.
        assert_eq!(resume_from_now(t("2026-01-01T12:04:30Z"), now), None);
        assert_eq!(resume_from_now(t("2026-01-01T11:00:00Z"), now), None);
        assert_eq!(resume_from_now(now, now), None);
        assert_eq!(
            resume_from_now(t("2026-01-01T12:05:31Z"), now),
            Some(now),
            "just beyond the tolerance"
        );
    }

    #[test]
    fn a_clock_jumping_forward_counts_as_missed() {
        let s = Schedule::parse("*/10 * * * *").unwrap();
        let d = due(
            &s,
            &utc(),
            t("2026-01-01T12:00:00Z"),
            t("2026-01-01T15:05:00Z"),
            OnMissed::RunOnce,
        )
        .unwrap();
        // 12:10 … 15:00 is 18 slots: the latest runs, 17 are missed.
        assert_eq!((d.run, d.missed), (Some(t("2026-01-01T15:00:00Z")), 17));
    }

    #[test]
    fn wake_times_follow_the_schedule() {
        let s = Schedule::parse("30 2 * * *").unwrap();
        let covered = t("2026-01-01T02:30:00Z");
        assert_eq!(
            next_wake(&s, &utc(), covered, t("2026-01-01T02:30:01Z")),
            Some(t("2026-01-02T02:30:00Z"))
        );
        // A reboot-only schedule never wakes the loop.
        assert_eq!(
            next_wake(
                &Schedule::parse("@reboot").unwrap(),
                &utc(),
                covered,
                covered
            ),
            None
        );
    }

    #[test]
    fn dst_catch_up_slot_is_due_once() {
        let tz = TimeZone::get("Europe/Amsterdam").unwrap();
        let s = Schedule::parse("30 2 * * *").unwrap();
        // 2026-03-29: 02:00 → 03:00. The skipped 02:30 runs at 03:00 (01:00Z), once.
        let covered = t("2026-03-28T12:00:00Z");
        let d = due(
            &s,
            &tz,
            covered,
            t("2026-03-29T01:00:00.010Z"),
            OnMissed::Skip,
        )
        .unwrap();
        assert_eq!((d.run, d.missed), (Some(t("2026-03-29T01:00:00Z")), 0));
        assert_eq!(
            due(
                &s,
                &tz,
                d.covered_until,
                t("2026-03-29T01:30:00Z"),
                OnMissed::Skip
            ),
            None
        );
    }
}
