//! Pruning a snapshot series: the retention policy's decisions over its complete snapshots,
//! with the guards that make pruning safe whatever the policy says.
//!
//! Guards (on top of [`crate::retention::apply`]): the newest complete snapshot is always
//! kept; a plan that would keep nothing is refused; only complete snapshots are ever
//! considered (incomplete ones are not restore points and belong to the next run).
//!
//! Must not: decide what a rule means (retention does) or remove anything the plan does not
//! name (the series refuses unknown ids and the newest one on its own, too).

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::retention::{self, Point, Policy};
use crate::snapshot::{Manifest, Series, SnapshotError};

/// What to do with one snapshot, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub id: String,
    /// RFC 3339 with offset.
    pub time: String,
    pub keep: bool,
    /// The rules that keep it (empty for a removed one).
    pub reasons: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("{where_}: refusing to prune: the policy would remove every snapshot")]
    WouldRemoveAll { where_: String },
    #[error(transparent)]
    Series(#[from] SnapshotError),
}

/// The plan for `snapshots` (newest first, as the series lists them).
pub fn plan(
    snapshots: &[Manifest],
    policy: &Policy,
    tz: &TimeZone,
    now: Timestamp,
) -> Vec<Verdict> {
    let points: Vec<Point> = snapshots
        .iter()
        .map(|m| Point::new(m.id.to_string(), m.time.timestamp()))
        .collect();
    let decisions = retention::apply(policy, &points, tz, now);
    let newest = snapshots.first().map(|m| m.id.to_string());
    decisions
        .into_iter()
        .map(|d| {
            let mut reasons = d.reasons;
            let mut keep = d.keep;
            if Some(&d.id) == newest.as_ref() && !keep {
                keep = true;
                reasons.push("newest snapshot (always kept)".into());
            }
            let time = snapshots
                .iter()
                .find(|m| m.id.to_string() == d.id)
                .map(Manifest::time_rfc3339)
                .unwrap_or_default();
            Verdict {
                id: d.id,
                time,
                keep,
                reasons,
            }
        })
        .collect()
}

/// Plans and (unless `dry_run`) removes what the plan does not keep. Returns the plan.
pub fn prune(
    series: &Series,
    policy: &Policy,
    tz: &TimeZone,
    now: Timestamp,
    dry_run: bool,
) -> Result<Vec<Verdict>, PruneError> {
    let snapshots = series.list()?;
    let verdicts = plan(&snapshots, policy, tz, now);
    if !verdicts.is_empty() && verdicts.iter().all(|v| !v.keep) {
        return Err(PruneError::WouldRemoveAll {
            where_: series.where_(),
        });
    }
    let remove: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.keep)
        .map(|v| v.id.as_str())
        .collect();
    if !dry_run && !remove.is_empty() {
        series.remove_many(&remove)?;
    }
    Ok(verdicts)
}

/// Reports the prune after a successful run of sync `index` (snapshot or archive series
/// alike): what was kept and removed, or why pruning failed. A failure is said loudly and never
/// fails the run: the backup itself succeeded and every restore point is still there.
pub fn report<E: std::fmt::Display>(
    events: &crate::events::Emitter,
    index: usize,
    series: String,
    what: &'static str,
    result: Result<Vec<Verdict>, E>,
) {
    use crate::events::EventKind;
    match result {
        Ok(verdicts) => events.emit(EventKind::Pruned {
            index,
            series,
            kept: verdicts.iter().filter(|v| v.keep).count(),
            removed: verdicts
                .iter()
                .filter(|v| !v.keep)
                .map(|v| v.id.clone())
                .collect(),
            what,
        }),
        Err(e) => events.emit(EventKind::PruneFailed {
            index,
            series,
            error: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::Count;
    use crate::snapshot::SnapshotId;

    fn manifest(t: &str) -> Manifest {
        let time: jiff::Zoned = t.parse::<Timestamp>().unwrap().to_zoned(TimeZone::UTC);
        Manifest {
            id: SnapshotId::from_time(time.timestamp()),
            time,
            job: "j".into(),
            run_id: "r".into(),
            version: "0".into(),
            rsync_exit: 0,
            files_transferred: None,
            bytes_transferred: None,
            total_size: None,
        }
    }

    #[test]
    fn the_newest_is_kept_even_when_no_rule_keeps_it() {
        let snaps = vec![
            manifest("2026-11-29T10:00:00Z"),
            manifest("2026-11-28T10:00:00Z"),
        ];
        // keep_within 1h of the newest keeps the newest by the rule itself; an hourly count of
        // one keeps it too. A policy that keeps nothing at all (empty) must still keep it.
        let v = plan(&snaps, &Policy::default(), &TimeZone::UTC, Timestamp::now());
        assert!(v[0].keep, "{v:?}");
        assert!(v[0].reasons.iter().any(|r| r.contains("newest")));
        assert!(!v[1].keep);
        let p = Policy {
            keep_daily: Some(Count::N(2)),
            ..Policy::default()
        };
        let v = plan(&snaps, &p, &TimeZone::UTC, Timestamp::now());
        assert!(v.iter().all(|v| v.keep), "{v:?}");
        assert_eq!(v[0].reasons, ["daily snapshot"]);
    }
}
