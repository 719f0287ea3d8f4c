//! Retention rules, each case derived by hand from the rules in `src/retention/mod.rs` (restic's
//! `forget`): every rule alone, rules together, the oldest-snapshot rule, `all`, calendar
//! windows, ISO weeks across a new year, time zones and DST, equal times, snapshots in the
//! future, and a year of daily runs pruned after each one.

use backupmanager::retention::{apply, CalendarSpan, Count, Point, Policy};
use jiff::civil::date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

const LATER: &str = "2100-01-01T00:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn span(s: &str) -> CalendarSpan {
    s.parse().unwrap()
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

/// The kept points as `ID: reason, reason`, newest first; each point's id is given with it.
fn kept_ids(policy: &Policy, tz: &str, now: &str, points: &[(&str, &str)]) -> Vec<String> {
    let points: Vec<Point> = points
        .iter()
        .map(|(id, t)| Point::new(*id, ts(t)))
        .collect();
    let decisions = apply(policy, &points, &zone(tz), ts(now));
    assert_eq!(decisions.len(), points.len());
    for d in &decisions {
        assert_eq!(d.keep, !d.reasons.is_empty(), "{d:?}");
    }
    decisions
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| format!("{}: {}", d.id, d.reasons.join(", ")))
        .collect()
}

/// Like [`kept_ids`], each point named by its time.
fn kept(policy: &Policy, tz: &str, times: &[&str]) -> Vec<String> {
    let points: Vec<(&str, &str)> = times.iter().map(|t| (*t, *t)).collect();
    kept_ids(policy, tz, LATER, &points)
}

fn n(n: u32) -> Option<Count> {
    Some(Count::N(n))
}

#[test]
fn keep_last_alone() {
    let p = Policy {
        keep_last: n(3),
        ..Policy::default()
    };
    // Input order does not matter; the output is newest first.
    let times = [
        "2016-01-02T10:00:00Z",
        "2016-01-04T10:00:00Z",
        "2016-01-01T10:00:00Z",
        "2016-01-03T10:00:00Z",
        "2016-01-03T09:00:00Z",
    ];
    assert_eq!(
        kept(&p, "UTC", &times),
        [
            "2016-01-04T10:00:00Z: last snapshot",
            "2016-01-03T10:00:00Z: last snapshot",
            "2016-01-03T09:00:00Z: last snapshot",
        ]
    );
    // Fewer points than the count: all kept, none as "oldest" (every point is its own group).
    assert_eq!(
        kept(&p, "UTC", &times[..2]),
        [
            "2016-01-04T10:00:00Z: last snapshot",
            "2016-01-02T10:00:00Z: last snapshot",
        ]
    );
}

#[test]
fn period_rules_alone_keep_the_newest_of_each_period() {
    let times = [
        "2016-01-04T10:05:00Z",
        "2016-01-04T10:50:00Z",
        "2016-01-04T11:10:00Z",
        "2016-01-04T12:30:00Z",
    ];
    let hourly = |c| Policy {
        keep_hourly: n(c),
        ..Policy::default()
    };
    assert_eq!(
        kept(&hourly(2), "UTC", &times),
        [
            "2016-01-04T12:30:00Z: hourly snapshot",
            "2016-01-04T11:10:00Z: hourly snapshot",
        ]
    );

    let days = [
        "2016-01-01T08:00:00Z",
        "2016-01-01T20:00:00Z",
        "2016-01-02T08:00:00Z",
        "2016-01-02T20:00:00Z",
        "2016-01-03T08:00:00Z",
        "2016-01-03T20:00:00Z",
    ];
    let daily = Policy {
        keep_daily: n(2),
        ..Policy::default()
    };
    assert_eq!(
        kept(&daily, "UTC", &days),
        [
            "2016-01-03T20:00:00Z: daily snapshot",
            "2016-01-02T20:00:00Z: daily snapshot",
        ]
    );

    let months = [
        "2015-11-30T12:00:00Z",
        "2015-12-01T12:00:00Z",
        "2015-12-31T12:00:00Z",
        "2016-01-15T12:00:00Z",
        "2016-02-01T12:00:00Z",
    ];
    let monthly = Policy {
        keep_monthly: n(3),
        ..Policy::default()
    };
    assert_eq!(
        kept(&monthly, "UTC", &months),
        [
            "2016-02-01T12:00:00Z: monthly snapshot",
            "2016-01-15T12:00:00Z: monthly snapshot",
            "2015-12-31T12:00:00Z: monthly snapshot",
        ]
    );
    let yearly = Policy {
        keep_yearly: n(1),
        ..Policy::default()
    };
    assert_eq!(
        kept(&yearly, "UTC", &months),
        ["2016-02-01T12:00:00Z: yearly snapshot"]
    );
}

#[test]
fn daily_and_weekly_count_independently() {
    // One point a day at noon, 2016-01-01 (Fri, ISO 2015-W53) to 2016-01-12 (Tue, 2016-W02).
    let times: Vec<String> = (1..=12)
        .map(|d| format!("2016-01-{d:02}T12:00:00Z"))
        .collect();
    let times: Vec<&str> = times.iter().map(String::as_str).collect();
    let p = Policy {
        keep_daily: n(3),
        keep_weekly: n(2),
        ..Policy::default()
    };
    // The weekly rule counts the weeks of the dailies too (restic), so it ends inside them:
    // 12th (W02) and 10th (W01). borg would add two further weeks instead.
    assert_eq!(
        kept(&p, "UTC", &times),
        [
            "2016-01-12T12:00:00Z: daily snapshot, weekly snapshot",
            "2016-01-11T12:00:00Z: daily snapshot",
            "2016-01-10T12:00:00Z: daily snapshot, weekly snapshot",
        ]
    );
    let p = Policy {
        keep_daily: n(2),
        keep_weekly: n(3),
        ..Policy::default()
    };
    assert_eq!(
        kept(&p, "UTC", &times),
        [
            "2016-01-12T12:00:00Z: daily snapshot, weekly snapshot",
            "2016-01-11T12:00:00Z: daily snapshot",
            "2016-01-10T12:00:00Z: weekly snapshot",
            "2016-01-03T12:00:00Z: weekly snapshot",
        ]
    );
}

#[test]
fn a_rule_with_budget_left_keeps_the_oldest_point() {
    let times = [
        "2016-01-01T08:00:00Z",
        "2016-01-01T20:00:00Z",
        "2016-01-02T08:00:00Z",
        "2016-01-02T20:00:00Z",
        "2016-01-03T08:00:00Z",
        "2016-01-03T20:00:00Z",
    ];
    let daily = |c| Policy {
        keep_daily: n(c),
        ..Policy::default()
    };
    assert_eq!(
        kept(&daily(7), "UTC", &times),
        [
            "2016-01-03T20:00:00Z: daily snapshot",
            "2016-01-02T20:00:00Z: daily snapshot",
            "2016-01-01T20:00:00Z: daily snapshot",
            "2016-01-01T08:00:00Z: oldest daily snapshot",
        ]
    );
    // Budget used up exactly at the oldest day: the oldest point is not kept.
    assert_eq!(
        kept(&daily(3), "UTC", &times),
        [
            "2016-01-03T20:00:00Z: daily snapshot",
            "2016-01-02T20:00:00Z: daily snapshot",
            "2016-01-01T20:00:00Z: daily snapshot",
        ]
    );
    // The oldest point alone in its period is simply a daily snapshot.
    assert_eq!(
        kept(&daily(7), "UTC", &times[1..]),
        [
            "2016-01-03T20:00:00Z: daily snapshot",
            "2016-01-02T20:00:00Z: daily snapshot",
            "2016-01-01T20:00:00Z: daily snapshot",
        ]
    );
}

#[test]
fn all_keeps_every_period_and_the_oldest() {
    let p = Policy {
        keep_monthly: Some(Count::All),
        ..Policy::default()
    };
    let times = [
        "2016-01-05T00:00:00Z",
        "2016-01-20T00:00:00Z",
        "2016-02-03T00:00:00Z",
        "2016-03-01T00:00:00Z",
        "2016-03-30T00:00:00Z",
    ];
    assert_eq!(
        kept(&p, "UTC", &times),
        [
            "2016-03-30T00:00:00Z: monthly snapshot",
            "2016-02-03T00:00:00Z: monthly snapshot",
            "2016-01-20T00:00:00Z: monthly snapshot",
            "2016-01-05T00:00:00Z: oldest monthly snapshot",
        ]
    );
    let p = Policy {
        keep_last: Some(Count::All),
        ..Policy::default()
    };
    assert_eq!(kept(&p, "UTC", &times).len(), 5);
}

#[test]
fn keep_within_subtracts_months_with_overflow() {
    let p = Policy {
        keep_within: Some(span("1mo")),
        ..Policy::default()
    };
    // 2016-03-31 − 1mo = "2016-02-31" = 2016-03-02 (not 02-29, not 30 days): strictly newer stays.
    assert_eq!(
        kept(
            &p,
            "UTC",
            &[
                "2016-03-31T12:00:00Z",
                "2016-03-02T12:00:01Z",
                "2016-03-02T12:00:00Z",
                "2016-03-01T00:00:00Z",
                "2016-02-29T12:00:00Z",
            ]
        ),
        [
            "2016-03-31T12:00:00Z: within 1mo",
            "2016-03-02T12:00:01Z: within 1mo",
        ]
    );
    // Minutes are minutes.
    let p = Policy {
        keep_within: Some(span("90m")),
        ..Policy::default()
    };
    assert_eq!(
        kept(
            &p,
            "UTC",
            &[
                "2016-03-31T12:00:00Z",
                "2016-03-31T10:31:00Z",
                "2016-03-31T10:30:00Z"
            ]
        ),
        [
            "2016-03-31T12:00:00Z: within 90m",
            "2016-03-31T10:31:00Z: within 90m",
        ]
    );
}

#[test]
fn keep_within_is_measured_from_the_newest_point_not_in_the_future() {
    let p = Policy {
        keep_within: Some(span("1d")),
        keep_last: n(1),
        ..Policy::default()
    };
    let points = [
        ("future", "2016-07-01T00:00:00Z"),
        ("latest", "2016-05-20T12:00:00Z"),
        ("inside", "2016-05-19T13:00:00Z"),
        ("edge", "2016-05-19T12:00:00Z"),
        ("old", "2016-05-10T12:00:00Z"),
    ];
    // Now is 2016-06-01: the future point does not move the window, and is kept by it.
    assert_eq!(
        kept_ids(&p, "UTC", "2016-06-01T00:00:00Z", &points),
        [
            "future: within 1d, last snapshot",
            "latest: within 1d",
            "inside: within 1d",
        ]
    );
    // Years later, with no new backups, the window still ends at the newest point.
    assert_eq!(
        kept_ids(&p, "UTC", "2030-01-01T00:00:00Z", &points[1..]),
        ["latest: within 1d, last snapshot", "inside: within 1d",]
    );
    // Once the clock passes the "future" point it becomes the newest and anchors the window.
    assert_eq!(
        kept_ids(&p, "UTC", "2016-07-02T00:00:00Z", &points),
        ["future: within 1d, last snapshot"]
    );
    // Every point in the future: all inside the window.
    assert_eq!(
        kept_ids(&p, "UTC", "2000-01-01T00:00:00Z", &points).len(),
        points.len()
    );
}

#[test]
fn keep_within_daily_keeps_the_newest_per_day_inside_the_window() {
    let p = Policy {
        keep_within_daily: Some(span("2d")),
        ..Policy::default()
    };
    // Window: after 2016-05-18T18:00.
    assert_eq!(
        kept(
            &p,
            "UTC",
            &[
                "2016-05-20T18:00:00Z",
                "2016-05-20T06:00:00Z",
                "2016-05-19T20:00:00Z",
                "2016-05-19T08:00:00Z",
                "2016-05-18T19:00:00Z",
                "2016-05-18T17:00:00Z",
            ]
        ),
        [
            "2016-05-20T18:00:00Z: daily within 2d",
            "2016-05-19T20:00:00Z: daily within 2d",
            "2016-05-18T19:00:00Z: daily within 2d",
        ]
    );
    // The oldest point, inside the window and in a day already kept.
    let p = Policy {
        keep_within_daily: Some(span("3d")),
        ..Policy::default()
    };
    assert_eq!(
        kept(
            &p,
            "UTC",
            &[
                "2016-05-20T18:00:00Z",
                "2016-05-19T20:00:00Z",
                "2016-05-19T08:00:00Z",
            ]
        ),
        [
            "2016-05-20T18:00:00Z: daily within 3d",
            "2016-05-19T20:00:00Z: daily within 3d",
            "2016-05-19T08:00:00Z: oldest daily within 3d",
        ]
    );
}

#[test]
fn iso_weeks_span_the_new_year() {
    // 2015-12-27 (Sun) is 2015-W52; Mon 2015-12-28 .. Sun 2016-01-03 are 2015-W53;
    // Mon 2016-01-04 is 2016-W01.
    let times = [
        "2015-12-27T12:00:00Z",
        "2015-12-28T12:00:00Z",
        "2015-12-31T12:00:00Z",
        "2016-01-01T12:00:00Z",
        "2016-01-03T12:00:00Z",
        "2016-01-04T12:00:00Z",
    ];
    let weekly = Policy {
        keep_weekly: n(3),
        ..Policy::default()
    };
    assert_eq!(
        kept(&weekly, "UTC", &times),
        [
            "2016-01-04T12:00:00Z: weekly snapshot",
            "2016-01-03T12:00:00Z: weekly snapshot",
            "2015-12-27T12:00:00Z: weekly snapshot",
        ]
    );
    // Years are calendar years, not ISO week-years.
    let yearly = Policy {
        keep_yearly: n(2),
        ..Policy::default()
    };
    assert_eq!(
        kept(&yearly, "UTC", &times),
        [
            "2016-01-04T12:00:00Z: yearly snapshot",
            "2015-12-31T12:00:00Z: yearly snapshot",
        ]
    );
}

#[test]
fn periods_follow_the_given_time_zone() {
    let p = Policy {
        keep_daily: n(2),
        ..Policy::default()
    };
    let times = [
        "2016-01-03T12:00:00Z",
        "2016-01-04T12:00:00Z",
        "2016-01-04T22:30:00Z",
        "2016-01-04T23:30:00Z", // 00:30 on 5 January in Berlin
    ];
    assert_eq!(
        kept(&p, "UTC", &times),
        [
            "2016-01-04T23:30:00Z: daily snapshot",
            "2016-01-03T12:00:00Z: daily snapshot",
        ]
    );
    assert_eq!(
        kept(&p, "Europe/Berlin", &times),
        [
            "2016-01-04T23:30:00Z: daily snapshot",
            "2016-01-04T22:30:00Z: daily snapshot",
        ]
    );
}

#[test]
fn dst_days_and_repeated_hours() {
    // 2016-03-27 in Berlin has 23 hours: 2016-03-26T23:00Z to 2016-03-27T22:00Z.
    let p = Policy {
        keep_daily: n(3),
        ..Policy::default()
    };
    let times = [
        "2016-03-26T22:30:00Z", // Berlin 26th 23:30 CET
        "2016-03-26T23:30:00Z", // Berlin 27th 00:30 CET
        "2016-03-27T21:30:00Z", // Berlin 27th 23:30 CEST
        "2016-03-27T22:30:00Z", // Berlin 28th 00:30 CEST
    ];
    assert_eq!(
        kept(&p, "Europe/Berlin", &times),
        [
            "2016-03-27T22:30:00Z: daily snapshot",
            "2016-03-27T21:30:00Z: daily snapshot",
            "2016-03-26T22:30:00Z: daily snapshot",
        ]
    );
    assert_eq!(
        kept(&p, "UTC", &times),
        [
            "2016-03-27T22:30:00Z: daily snapshot",
            "2016-03-26T23:30:00Z: daily snapshot",
            "2016-03-26T22:30:00Z: oldest daily snapshot",
        ]
    );
    // 2016-10-30 in Berlin: 02:00-03:00 happens twice (CEST, then CET). Periods are wall-clock
    // hours, so both passes share one hourly period.
    let p = Policy {
        keep_hourly: n(2),
        ..Policy::default()
    };
    let times = [
        "2016-10-29T23:30:00Z", // 01:30 CEST
        "2016-10-30T00:30:00Z", // 02:30 CEST
        "2016-10-30T01:30:00Z", // 02:30 CET
    ];
    assert_eq!(
        kept(&p, "Europe/Berlin", &times),
        [
            "2016-10-30T01:30:00Z: hourly snapshot",
            "2016-10-29T23:30:00Z: hourly snapshot",
        ]
    );
    assert_eq!(
        kept(&p, "UTC", &times),
        [
            "2016-10-30T01:30:00Z: hourly snapshot",
            "2016-10-30T00:30:00Z: hourly snapshot",
        ]
    );
}

#[test]
fn equal_times_keep_their_input_order() {
    let points = [
        ("a", "2016-01-04T12:00:00Z"),
        ("b", "2016-01-04T12:00:00Z"),
        ("older", "2016-01-03T12:00:00Z"),
        ("c", "2016-01-04T12:00:00Z"),
    ];
    let p = Policy {
        keep_last: n(2),
        ..Policy::default()
    };
    assert_eq!(
        kept_ids(&p, "UTC", LATER, &points),
        ["a: last snapshot", "b: last snapshot"]
    );
    let p = Policy {
        keep_daily: n(1),
        ..Policy::default()
    };
    assert_eq!(kept_ids(&p, "UTC", LATER, &points), ["a: daily snapshot"]);
    let all: Vec<String> = apply(
        &p,
        &points
            .iter()
            .map(|(id, t)| Point::new(*id, ts(t)))
            .collect::<Vec<_>>(),
        &TimeZone::UTC,
        ts(LATER),
    )
    .into_iter()
    .map(|d| d.id)
    .collect();
    assert_eq!(all, ["a", "b", "c", "older"]);
}

#[test]
fn tags() {
    let mut tagged = Point::new("tagged", ts("2016-01-01T00:00:00Z"));
    tagged.tags = vec!["manual".into(), "pre-upgrade".into()];
    let plain = Point::new("plain", ts("2016-01-02T00:00:00Z"));
    let p = Policy {
        keep_tags: vec![vec!["manual".into()], vec!["".into()]],
        ..Policy::default()
    };
    let d = apply(&p, &[tagged, plain], &TimeZone::UTC, ts(LATER));
    assert_eq!(d[0].reasons, ["has tags []"]);
    assert_eq!(d[1].reasons, ["has tags [manual]"]);
}

#[test]
fn a_policy_without_rules_keeps_nothing() {
    let times = ["2016-01-01T00:00:00Z", "2016-01-02T00:00:00Z"];
    for p in [
        Policy::default(),
        Policy {
            keep_daily: n(0),
            keep_within: Some(CalendarSpan::default()),
            ..Policy::default()
        },
    ] {
        assert!(!p.keeps_something());
        assert!(kept(&p, "UTC", &times).is_empty());
    }
    for p in [
        Policy {
            keep_yearly: Some(Count::All),
            ..Policy::default()
        },
        Policy {
            keep_within_weekly: Some(span("1w")),
            ..Policy::default()
        },
    ] {
        assert!(p.keeps_something());
    }
    assert!(apply(&Policy::default(), &[], &TimeZone::UTC, ts(LATER)).is_empty());
}

/// A year and a bit of nightly runs at 03:15 Berlin time, pruned after each run as the snapshot
/// store will: the newest is always kept, the count stays bounded, the last week is complete,
/// and once a year has passed the history reaches back to the end of the twelfth month.
#[test]
fn a_year_of_nightly_runs_stays_bounded() {
    let tz = zone("Europe/Berlin");
    let p = Policy {
        keep_daily: n(7),
        keep_weekly: n(5),
        keep_monthly: n(12),
        ..Policy::default()
    };
    let mut kept: Vec<Point> = Vec::new();
    let mut day = date(2024, 1, 1);
    for run in 0..430 {
        let now = day
            .at(3, 15, 0, 0)
            .to_zoned(tz.clone())
            .unwrap()
            .timestamp();
        kept.push(Point::new(day.to_string(), now));
        let decisions = apply(&p, &kept, &tz, now);
        assert!(decisions[0].keep && decisions[0].time == now, "run {run}");
        let survivors: Vec<&str> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_str())
            .collect();
        kept.retain(|pt| survivors.contains(&pt.id.as_str()));
        // 7 days + 5 weeks + 12 months + the oldest, minus overlaps.
        assert!(kept.len() <= 7 + 5 + 12 + 1, "run {run}: {}", kept.len());
        // The last seven nights (calendar days: one of them may have 23 hours) are all there.
        let week_ago = day.checked_sub(jiff::Span::new().days(7)).unwrap();
        let recent = kept
            .iter()
            .filter(|pt| pt.time.to_zoned(tz.clone()).date() > week_ago);
        assert_eq!(recent.count(), (run + 1).min(7), "run {run}");
        // Pruning again removes nothing more.
        assert!(
            apply(&p, &kept, &tz, now).iter().all(|d| d.keep),
            "run {run}"
        );
        day = day.tomorrow().unwrap();
    }
    // After 430 nights (the last is Wed 2025-03-05): the 7 last days, the newest of the ISO
    // weeks 2025-W06 to W10, and the month ends back to April 2024: 7 + 3 + 10.
    assert_eq!(day, date(2025, 3, 6));
    let mut ids: Vec<&str> = kept.iter().map(|pt| pt.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "2024-04-30",
            "2024-05-31",
            "2024-06-30",
            "2024-07-31",
            "2024-08-31",
            "2024-09-30",
            "2024-10-31",
            "2024-11-30",
            "2024-12-31",
            "2025-01-31",
            "2025-02-09",
            "2025-02-16",
            "2025-02-23",
            "2025-02-27",
            "2025-02-28",
            "2025-03-01",
            "2025-03-02",
            "2025-03-03",
            "2025-03-04",
            "2025-03-05",
        ]
    );
}
