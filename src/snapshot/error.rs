//! Errors of the snapshot series.
//!
//! Policy: every variant names the series (`where_`: a local path or `user@host:port:path`)
//! and what was being done. A remote answer that is not exactly what our script prints is
//! [`SnapshotError::Malformed`], never "nothing there": a series must not look empty because
//! a login banner or a broken shell ate the answer.

use std::path::PathBuf;

use crate::transport::TransportError as SshError;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("invalid snapshot destination {dest:?}: {reason}")]
    InvalidDest { dest: String, reason: String },

    #[error("{where_}: {op} failed: {source}")]
    Io {
        where_: String,
        op: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{where_}: {op}: {source}")]
    Ssh {
        where_: String,
        op: &'static str,
        #[source]
        source: SshError,
    },

    #[error("{where_}: {op} failed on the remote host (exit status {status})\n{stderr_tail}")]
    Remote {
        where_: String,
        op: &'static str,
        status: i32,
        stderr_tail: String,
    },

    #[error(
        "{where_}: {op}: the remote answer is not well-formed ({reason}); refusing to guess. \
         Does the remote login print anything (motd, echo in a shell rc file)? It starts: {excerpt:?}"
    )]
    Malformed {
        where_: String,
        op: &'static str,
        reason: String,
        excerpt: String,
    },

    #[error("{where_}: manifest of snapshot {id} is unreadable: {reason}")]
    CorruptManifest {
        where_: String,
        id: String,
        reason: String,
    },

    #[error("{where_}: `latest` exists and is not a symlink; backupmanager will not replace it")]
    LatestNotSymlink { where_: String },

    #[error("{where_}: no complete snapshot {id:?}")]
    NotFound { where_: String, id: String },

    #[error("{where_}: the series has no complete snapshot yet")]
    Empty { where_: String },

    #[error("{where_}: refusing to remove snapshot {id}: it is the newest complete one (or `latest` points to it)")]
    RefuseNewest { where_: String, id: String },

    #[error("{where_}: snapshot {id} cannot be committed: rsync exited with code {exit_code} (only 0 and 24 make a snapshot)")]
    NotCommittable {
        where_: String,
        id: String,
        exit_code: i32,
    },

    #[error("restore path {path:?} is not allowed: {reason}")]
    InvalidPath { path: String, reason: String },

    #[error("restore target {} is not empty; pass --overwrite to restore into it anyway (nothing in it is ever deleted)", .to.display())]
    TargetNotEmpty { to: PathBuf },

    #[error("restore target {}: {reason}", .to.display())]
    BadTarget { to: PathBuf, reason: String },

    #[error("restore of snapshot {id} failed: {message}")]
    RestoreFailed { id: String, message: String },

    #[error("restore of snapshot {id}: {source}")]
    Rsync {
        id: String,
        #[source]
        source: crate::rsync::RsyncError,
    },
}
