//! Names in an archive series directory.
//!
//! An archive's *stem* says its chain, level and id: `<chain>_L<level>_<id>`, where `<id>` is
//! the run's start (a [`SnapshotId`]: `2026-11-29T093914Z`, `-2`… within one second) and
//! `<chain>` the id of the chain's level 0. Stems sort by chain, then level, which is the
//! order the archives were made in (a chain's level 0 is newer than every archive of the
//! chains before it). Beside the archive `<stem>.tar.zst` (`.tar.gz`, `.tar`) lie
//! `<stem>.snar` (tar's incremental state after it) and `<stem>.json` (the manifest: the
//! commit point). `.incomplete-<stem>.*` are being written, or left by a failed run.
//!
//! Must not: touch files. Anything not parsed here is not ours and is never touched.

use std::fmt;

use crate::snapshot::SnapshotId;

/// Prefix of files being written.
pub const INCOMPLETE: &str = ".incomplete-";

/// An archive's stem.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stem {
    pub chain: SnapshotId,
    pub level: u32,
    pub id: SnapshotId,
}

impl Stem {
    pub fn parse(s: &str) -> Option<Stem> {
        let mut parts = s.split('_');
        let chain = SnapshotId::parse(parts.next()?)?;
        let level = parts.next()?.strip_prefix('L')?;
        if level.len() < 2 || !level.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let level: u32 = level.parse().ok()?;
        let id = SnapshotId::parse(parts.next()?)?;
        if parts.next().is_some() || (level == 0) != (chain == id) || id < chain {
            return None;
        }
        let stem = Stem { chain, level, id };
        // Exactly one spelling per stem (no `L002` for `L02`).
        (stem.to_string() == s).then_some(stem)
    }
}

impl fmt::Display for Stem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_L{:02}_{}", self.chain, self.level, self.id)
    }
}

impl PartialOrd for Stem {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Stem {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.id, &self.chain, self.level).cmp(&(&other.id, &other.chain, other.level))
    }
}

/// What a file in the series directory is, if it is ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum File {
    /// `<stem>.<ext>`, `<stem>.snar`, `<stem>.json`: `suffix` is `tar.zst`, `snar`, `json`...
    Committed { stem: Stem, suffix: String },
    /// `.incomplete-<stem>.<suffix>`.
    Incomplete { stem: Stem, suffix: String },
}

const SUFFIXES: &[&str] = &["tar.zst", "tar.gz", "tar", "snar", "json"];

pub fn classify(name: &str) -> Option<File> {
    let (incomplete, rest) = match name.strip_prefix(INCOMPLETE) {
        Some(r) => (true, r),
        None => (false, name),
    };
    let (stem, suffix) = rest.split_once('.')?;
    if !SUFFIXES.contains(&suffix) {
        return None;
    }
    let stem = Stem::parse(stem)?;
    let suffix = suffix.to_string();
    Some(if incomplete {
        File::Incomplete { stem, suffix }
    } else {
        File::Committed { stem, suffix }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_round_trip_and_refuse_anything_else() {
        let s = "2026-11-28T093902Z_L03_2026-11-30T101500Z-2";
        let stem = Stem::parse(s).unwrap();
        assert_eq!(stem.level, 3);
        assert_eq!(stem.to_string(), s);
        let zero = "2026-11-28T093902Z_L00_2026-11-28T093902Z";
        assert!(Stem::parse(zero).is_some());
        for bad in [
            "2026-11-28T093902Z_L00_2026-11-29T093902Z", // level 0 of another chain
            "2026-11-28T093902Z_L01_2026-11-28T093902Z", // incremental with the chain's id
            "2026-11-28T093902Z_L1_2026-11-29T093902Z",
            "2026-11-28T093902Z_L001_2026-11-29T093902Z",
            "2026-11-29T093902Z_L01_2026-11-28T093902Z", // older than its chain
            "2026-11-28T093902Z_L01_2026-11-29T093902Z_x",
            "latest",
        ] {
            assert!(Stem::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn files_are_classified_by_strict_names() {
        let stem = "2026-11-28T093902Z_L00_2026-11-28T093902Z";
        assert!(matches!(
            classify(&format!("{stem}.tar.zst")),
            Some(File::Committed { .. })
        ));
        assert!(matches!(
            classify(&format!(".incomplete-{stem}.snar")),
            Some(File::Incomplete { .. })
        ));
        assert_eq!(classify(&format!("{stem}.tar.xz")), None);
        assert_eq!(classify("notes.txt"), None);
    }

    #[test]
    fn stems_order_by_time() {
        let a = Stem::parse("2026-11-28T093902Z_L05_2026-12-03T093902Z").unwrap();
        let b = Stem::parse("2026-12-04T093902Z_L00_2026-12-04T093902Z").unwrap();
        assert!(a < b);
    }
}
