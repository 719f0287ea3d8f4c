//! Snapshot series: each run of a sync makes a new, complete, hard-linked copy of the source
//! under the sync's `dest`, locally or on another host over ssh.
//!
//! Owns: the layout of a series directory, the life of a snapshot (begin → rsync by the
//! runner → commit; or left incomplete and reused by the next begin), listing complete
//! snapshots from their manifests, removing snapshots (for prune) and restoring one.
//!
//! Must not: run the sync's rsync or decide when to run (the runner does), decide which
//! snapshots to keep (retention does, from [`Series::list`]), walk snapshot trees, or touch
//! any name in the series directory that is not ours ([`names::classify`]).
//!
//! # Layout of `DEST`
//! ```text
//! DEST/2026-11-28T093902Z/        a complete snapshot: exactly the source tree
//! DEST/2026-11-28T093902Z.json    its manifest (one line of JSON)
//! DEST/2026-11-29T093914Z/
//! DEST/2026-11-29T093914Z.json
//! DEST/latest -> 2026-11-29T093914Z   the newest complete snapshot (relative symlink)
//! DEST/.incomplete-2026-11-30T093920Z/       being written, or left by a failed run
//! DEST/.deleting-2026-11-01T093900Z/         being removed
//! ```
//! Ids are the run's start in UTC to the second (sortable, no colons); `-2`, `-3`, … follow
//! when a second run starts within the same second (or the clock went back), so the id order
//! is always the order in which runs began. Ids never change (prune renames nothing it keeps).
//!
//! **Complete** means: a directory `<id>` and a regular file `<id>.json` beside it whose
//! content names `<id>`. Nothing else is listed, restored or used as `--link-dest`.
//!
//! **Why the manifest lives beside the snapshot, not inside:** the snapshot directory then
//! holds exactly the source tree, with no reserved name: a source file called like the
//! manifest can never collide with it, `DEST/latest/` can be browsed or synced onwards as
//! is, and a restore cannot copy a manifest by construction (no exclude rule to get wrong
//! for `--path`). The price is two renames per commit instead of one; the order below keeps
//! every crash state harmless.
//!
//! # Crash safety
//! * commit: flush the file system (`syncfs` locally, `sync` remotely: rsync does not
//!   fsync, and a power cut must not leave a listed snapshot with lost data); write
//!   `.incomplete-<id>.json`; rename `.incomplete-<id>` → `<id>`; rename the
//!   manifest → `<id>.json` (**the commit point**); switch `latest`. A crash before the
//!   commit point leaves a directory without manifest: not listed; the next `begin` reuses
//!   it. A crash after it leaves `latest` one snapshot behind until the next commit.
//! * remove: rename `<id>` → `.deleting-<id>` (from now on not listed); unlink `<id>.json`;
//!   remove the tree. Leftovers (`.deleting-…`, an orphan `<id>.json`) are finished off by
//!   the next commit, removal or [`Series::cleanup`].
//! * `latest` is replaced by `rename(2)` of a new symlink over it: atomic locally, and
//!   remotely wherever `mv -T` or `mv -h` exists (see [`remote`] for the fallback).
//!
//! # Use by the runner
//! ```text
//! let p = series.begin(&started)?;             // .incomplete-<id>, link-dest chosen
//! rsync opts + p.rsync_extra(), dest p.rsync_dest(), -e series.rsync_rsh()
//! on exit 0 or 24: series.commit(p, RunInfo { .. })?; otherwise drop p
//! ```

mod backend;
mod error;
mod local;
pub mod manifest;
pub mod names;
mod remote;
mod restore;
mod series;

pub use crate::config::words::snapshot_forbidden as forbidden_option;
pub use error::SnapshotError;
pub use manifest::Manifest;
pub use names::SnapshotId;
pub use restore::{
    clean_subpath, restore, restore_plan, RestorePlan, RestoreRequest, RESTORE_OPTS,
};
pub use series::{Location, Pending, RunInfo, Series};
