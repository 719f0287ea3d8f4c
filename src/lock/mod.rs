//! Lock files: create atomically, inspect, judge stale, release or refresh only if ours.
//!
//! The protocol (what a run does with these operations, and why that order makes chained
//! instances safe) is told once, in DESIGN.md, "The lock protocol"; this module provides the
//! operations:
//! - [`LockBackend`]: where lock files live. [`LocalFiles`] uses system calls on this host;
//!   [`RemoteFiles`] runs small POSIX scripts over a [`crate::transport::Transport`].
//! - [`etcd`]: locks and slots as etcd keys. Not a [`LockBackend`]: it takes all of a run's
//!   keys in one transaction under one lease, which a per-path trait cannot express.
//! - [`record`]: the one line of JSON a lock holds, and who we are.
//! - [`judge`]: the pure verdict on an observed lock.
//!
//! The token in each record is what makes release safe: only a file whose token is the
//! caller's is ever removed or refreshed. A file that is not a backupmanager record (another
//! program's lock) is never removed.
//!
//! Must not: know about jobs, waiting, engines or rsync (the run decides what to do with a
//! verdict), nor import [`crate::engine`].

// Lock operations run a few times per job run and their errors end the run: the size of
// `LockError` (which carries an `SshError`) costs nothing measurable.
#![allow(clippy::large_enum_variant, clippy::result_large_err)]

pub mod etcd;
pub mod judge;
pub mod local;
pub mod record;
pub mod remote;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

pub use judge::{judge, Foreign, Holder, Observed, Verdict};
pub use local::LocalFiles;
pub use record::{Identity, Record};
pub use remote::RemoteFiles;

use crate::transport::TransportError;

/// We read at most this much of a lock file.
const MAX_READ: usize = 4096;

/// Why a directory at a lock path fails the run (locally; the remote scripts say the same).
const IS_A_DIRECTORY: &str =
    "is a directory, not a lock file; remove it or change the path in the configuration";

/// The result of trying to create a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Yes,
    /// The name was taken; here is what holds it (None: it vanished before we could read it).
    Exists(Option<Observed>),
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lock file {path} on {target}: {source}")]
    Ssh {
        path: String,
        target: String,
        #[source]
        source: TransportError,
    },
    #[error("lock file {path} on {target}: {message}")]
    Remote {
        path: String,
        target: String,
        message: String,
    },
}

impl LockError {
    /// True when the host could not be reached or refused us (as opposed to a local or remote
    /// file-system problem).
    pub fn is_transport(&self) -> bool {
        matches!(self, LockError::Ssh { .. })
    }
}

/// Where lock files live, and the operations the lock protocol needs there.
pub trait LockBackend: fmt::Debug + fmt::Display + Send + Sync {
    /// Atomically creates `path` holding `record`, creating a missing parent directory.
    fn try_create(&self, path: &str, record: &Record) -> Result<Created, LockError>;

    /// What is at `path`, if anything.
    fn observe(&self, path: &str) -> Result<Option<Observed>, LockError>;

    /// Removes `path` if it still holds `token`. Returns whether it removed it.
    fn release_if_token(&self, path: &str, token: &str) -> Result<bool, LockError>;

    /// Refreshes the mtime of `path` if it still holds `token`. Returns false if it is no
    /// longer ours.
    fn refresh_if_token(&self, path: &str, token: &str) -> Result<bool, LockError>;

    /// True when the files are on this host's filesystem (the reboot rule needs it).
    fn is_local(&self) -> bool;

    /// A local file whose removal should wake a waiter at once (inotify), if this backend can
    /// offer one; otherwise the waiter polls.
    fn waker(&self, path: &str) -> Option<PathBuf>;

    /// Waits up to `limit` on the host holding `path` for it to be gone (remote hosts that run
    /// backupmanager: `watch-lock` over ssh). `Some(true)`: gone; `Some(false)`: still there at
    /// the limit; `None`: this backend cannot watch (the waiter polls).
    fn watch_gone(&self, _path: &str, _limit: std::time::Duration) -> Option<bool> {
        None
    }
}

/// Who holds a regular file that starts with `text` and is `size` bytes long (if known). Of a
/// file that is not ours only the size is kept, never its text.
fn holder_of(text: &str, size: Option<u64>) -> Holder {
    match Record::parse(text) {
        Some(r) => Holder::Ours(r),
        None => Holder::Foreign(Foreign::File { size }),
    }
}
