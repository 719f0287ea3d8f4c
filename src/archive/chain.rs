//! Pure decisions about chains: an archive's ancestors, and whether the next run continues
//! the newest chain or starts a new one (and why).
//!
//! Must not: read files or clocks (callers pass what they saw and `now`).

use std::time::Duration;

use jiff::Timestamp;

use super::manifest::ArchiveManifest;
use super::names::Stem;
use crate::config::ArchiveSettings;

/// `target` and its ancestors, level 0 first, from `list` (any order). `Err` names the first
/// missing link.
pub fn chain_of<'a>(
    list: &'a [ArchiveManifest],
    target: &Stem,
) -> Result<Vec<&'a ArchiveManifest>, Stem> {
    let find = |s: &Stem| list.iter().find(|m| &m.stem == s);
    let mut out = Vec::new();
    let mut at = find(target).ok_or_else(|| target.clone())?;
    loop {
        out.push(at);
        match &at.parent {
            None => break,
            Some(p) => at = find(p).ok_or_else(|| p.clone())?,
        }
    }
    out.reverse();
    Ok(out)
}

/// What the next archive of a series is.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// A level 0. `warn` when the reason is a problem the user should know about.
    Full {
        why: String,
        warn: bool,
    },
    Incremental {
        parent: Stem,
        level: u32,
    },
}

/// What the caller observed, for [`decide`].
pub struct Seen<'a> {
    /// Complete archives, any order.
    pub list: &'a [ArchiveManifest],
    /// The source's device number now.
    pub source_device: u64,
    /// Whether the newest archive's state file (`.snar`) is there.
    pub newest_snar_present: bool,
    /// Archives of the newest chain that retention keeps only because newer ones depend on them.
    pub kept_only_as_parents: Vec<Stem>,
    pub now: Timestamp,
}

pub fn decide(settings: &ArchiveSettings, seen: &Seen) -> Next {
    let full = |why: String, warn: bool| Next::Full { why, warn };
    let Some(newest) = seen.list.iter().max_by(|a, b| a.stem.cmp(&b.stem)) else {
        return full("the first archive of the series".into(), false);
    };
    let chain = match chain_of(seen.list, &newest.stem) {
        Ok(c) => c,
        Err(missing) => {
            return full(
                format!(
                    "the newest chain is broken ({missing} is missing), so it cannot be continued"
                ),
                true,
            )
        }
    };
    if !seen.newest_snar_present {
        return full(
            format!(
                "the state file {}.snar is missing, so the chain cannot be continued",
                newest.stem
            ),
            true,
        );
    }
    if newest.source_device != seen.source_device {
        return full(
            format!(
                "the source is on another device than when the chain began (device {:#x}, now {:#x}); an incremental would silently copy everything",
                newest.source_device, seen.source_device
            ),
            true,
        );
    }
    if newest.stem.level >= settings.max_chain_length {
        return full(
            format!(
                "the chain has {} incremental(s), max_chain_length is {}",
                newest.stem.level, settings.max_chain_length
            ),
            false,
        );
    }
    let base = chain[0];
    let age = seen.now.as_second() - base.time.timestamp().as_second();
    if age >= 0 && Duration::from_secs(age as u64) >= settings.full_every {
        return full(
            format!(
                "the chain's level 0 ({}) is older than full_every",
                base.stem.id
            ),
            false,
        );
    }
    if let Some(s) = seen
        .kept_only_as_parents
        .iter()
        .find(|s| s.chain == newest.stem.chain)
    {
        return full(
            format!(
                "retention keeps {} only as a parent of newer archives; a new chain lets the old one age out",
                s.id
            ),
            false,
        );
    }
    Next::Incremental {
        parent: newest.stem.clone(),
        level: newest.stem.level + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;
    use crate::snapshot::manifest::parse_rfc3339;
    use crate::snapshot::SnapshotId;

    /// One chain, an archive per day from 2026-11-`first`.
    fn chain(first: u32, n: u32) -> Vec<ArchiveManifest> {
        let mut out: Vec<ArchiveManifest> = Vec::new();
        for level in 0..n {
            let t = format!("2026-11-{:02}T10:00:00Z", first + level);
            let id = SnapshotId::from_time(t.parse().unwrap());
            let parent = out.last().map(|m| m.stem.clone());
            out.push(ArchiveManifest {
                stem: Stem {
                    chain: parent.as_ref().map_or(id.clone(), |p| p.chain.clone()),
                    level,
                    id,
                },
                time: parse_rfc3339(&t).unwrap(),
                parent,
                sha256: "0".repeat(64),
                size: 1,
                compression: Compression::Zstd,
                tar_version: String::new(),
                tar_options: Vec::new(),
                files: 0,
                tar_exit: 0,
                source: "/s/".into(),
                source_device: 7,
                job: "j".into(),
                run_id: "r".into(),
                version: "0".into(),
            });
        }
        out
    }

    fn settings() -> ArchiveSettings {
        ArchiveSettings {
            full_every: Duration::from_secs(7 * 86400),
            max_chain_length: 3,
            compression: Compression::Zstd,
        }
    }

    fn seen<'a>(list: &'a [ArchiveManifest], now: &str) -> Seen<'a> {
        Seen {
            list,
            source_device: 7,
            newest_snar_present: true,
            kept_only_as_parents: Vec::new(),
            now: now.parse().unwrap(),
        }
    }

    fn full_why(n: Next) -> (String, bool) {
        match n {
            Next::Full { why, warn } => (why, warn),
            other => panic!("expected a level 0, got {other:?}"),
        }
    }

    #[test]
    fn a_chain_is_continued_until_a_limit_says_otherwise() {
        let list = chain(1, 2);
        let next = decide(&settings(), &seen(&list, "2026-11-03T10:00:00Z"));
        assert_eq!(
            next,
            Next::Incremental {
                parent: list[1].stem.clone(),
                level: 2
            }
        );
        // Three incrementals: max_chain_length 3 reached.
        let list = chain(1, 4);
        let (why, warn) = full_why(decide(&settings(), &seen(&list, "2026-11-05T10:00:00Z")));
        assert!(why.contains("max_chain_length") && !warn, "{why}");
        // The level 0 is 7 days old.
        let list = chain(1, 2);
        let (why, _) = full_why(decide(&settings(), &seen(&list, "2026-11-08T10:00:00Z")));
        assert!(why.contains("full_every"), "{why}");
        let (why, warn) = full_why(decide(&settings(), &seen(&[], "2026-11-08T10:00:00Z")));
        assert!(why.contains("first archive") && !warn, "{why}");
    }

    #[test]
    fn what_breaks_a_chain_starts_a_new_one_with_a_warning() {
        let list = chain(1, 3);
        let mut s = seen(&list, "2026-11-04T10:00:00Z");
        s.source_device = 8;
        let (why, warn) = full_why(decide(&settings(), &s));
        assert!(why.contains("another device") && warn, "{why}");

        let mut s = seen(&list, "2026-11-04T10:00:00Z");
        s.newest_snar_present = false;
        let (why, warn) = full_why(decide(&settings(), &s));
        assert!(why.contains(".snar") && warn, "{why}");

        let broken: Vec<ArchiveManifest> = vec![list[0].clone(), list[2].clone()];
        let (why, warn) = full_why(decide(&settings(), &seen(&broken, "2026-11-04T10:00:00Z")));
        assert!(why.contains(&list[1].stem.to_string()) && warn, "{why}");
    }

    #[test]
    fn a_chain_kept_only_as_parents_is_not_extended() {
        let list = chain(1, 2);
        let mut s = seen(&list, "2026-11-03T10:00:00Z");
        s.kept_only_as_parents = vec![list[0].stem.clone()];
        let (why, warn) = full_why(decide(&settings(), &s));
        assert!(why.contains("only as a parent") && !warn, "{why}");
    }

    #[test]
    fn chain_of_lists_level_0_first_and_names_a_missing_link() {
        let list = chain(1, 3);
        let c = chain_of(&list, &list[2].stem).unwrap();
        assert_eq!(
            c.iter().map(|m| m.stem.level).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let gap = vec![list[0].clone(), list[2].clone()];
        assert_eq!(chain_of(&gap, &list[2].stem).unwrap_err(), list[1].stem);
    }
}
