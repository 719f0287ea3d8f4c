//! Names in a series directory: snapshot ids and the few other names backupmanager writes.
//!
//! Owns: the id format (`2026-11-29T093914Z`, or `2026-11-29T093914Z-2` for a second run
//! started within the same second, or after the clock went back), its order, and
//! [`classify`], which says whether a directory entry's name is ours and what it is.
//!
//! Must not: touch the file system. Anything [`classify`] does not recognise is not ours and
//! must never be renamed or removed by the callers.

use std::cmp::Ordering;
use std::fmt;

/// Prefix of a snapshot still being written (`.incomplete-<id>`), and of its manifest while
/// it is being committed (`.incomplete-<id>.json`).
pub const INCOMPLETE_PREFIX: &str = ".incomplete-";
/// Prefix of a snapshot being removed (`.deleting-<id>`).
pub const DELETING_PREFIX: &str = ".deleting-";
/// Prefix of the temporary symlink that replaces `latest` (`.latest-new-<id>`).
pub const LATEST_NEW_PREFIX: &str = ".latest-new-";
/// Suffix of a manifest beside its snapshot (`<id>.json`).
pub const MANIFEST_SUFFIX: &str = ".json";
/// The symlink to the newest complete snapshot.
pub const LATEST: &str = "latest";

/// A snapshot's name: the UTC second its run started, plus a sequence number (1 = none).
///
/// Ordered by time, then sequence: the order in which the snapshots were begun.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotId {
    /// `YYYY-MM-DDTHHMMSSZ`.
    stamp: String,
    /// 1 when written without a suffix, else the `-N` suffix (N ≥ 2).
    seq: u32,
}

impl SnapshotId {
    /// The id for a run that started at `t` (its UTC second).
    pub fn from_time(t: jiff::Timestamp) -> SnapshotId {
        SnapshotId {
            stamp: t.strftime("%Y-%m-%dT%H%M%SZ").to_string(),
            seq: 1,
        }
    }

    /// Parse a name strictly: exactly `YYYY-MM-DDTHHMMSSZ` with an optional `-N`, N ≥ 2
    /// without leading zeros. Anything else is not an id.
    pub fn parse(s: &str) -> Option<SnapshotId> {
        let b = s.as_bytes();
        if b.len() < 18 {
            return None;
        }
        let (stamp, rest) = s.split_at(18);
        let shape = b"dddd-dd-ddTddddddZ";
        let ok = stamp.bytes().zip(shape.iter()).all(|(c, &p)| {
            if p == b'd' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        });
        if !ok {
            return None;
        }
        let seq = if rest.is_empty() {
            1
        } else {
            let n = rest.strip_prefix('-')?;
            if n.is_empty()
                || n.len() > 9
                || n.starts_with('0')
                || !n.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            let n: u32 = n.parse().ok()?;
            if n < 2 {
                return None;
            }
            n
        };
        Some(SnapshotId {
            stamp: stamp.to_string(),
            seq,
        })
    }

    /// The next id after `self` in the same second (used when the clock did not move on).
    pub fn successor(&self) -> SnapshotId {
        SnapshotId {
            stamp: self.stamp.clone(),
            seq: self.seq + 1,
        }
    }
}

impl Ord for SnapshotId {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.stamp, self.seq).cmp(&(&other.stamp, other.seq))
    }
}

impl PartialOrd for SnapshotId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seq == 1 {
            f.write_str(&self.stamp)
        } else {
            write!(f, "{}-{}", self.stamp, self.seq)
        }
    }
}

/// What a name in the series directory is, if it is ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// `<id>`: a snapshot directory (complete only if its manifest exists too).
    Snapshot(SnapshotId),
    /// `<id>.json`: a snapshot's manifest.
    Manifest(SnapshotId),
    /// `.incomplete-<id>`: being written (or left by a failed run).
    Incomplete(SnapshotId),
    /// `.incomplete-<id>.json`: a manifest being committed.
    IncompleteManifest(SnapshotId),
    /// `.deleting-<id>`: being removed.
    Deleting(SnapshotId),
    /// `.latest-new-<id>`: the temporary symlink of a `latest` switch.
    LatestNew(SnapshotId),
    /// `latest`.
    Latest,
}

impl Name {
    /// The id the name carries (None for `latest`).
    pub fn id(&self) -> Option<&SnapshotId> {
        match self {
            Name::Snapshot(i)
            | Name::Manifest(i)
            | Name::Incomplete(i)
            | Name::IncompleteManifest(i)
            | Name::Deleting(i)
            | Name::LatestNew(i) => Some(i),
            Name::Latest => None,
        }
    }
}

/// Recognise one of our names; `None` means "not ours: never touch it".
pub fn classify(name: &str) -> Option<Name> {
    if name == LATEST {
        return Some(Name::Latest);
    }
    if let Some(rest) = name.strip_prefix(INCOMPLETE_PREFIX) {
        return match rest.strip_suffix(MANIFEST_SUFFIX) {
            Some(id) => SnapshotId::parse(id).map(Name::IncompleteManifest),
            None => SnapshotId::parse(rest).map(Name::Incomplete),
        };
    }
    if let Some(rest) = name.strip_prefix(DELETING_PREFIX) {
        return SnapshotId::parse(rest).map(Name::Deleting);
    }
    if let Some(rest) = name.strip_prefix(LATEST_NEW_PREFIX) {
        return SnapshotId::parse(rest).map(Name::LatestNew);
    }
    if let Some(id) = name.strip_suffix(MANIFEST_SUFFIX) {
        return SnapshotId::parse(id).map(Name::Manifest);
    }
    SnapshotId::parse(name).map(Name::Snapshot)
}

/// `.incomplete-<id>`.
pub fn incomplete(id: &SnapshotId) -> String {
    format!("{INCOMPLETE_PREFIX}{id}")
}
/// `.incomplete-<id>.json`.
pub fn incomplete_manifest(id: &SnapshotId) -> String {
    format!("{INCOMPLETE_PREFIX}{id}{MANIFEST_SUFFIX}")
}
/// `.deleting-<id>`.
pub fn deleting(id: &SnapshotId) -> String {
    format!("{DELETING_PREFIX}{id}")
}
/// `<id>.json`.
pub fn manifest(id: &SnapshotId) -> String {
    format!("{id}{MANIFEST_SUFFIX}")
}
/// `.latest-new-<id>`.
pub fn latest_new(id: &SnapshotId) -> String {
    format!("{LATEST_NEW_PREFIX}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_round_trip_and_order() {
        let t: jiff::Timestamp = "2026-11-29T09:39:14.9Z".parse().unwrap();
        let a = SnapshotId::from_time(t);
        assert_eq!(a.to_string(), "2026-11-29T093914Z");
        assert_eq!(SnapshotId::parse("2026-11-29T093914Z"), Some(a.clone()));
        let b = a.successor();
        assert_eq!(b.to_string(), "2026-11-29T093914Z-2");
        let c = SnapshotId::parse("2026-11-29T093914Z-10").unwrap();
        assert!(a < b && b < c, "numeric, not lexicographic, sequence order");
        let d = SnapshotId::parse("2026-11-29T093915Z").unwrap();
        assert!(c < d);
        // Offsets are folded into UTC.
        let z: jiff::Timestamp = "2026-11-29T10:39:14+01:00".parse().unwrap();
        assert_eq!(SnapshotId::from_time(z), a);
    }

    #[test]
    fn id_rejects_lookalikes() {
        for bad in [
            "",
            "2026-11-29T093914",
            "2026-11-29T09:39:14Z",
            "2026-11-29T093914Z-1",
            "2026-11-29T093914Z-02",
            "2026-11-29T093914Z-",
            "2026-11-29T093914Z-2x",
            "2026-11-29T093914Z ",
            "x026-11-29T093914Z",
            "2026-11-29T093914Z-99999999999",
            "2026-11-29T093914Z\n",
            "２026-11-29T093914Z",
        ] {
            assert_eq!(SnapshotId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn classify_names() {
        let id = SnapshotId::parse("2026-11-29T093914Z").unwrap();
        assert_eq!(
            classify("2026-11-29T093914Z"),
            Some(Name::Snapshot(id.clone()))
        );
        assert_eq!(
            classify("2026-11-29T093914Z.json"),
            Some(Name::Manifest(id.clone()))
        );
        assert_eq!(
            classify(".incomplete-2026-11-29T093914Z"),
            Some(Name::Incomplete(id.clone()))
        );
        assert_eq!(
            classify(".incomplete-2026-11-29T093914Z.json"),
            Some(Name::IncompleteManifest(id.clone()))
        );
        assert_eq!(
            classify(".deleting-2026-11-29T093914Z"),
            Some(Name::Deleting(id.clone()))
        );
        assert_eq!(
            classify(".latest-new-2026-11-29T093914Z"),
            Some(Name::LatestNew(id.clone()))
        );
        assert_eq!(classify("latest"), Some(Name::Latest));
        for theirs in [
            "photos",
            ".deleting-photos",
            ".deleting-",
            ".incomplete-x.json",
            "2026-11-29T093914Z.json.bak",
            "2026-11-29T093914Z.tmp",
            "latest2",
            ".latest",
            "lost+found",
        ] {
            assert_eq!(classify(theirs), None, "{theirs:?}");
        }
        assert_eq!(deleting(&id), ".deleting-2026-11-29T093914Z");
        assert_eq!(manifest(&id), "2026-11-29T093914Z.json");
        assert_eq!(
            incomplete_manifest(&id),
            ".incomplete-2026-11-29T093914Z.json"
        );
    }
}
