//! Pruning an archive series without ever breaking a chain: the retention policy picks restore
//! points over every complete archive (each is one), then every archive a kept one depends on
//! stays too, down to its level 0. Only what nothing kept depends on is removed.
//!
//! Reasons: the policy's ("daily snapshot"), "newest archive (always kept)", or "parent of
//! <id>" for an archive kept only because a kept newer one is built on it. When part of the
//! newest chain is kept only as a parent, the next run starts a new chain
//! ([`kept_only_as_parents`], read by the engine) so the old chain can age out.
//!
//! Must not: decide what a rule means (retention does) or remove anything the plan does not
//! name.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::prune::Verdict;
use crate::archive::{ArchiveError, ArchiveManifest, ArchiveSeries, Stem};
use crate::retention::{self, Point, Policy};

/// The reason prefix of an archive kept only for a newer one.
pub const PARENT_OF: &str = "parent of ";

/// The plan for `list` (newest first): one verdict per archive, newest first.
pub fn plan(
    list: &[ArchiveManifest],
    policy: &Policy,
    tz: &TimeZone,
    now: Timestamp,
) -> Vec<Verdict> {
    let points: Vec<Point> = list
        .iter()
        .map(|m| Point::new(m.stem.to_string(), m.time.timestamp()))
        .collect();
    let decisions = retention::apply(policy, &points, tz, now);
    let mut verdicts: Vec<Verdict> = list
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let d = decisions.iter().find(|d| d.id == m.stem.to_string());
            let mut keep = d.is_some_and(|d| d.keep);
            let mut reasons = d.map(|d| d.reasons.clone()).unwrap_or_default();
            if i == 0 && !keep {
                keep = true;
                reasons.push("newest archive (always kept)".into());
            }
            Verdict {
                id: m.stem.to_string(),
                time: m.time_rfc3339(),
                keep,
                reasons,
            }
        })
        .collect();
    // Ancestor closure, newest first: a kept archive keeps its parent (and so on down).
    for i in 0..list.len() {
        if !verdicts[i].keep {
            continue;
        }
        if let Some(p) = &list[i].parent {
            if let Some(j) = list.iter().position(|m| &m.stem == p) {
                if !verdicts[j].keep {
                    verdicts[j].keep = true;
                    verdicts[j]
                        .reasons
                        .push(format!("{PARENT_OF}{}", list[i].stem.id));
                }
            }
        }
    }
    verdicts
}

/// Archives of `list` the plan keeps only as parents of newer ones.
pub fn kept_only_as_parents(list: &[ArchiveManifest], verdicts: &[Verdict]) -> Vec<Stem> {
    list.iter()
        .zip(verdicts)
        .filter(|(_, v)| v.keep && v.reasons.iter().all(|r| r.starts_with(PARENT_OF)))
        .map(|(m, _)| m.stem.clone())
        .collect()
}

/// Plans and (unless `dry_run`) removes what the plan does not keep. Returns the plan.
pub fn prune(
    series: &ArchiveSeries,
    policy: &Policy,
    tz: &TimeZone,
    now: Timestamp,
    dry_run: bool,
) -> Result<Vec<Verdict>, ArchiveError> {
    let list = series.list()?;
    let verdicts = plan(&list, policy, tz, now);
    let remove: Vec<Stem> = list
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| !v.keep)
        .map(|(m, _)| m.stem.clone())
        .collect();
    if !dry_run && !remove.is_empty() {
        series.remove_many(&remove)?;
    }
    Ok(verdicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;
    use crate::retention::Count;
    use crate::snapshot::manifest::parse_rfc3339;
    use crate::snapshot::SnapshotId;

    /// A chain per string of days: "1 2 3 | 4 5" = chain of days 1..3, chain of 4..5.
    fn series(spec: &str) -> Vec<ArchiveManifest> {
        let mut out = Vec::new();
        for chain in spec.split('|') {
            let mut parent: Option<Stem> = None;
            for (level, day) in chain.split_whitespace().enumerate() {
                let t = format!("2026-11-{:02}T10:00:00Z", day.parse::<u32>().unwrap());
                let id = SnapshotId::from_time(t.parse().unwrap());
                let stem = Stem {
                    chain: parent.as_ref().map_or(id.clone(), |p| p.chain.clone()),
                    level: level as u32,
                    id,
                };
                out.push(ArchiveManifest {
                    stem: stem.clone(),
                    time: parse_rfc3339(&t).unwrap(),
                    parent: parent.clone(),
                    sha256: "0".repeat(64),
                    size: 1,
                    compression: Compression::Zstd,
                    tar_version: String::new(),
                    tar_options: Vec::new(),
                    files: 0,
                    tar_exit: 0,
                    source: "/s/".into(),
                    source_device: 1,
                    job: "j".into(),
                    run_id: "r".into(),
                    version: "0".into(),
                });
                parent = Some(stem);
            }
        }
        out.reverse();
        out
    }

    fn days(list: &[ArchiveManifest], v: &[Verdict], keep: bool) -> Vec<i8> {
        list.iter()
            .zip(v)
            .filter(|(_, v)| v.keep == keep)
            .map(|(m, _)| m.time.day())
            .collect()
    }

    #[test]
    fn a_kept_incremental_keeps_its_whole_chain_down_to_level_0() {
        let list = series("1 2 3 4 5 | 6 7 8");
        let p = Policy {
            keep_last: Some(Count::N(4)),
            ..Policy::default()
        };
        let v = plan(&list, &p, &TimeZone::UTC, Timestamp::now());
        // keep_last 4: days 8 7 6 5; day 5 needs 4 3 2 1.
        assert_eq!(days(&list, &v, false), Vec::<i8>::new());
        let v5 = &v[3];
        assert_eq!(v5.reasons, ["last snapshot"]);
        assert_eq!(v[4].reasons, ["parent of 2026-11-05T100000Z"]);
        assert_eq!(v[7].reasons, ["parent of 2026-11-02T100000Z"]);
        let only = kept_only_as_parents(&list, &v);
        assert_eq!(only.len(), 4);
    }

    #[test]
    fn a_chain_nothing_kept_depends_on_goes_whole() {
        let list = series("1 2 3 | 4 5 6");
        let p = Policy {
            keep_last: Some(Count::N(2)),
            ..Policy::default()
        };
        let v = plan(&list, &p, &TimeZone::UTC, Timestamp::now());
        assert_eq!(days(&list, &v, true), [6, 5, 4]);
        assert_eq!(days(&list, &v, false), [3, 2, 1]);
        assert_eq!(kept_only_as_parents(&list, &v).len(), 1);
    }

    #[test]
    fn the_newest_is_kept_whatever_the_policy() {
        let list = series("1 2");
        let v = plan(&list, &Policy::default(), &TimeZone::UTC, Timestamp::now());
        assert!(v[0].keep && v[1].keep);
        assert_eq!(v[0].reasons, ["newest archive (always kept)"]);
        assert_eq!(v[1].reasons, ["parent of 2026-11-02T100000Z"]);
    }
}
