//! One snapshot series: the life of a snapshot from `begin` to `commit` to `remove`.
//!
//! Owns: the rules (which names are complete, which incomplete one is reused, which id a new
//! run gets, what may be removed) and the order of the steps that keep them true across a
//! crash at any point. Each public method reads the directory once ([`Inventory`]) and then
//! applies its steps in one go (one ssh round trip each when remote).
//!
//! Must not: run rsync (the runner does, with [`Pending::rsync_extra`] and
//! [`Pending::rsync_dest`]), walk snapshot trees (listing reads manifests only), or touch a
//! name that [`super::names::classify`] does not call ours.
//!
//! One writer per series: the job's run lock guarantees it. Readers (listing, restore) may
//! run at any time and only ever see complete snapshots.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use jiff::Zoned;

use super::backend::{Inventory, Kind, LatestState, Op};
use super::error::SnapshotError;
use super::manifest::{start_time, Manifest};
use super::names::{self, Name, SnapshotId};
use super::{local, remote};
use crate::rsync::{classify, ExitClass, RsyncStats};
use crate::transport::Transport;
use std::sync::Arc;

/// Where a series lives.
#[derive(Debug, Clone)]
pub enum Location {
    /// This host: std::fs, no shell.
    Local,
    /// Another host: every operation is one POSIX `sh` script over its transport.
    Remote(Arc<dyn Transport>),
}

/// A sync's `dest`, holding one directory per snapshot. See the module docs of
/// [`crate::snapshot`] for the layout.
#[derive(Debug, Clone)]
pub struct Series {
    location: Location,
    dest: String,
    /// Limit for a remote listing or a step without tree removal (default 2 min).
    pub remote_timeout: Duration,
    /// Limit for a remote step that removes trees (default 6 h: a big snapshot takes long).
    pub remote_purge_timeout: Duration,
}

/// What the caller tells [`Series::commit`] about the run that filled the snapshot.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub job: String,
    pub run_id: String,
    /// rsync's exit code; only 0 and 24 can be committed.
    pub rsync_exit: i32,
    /// `--stats` of that rsync, if it printed them.
    pub stats: Option<RsyncStats>,
}

/// A snapshot being written: `DEST/.incomplete-<id>/`. Commit it after rsync succeeded, or
/// drop it (the next `begin` reuses or removes it).
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a pending snapshot must be committed (or is reused by the next begin)"]
pub struct Pending {
    id: SnapshotId,
    started: Zoned,
    link_dest: Option<String>,
    reused: bool,
    rsync_dest: String,
}

impl Pending {
    /// The id it will have once committed.
    pub fn id(&self) -> &SnapshotId {
        &self.id
    }
    /// The run's start (whole seconds, with its offset), as the manifest will say.
    pub fn started(&self) -> &Zoned {
        &self.started
    }
    /// Absolute path (on the series' host) of the newest complete snapshot, if any.
    pub fn link_dest(&self) -> Option<&str> {
        self.link_dest.as_deref()
    }
    /// True when an incomplete snapshot of an earlier run was taken over (it holds data).
    pub fn reused(&self) -> bool {
        self.reused
    }
    /// rsync's destination operand: `DEST/.incomplete-<id>/`, as `host:path` when remote.
    pub fn rsync_dest(&self) -> &str {
        &self.rsync_dest
    }
    /// Options to add after the job's own: `--link-dest=<newest complete>` (absolute), and
    /// for a reused directory `--delete --delete-excluded`, so that what an earlier,
    /// interrupted run copied but the source no longer has does not stay in the snapshot.
    /// Both act only inside the pending directory.
    pub fn rsync_extra(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(l) = &self.link_dest {
            v.push(format!("--link-dest={l}"));
        }
        if self.reused {
            v.push("--delete".into());
            v.push("--delete-excluded".into());
        }
        v
    }
}

/// Check a series path: absolute, not `/`, no `..`, no NUL or newline. Trailing `/` removed.
fn check_dest(dest: &str) -> Result<String, SnapshotError> {
    let bad = |reason: &str| SnapshotError::InvalidDest {
        dest: dest.to_string(),
        reason: reason.to_string(),
    };
    if !dest.starts_with('/') {
        return Err(bad("must be an absolute path"));
    }
    if dest.contains(['\0', '\n']) {
        return Err(bad("must not contain NUL or newline"));
    }
    if dest.split('/').any(|c| c == "..") {
        return Err(bad("must not contain `..`"));
    }
    let trimmed = dest.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(bad("must not be `/`"));
    }
    Ok(trimmed.to_string())
}

/// The complete snapshots and everything else of ours, read from one inventory.
struct State {
    /// Complete snapshots, newest first.
    complete: Vec<Manifest>,
    /// Incomplete directories (`.incomplete-<id>`, or `<id>` without a manifest), oldest first.
    incomplete: Vec<(SnapshotId, String)>,
    /// Files of ours that serve nothing: orphan manifests, half-written manifests,
    /// temporary `latest` links.
    junk: Vec<String>,
    /// Every id used by any name of ours.
    ids: BTreeSet<SnapshotId>,
    latest: LatestState,
}

impl Series {
    /// A series at `dest` (absolute; on the remote host for [`Location::Remote`]).
    pub fn new(location: Location, dest: &str) -> Result<Series, SnapshotError> {
        Ok(Series {
            dest: check_dest(dest)?,
            location,
            remote_timeout: Duration::from_secs(120),
            remote_purge_timeout: Duration::from_secs(6 * 3600),
        })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The series directory (no trailing slash).
    pub fn dest(&self) -> &str {
        &self.dest
    }

    /// The series for messages: the path, or `user@host:port:path`.
    pub fn where_(&self) -> String {
        match &self.location {
            Location::Local => self.dest.clone(),
            Location::Remote(t) => remote::where_(&**t, &self.dest),
        }
    }

    /// Absolute path of snapshot `id` on the series' host.
    pub fn snapshot_path(&self, id: &SnapshotId) -> String {
        format!("{}/{id}", self.dest)
    }

    /// An rsync operand for `path` on the series' host (`host:path` when remote).
    pub fn rsync_operand(&self, path: &str) -> String {
        match &self.location {
            Location::Local => path.to_string(),
            Location::Remote(t) => t.rsync_operand(path),
        }
    }

    /// rsync's `-e` for this series (`None` when local).
    pub fn rsync_rsh(&self) -> Option<String> {
        match &self.location {
            Location::Local => None,
            Location::Remote(t) => Some(t.rsync_rsh()),
        }
    }

    fn inventory(&self) -> Result<Inventory, SnapshotError> {
        match &self.location {
            Location::Local => local::inventory(Path::new(&self.dest)),
            Location::Remote(t) => remote::inventory(&**t, &self.dest, self.remote_timeout),
        }
    }

    pub(crate) fn apply(&self, what: &'static str, ops: &[Op]) -> Result<(), SnapshotError> {
        if ops.is_empty() {
            return Ok(());
        }
        match &self.location {
            Location::Local => local::apply(Path::new(&self.dest), ops),
            Location::Remote(t) => {
                let timeout = if ops.contains(&Op::PurgeDeleting) {
                    self.remote_purge_timeout
                } else {
                    self.remote_timeout
                };
                remote::apply(&**t, &self.dest, what, ops, timeout)
            }
        }
    }

    fn state(&self) -> Result<State, SnapshotError> {
        let inv = self.inventory()?;
        let mut complete = Vec::new();
        for (id, bytes) in &inv.manifests {
            let m = Manifest::from_json(bytes, id).map_err(|reason| {
                SnapshotError::CorruptManifest {
                    where_: self.where_(),
                    id: id.to_string(),
                    reason,
                }
            })?;
            complete.push(m);
        }
        complete.sort_by(|a, b| b.id.cmp(&a.id));
        let complete_ids: BTreeSet<&SnapshotId> = complete.iter().map(|m| &m.id).collect();
        let mut incomplete = Vec::new();
        let mut junk = Vec::new();
        let mut ids = BTreeSet::new();
        for (n, k) in &inv.entries {
            let Some(id) = n.id() else { continue };
            ids.insert(id.clone());
            match (n, k) {
                (Name::Incomplete(id), Kind::Dir) => {
                    incomplete.push((id.clone(), names::incomplete(id)))
                }
                // A directory whose manifest never appeared (a crash inside commit) holds the
                // data of a finished rsync but is not a restore point: treat as incomplete.
                (Name::Snapshot(id), Kind::Dir) if !complete_ids.contains(id) => {
                    incomplete.push((id.clone(), id.to_string()))
                }
                (Name::Manifest(id), Kind::File) if !complete_ids.contains(id) => {
                    junk.push(names::manifest(id))
                }
                (Name::IncompleteManifest(id), Kind::File) => {
                    junk.push(names::incomplete_manifest(id))
                }
                (Name::LatestNew(id), Kind::Symlink) => junk.push(names::latest_new(id)),
                _ => {}
            }
        }
        incomplete.sort();
        Ok(State {
            complete,
            incomplete,
            junk,
            ids,
            latest: inv.latest,
        })
    }

    /// The complete snapshots, newest first. Reads the manifests only (one `readdir` and one
    /// small read per snapshot locally; one ssh round trip remotely). A series directory
    /// that does not exist yet is an empty list; a manifest that does not parse is an error.
    pub fn list(&self) -> Result<Vec<Manifest>, SnapshotError> {
        Ok(self.state()?.complete)
    }

    /// The newest complete snapshot, if any.
    pub fn newest(&self) -> Result<Option<Manifest>, SnapshotError> {
        Ok(self.list()?.into_iter().next())
    }

    /// Start a snapshot for a run that started at `started`.
    ///
    /// Creates the series directory if needed and makes `.incomplete-<id>`: the newest
    /// incomplete directory a failed run left is renamed to it (rsync into it saves work),
    /// other incomplete ones are hidden as `.deleting-…` (removed at the next commit or
    /// removal). The id is the UTC second of `started`, made unique and greater than every
    /// id in the series (`-2`, `-3`, … within one second or after the clock went back).
    /// Fails if `latest` exists and is not a symlink, before anything is changed.
    pub fn begin(&self, started: &Zoned) -> Result<Pending, SnapshotError> {
        let st = self.state()?;
        if st.latest == LatestState::NotSymlink {
            return Err(SnapshotError::LatestNotSymlink {
                where_: self.where_(),
            });
        }
        let mut id = SnapshotId::from_time(started.timestamp());
        if let Some(max) = st.ids.last() {
            if &id <= max {
                id = max.successor();
            }
        }
        let mut ops = vec![Op::CreateDest];
        let mut incomplete = st.incomplete;
        let reuse = incomplete.pop();
        for (old, name) in incomplete {
            ops.push(Op::rename(name, names::deleting(&old)));
        }
        for j in st.junk {
            ops.push(Op::RemoveFile(j));
        }
        let reused = reuse.is_some();
        match reuse {
            Some((_, name)) => ops.push(Op::rename(name, names::incomplete(&id))),
            None => ops.push(Op::MkdirIncomplete(id.clone())),
        }
        self.apply("starting a snapshot", &ops)?;
        let link_dest = st.complete.first().map(|m| self.snapshot_path(&m.id));
        let rsync_dest = self.rsync_operand(&format!("{}/{}/", self.dest, names::incomplete(&id)));
        Ok(Pending {
            id,
            started: start_time(started),
            link_dest,
            reused,
            rsync_dest,
        })
    }

    /// Make `pending` a complete snapshot after rsync exited 0 or 24: flush the file system
    /// (rsync does not fsync), write its manifest,
    /// rename `.incomplete-<id>` to `<id>`, rename the manifest into place as `<id>.json`
    /// (from that moment it is listed), point `latest` at it, then remove leftover
    /// `.deleting-…` trees. Returns the manifest written.
    pub fn commit(&self, pending: Pending, run: RunInfo) -> Result<Manifest, SnapshotError> {
        if !matches!(
            classify(run.rsync_exit),
            ExitClass::Ok | ExitClass::Vanished
        ) {
            return Err(SnapshotError::NotCommittable {
                where_: self.where_(),
                id: pending.id.to_string(),
                exit_code: run.rsync_exit,
            });
        }
        let stats = run.stats.as_ref();
        let m = Manifest {
            id: pending.id.clone(),
            time: pending.started.clone(),
            job: run.job,
            run_id: run.run_id,
            version: env!("CARGO_PKG_VERSION").to_string(),
            rsync_exit: run.rsync_exit,
            files_transferred: stats.map(|s| s.files_transferred),
            bytes_transferred: stats.map(|s| s.transferred_size),
            total_size: stats.map(|s| s.total_size),
        };
        let id = &pending.id;
        let ops = [
            Op::SyncData,
            Op::WriteIncompleteManifest {
                id: id.clone(),
                content: m.to_json(),
            },
            Op::rename(names::incomplete(id), id.to_string()),
            Op::rename(names::incomplete_manifest(id), names::manifest(id)),
            Op::SwitchLatest(id.clone()),
            Op::PurgeDeleting,
        ];
        self.apply("committing a snapshot", &ops)?;
        Ok(m)
    }

    /// Remove one complete snapshot (see [`Series::remove_many`]).
    pub fn remove(&self, id: &str) -> Result<(), SnapshotError> {
        self.remove_many(&[id])
    }

    /// Remove complete snapshots: each is first renamed to `.deleting-<id>` (so it is no
    /// longer listed), then its manifest and tree are removed. Refuses, before changing
    /// anything, an id that is not a complete snapshot, the newest complete one, and the
    /// one `latest` points to. Leftover `.deleting-…` trees are finished off too.
    pub fn remove_many(&self, ids: &[&str]) -> Result<(), SnapshotError> {
        let st = self.state()?;
        let newest = st.complete.first().map(|m| &m.id);
        let latest = match &st.latest {
            LatestState::Symlink(t) => SnapshotId::parse(t),
            _ => None,
        };
        let mut ops = Vec::new();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        for raw in unique {
            let id = SnapshotId::parse(raw)
                .filter(|id| st.complete.iter().any(|m| &m.id == id))
                .ok_or_else(|| SnapshotError::NotFound {
                    where_: self.where_(),
                    id: raw.to_string(),
                })?;
            if Some(&id) == newest || Some(&id) == latest.as_ref() {
                return Err(SnapshotError::RefuseNewest {
                    where_: self.where_(),
                    id: id.to_string(),
                });
            }
            ops.push(Op::rename(id.to_string(), names::deleting(&id)));
            ops.push(Op::RemoveFile(names::manifest(&id)));
        }
        ops.push(Op::PurgeDeleting);
        self.apply("removing snapshots", &ops)
    }

    /// Finish off what crashed runs and removals left: `.deleting-…` trees and orphan
    /// files of ours. Incomplete snapshots are left for the next `begin` to reuse.
    pub fn cleanup(&self) -> Result<(), SnapshotError> {
        let st = self.state()?;
        if !st.ids.is_empty() {
            let mut ops: Vec<Op> = st.junk.into_iter().map(Op::RemoveFile).collect();
            ops.push(Op::PurgeDeleting);
            self.apply("cleaning up", &ops)?;
        }
        Ok(())
    }

    /// Resolve `latest` (the newest complete snapshot) or an id to its manifest.
    pub fn resolve(&self, which: &str) -> Result<Manifest, SnapshotError> {
        let list = self.list()?;
        if which == names::LATEST {
            return list.into_iter().next().ok_or_else(|| SnapshotError::Empty {
                where_: self.where_(),
            });
        }
        list.into_iter()
            .find(|m| m.id.to_string() == which)
            .ok_or_else(|| SnapshotError::NotFound {
                where_: self.where_(),
                id: which.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::forbidden_option;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_that_would_damage_older_snapshots_are_named() {
        assert_eq!(forbidden_option(&words(&["-a", "--delete", "-H"])), None);
        for bad in [
            "--inplace",
            "--append-verify",
            "--link-dest=/x",
            "--backup-dir=b",
            "-b",
        ] {
            let opts = words(&["-a", bad]);
            assert_eq!(forbidden_option(&opts).map(|(o, _)| o), Some(bad), "{bad}");
        }
    }

    #[test]
    fn dest_must_be_absolute_and_plain() {
        assert_eq!(check_dest("/srv/b/").unwrap(), "/srv/b");
        assert_eq!(check_dest("/srv/it's here").unwrap(), "/srv/it's here");
        for bad in ["", "/", "//", "srv/b", "/srv/../etc", "/a\nb"] {
            assert!(check_dest(bad).is_err(), "{bad:?}");
        }
    }
}
