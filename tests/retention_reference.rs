//! restic's own golden cases for `forget`, replayed through `retention::apply`.
//!
//! The cases (40, converted from restic's `TestApplyPolicy` and its `policy_keep_snapshots_N`
//! files) are not part of this repository. They are read from `BM_RETENTION_REFERENCE`, or from
//! `../shared/reference/retention/restic-cases.jsonl` next to the checkout; without the file the
//! test prints `SKIPPED:` and passes
//! (CI machines need not have it).
//!
//! restic writes spans with `m` for months (`1y2m3d3h`); this config writes `mo` (and `m` is
//! minutes). Spans are converted when the policy is read, and the expected reasons are compared
//! with the span in our notation ("within 1y2mo3d3h" for restic's "within 1y2m3d3h").

use std::path::PathBuf;

use backupmanager::retention::{self, CalendarSpan, Count, Point, Policy};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::Value;

fn reference_file() -> PathBuf {
    match std::env::var_os("BM_RETENTION_REFERENCE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/reference/retention/restic-cases.jsonl"),
    }
}

/// restic's duration syntax: numbers followed by y, m (months), d or h.
fn restic_span(s: &str) -> CalendarSpan {
    let mut span = CalendarSpan::default();
    let mut n = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            n.push(c);
            continue;
        }
        let v: u32 = n.parse().unwrap_or_else(|_| panic!("bad restic span {s}"));
        n.clear();
        match c {
            'y' => span.years += v,
            'm' => span.months += v,
            'd' => span.days += v,
            'h' => span.hours += v,
            _ => panic!("bad restic span {s}"),
        }
    }
    assert!(n.is_empty(), "bad restic span {s}");
    span
}

fn count(v: &Value) -> Count {
    match v.as_i64().expect("a count") {
        -1 => Count::All,
        n => Count::N(u32::try_from(n).expect("a count >= 0")),
    }
}

fn policy(v: &Value) -> Policy {
    let mut p = Policy::default();
    for (key, value) in v.as_object().expect("policy object") {
        let span = || value.as_str().map(restic_span);
        match key.as_str() {
            "keep_last" => p.keep_last = Some(count(value)),
            "keep_hourly" => p.keep_hourly = Some(count(value)),
            "keep_daily" => p.keep_daily = Some(count(value)),
            "keep_weekly" => p.keep_weekly = Some(count(value)),
            "keep_monthly" => p.keep_monthly = Some(count(value)),
            "keep_yearly" => p.keep_yearly = Some(count(value)),
            "keep_within" => p.keep_within = span(),
            "keep_within_hourly" => p.keep_within_hourly = span(),
            "keep_within_daily" => p.keep_within_daily = span(),
            "keep_within_weekly" => p.keep_within_weekly = span(),
            "keep_within_monthly" => p.keep_within_monthly = span(),
            "keep_within_yearly" => p.keep_within_yearly = span(),
            "keep_tags" => {
                p.keep_tags = serde_json::from_value(value.clone()).expect("list of tag lists")
            }
            other => panic!("policy field {other} is not handled"),
        }
    }
    p
}

/// A restic reason with its span (the last word after "within") in our notation.
fn our_reason(reason: &str) -> String {
    match reason.rsplit_once("within ") {
        Some((head, span)) => format!("{head}within {}", restic_span(span)),
        None => reason.to_string(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).expect("list of strings")
}

#[test]
fn restic_golden_cases() {
    let file = reference_file();
    let Ok(text) = std::fs::read_to_string(&file) else {
        let msg = format!(
            "SKIPPED: restic reference cases not found at {} (set BM_RETENTION_REFERENCE)",
            file.display()
        );
        println!("{msg}");
        eprintln!("{msg}");
        return;
    };
    // The golden data was made with all snapshots in the past; any later "now" gives the same.
    let now: Timestamp = "2100-01-01T00:00:00Z".parse().unwrap();
    let mut passed = 0;
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("a JSON case");
        let name = case["name"].as_str().unwrap();
        assert_eq!(case["engine"], "restic", "{name}");
        let tz = TimeZone::get(case["timezone"].as_str().unwrap()).unwrap();
        let tags = case["tags"].as_array().cloned().unwrap_or_default();
        let points: Vec<Point> = strings(&case["snapshots"])
            .iter()
            .enumerate()
            .map(|(i, t)| Point {
                id: i.to_string(),
                time: t.parse().unwrap(),
                tags: tags.get(i).map(strings).unwrap_or_default(),
            })
            .collect();
        let decisions = retention::apply(&policy(&case["policy"]), &points, &tz, now);
        assert_eq!(
            decisions.len(),
            points.len(),
            "{name}: one decision per point"
        );

        let got: Vec<(String, Vec<String>)> = decisions
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| (d.id, d.reasons))
            .collect();
        let want: Vec<(String, Vec<String>)> = case["keep_index"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["keep_reasons"].as_array().unwrap())
            .map(|(i, r)| {
                let reasons = strings(r).iter().map(|r| our_reason(r)).collect();
                (i.as_u64().unwrap().to_string(), reasons)
            })
            .collect();
        if got == want {
            passed += 1;
        } else {
            failures.push(format!("{name}:\n  want {want:?}\n  got  {got:?}"));
        }
    }
    println!(
        "restic reference: {passed} passed, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed, 40, "expected restic's 40 cases");
}
