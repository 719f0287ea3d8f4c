//! The few primitive operations a series needs, and what reading a series directory yields.
//!
//! Owns: [`Inventory`] (one read of the series directory: our names, their kinds, the
//! manifests of complete snapshots, where `latest` points) and [`Op`] (a step that changes
//! it, or checks a path). [`super::local`] and [`super::remote`] each implement both with the
//! same meaning; [`super::series`] decides *which* steps to take, once, for both.
//!
//! Must not: decide anything. Every name an [`Op`] touches is built from a [`SnapshotId`] by
//! [`super::names`], so an op can only ever touch names that are ours.

use super::names::{self, Name, SnapshotId};

/// A directory entry's type, from the entry itself (symlinks are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

/// What `latest` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatestState {
    Absent,
    /// A symlink; its target as written (ours are a bare id).
    Symlink(String),
    /// Something that is not a symlink: never replaced.
    NotSymlink,
}

/// One read of a series directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// False when the directory does not exist (yet).
    pub exists: bool,
    /// Entries named like ours (see [`names::classify`]), with their kinds.
    pub entries: Vec<(Name, Kind)>,
    /// Raw contents of each `<id>.json` that is a regular file beside a real `<id>` directory.
    pub manifests: Vec<(SnapshotId, Vec<u8>)>,
    pub latest: LatestState,
}

impl Inventory {
    pub fn absent() -> Inventory {
        Inventory {
            exists: false,
            entries: Vec::new(),
            manifests: Vec::new(),
            latest: LatestState::Absent,
        }
    }
}

/// A step. Names are relative to the series directory; a path is `<id>/<relative path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create the series directory and its parents if missing.
    CreateDest,
    /// Create `.incomplete-<id>`; fails if it exists.
    MkdirIncomplete(SnapshotId),
    /// Rename `from` to `to` within the series directory; fails if `to` exists.
    Rename { from: String, to: String },
    /// Flush the file system holding the series to stable storage (rsync does not fsync),
    /// so that a snapshot is durable before it becomes complete.
    SyncData,
    /// Write `content` to a new file `.incomplete-<id>.json` (replacing a leftover).
    WriteIncompleteManifest { id: SnapshotId, content: String },
    /// Remove a file of ours (never a directory); absent is fine.
    RemoveFile(String),
    /// Point `latest` at `<id>`, atomically where the remote userland allows (see remote.rs).
    SwitchLatest(SnapshotId),
    /// Remove every `.deleting-<id>` tree.
    PurgeDeleting,
    /// Fail unless `path` (relative to the series directory) exists and is not a symlink.
    AssertRealDir(String),
    /// Fail if `path` is a symlink (it may be absent).
    AssertNotSymlink(String),
    /// Fail unless `path` exists (a symlink counts, dangling or not).
    AssertExists(String),
}

impl Op {
    /// Rename a snapshot-ish name to another of ours.
    pub fn rename(from: String, to: String) -> Op {
        debug_assert!(names::classify(&from).is_some() && names::classify(&to).is_some());
        Op::Rename { from, to }
    }
}
