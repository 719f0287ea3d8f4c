//! How a run ended: [`RunOutcome`], its typed error [`RunError`] with a [`kind`](RunError::kind)
//! that history, metrics and notifications can tell apart, and the one word for each ending
//! ([`RunStatus::as_str`]).
//!
//! Must not: decide exit codes (that is [`crate::exit`]) or format log lines.

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::EngineError;
use crate::events::SyncReport;
use crate::lock::LockError;

/// The answer a run gives its caller.
#[derive(Debug)]
pub struct RunOutcome {
    pub job: String,
    pub run_id: String,
    pub result: Result<(), RunError>,
    pub syncs: Vec<SyncReport>,
    /// Restore points the engine committed (snapshot and archive modes).
    pub restore_points: Vec<String>,
    /// Time spent waiting for blockers and the run lock.
    pub waited: Duration,
    pub duration: Duration,
}

impl RunOutcome {
    pub fn status(&self) -> RunStatus {
        match &self.result {
            Ok(()) => RunStatus::Success,
            Err(e) => e.status(),
        }
    }

    /// The error's text, empty on success.
    pub fn message(&self) -> String {
        match &self.result {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }
}

/// The four ways a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Success,
    /// A sync failed, a guard refused, or a lock could not be handled.
    Failed,
    /// Blockers were still present at `max_wait` (or at once, with `--no-wait`).
    Blocked,
    /// Stopped from outside (signal, daemon shutdown).
    Cancelled,
    /// A `before` hook exited 75: the run did not sync, on purpose.
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Blocked => "blocked",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// What kind of failure, for everything downstream of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Config,
    /// A lock of this run was removed or taken over while it ran.
    LockLost,
    Blocked,
    /// The other host could not be reached, refused us, or timed out.
    Transport,
    /// rsync exited with this code.
    RsyncExit(i32),
    /// A check refused to copy (empty source with --delete).
    GuardRefused,
    Cancelled,
    /// A local or remote file-system problem, or rsync could not be run.
    Io,
    /// The job's `timeout` passed.
    Timeout,
    /// A hook failed (a `before` hook with `on_error: abort`).
    Hook,
    /// A `before` hook asked to skip the run.
    Skipped,
}

impl ErrorKind {
    pub fn as_str(self) -> String {
        match self {
            ErrorKind::Config => "config".into(),
            ErrorKind::LockLost => "lock-lost".into(),
            ErrorKind::Blocked => "blocked".into(),
            ErrorKind::Transport => "transport".into(),
            ErrorKind::RsyncExit(n) => format!("rsync-exit({n})"),
            ErrorKind::GuardRefused => "guard-refused".into(),
            ErrorKind::Cancelled => "cancelled".into(),
            ErrorKind::Io => "io".into(),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Hook => "hook".into(),
            ErrorKind::Skipped => "skipped".into(),
        }
    }
}

/// Why a run did not succeed. The text is what logs and `status` show.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create runtime directory {}: {source}", .path.display())]
    RuntimeDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open run lock {}: {source}", .path.display())]
    RunLockOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {}: {source}", .path.display())]
    RunLock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Still blocked when waiting had to end; the text names the obstacle and its holder.
    #[error("{reason}")]
    Blocked { reason: String },
    #[error("cannot take lock: {source}")]
    TakeLock {
        #[source]
        source: LockError,
    },
    #[error("cannot check blocker: {source}")]
    CheckBlocker {
        #[source]
        source: LockError,
    },
    #[error("cannot remove stale lock: {source}")]
    BreakStale {
        #[source]
        source: LockError,
    },
    /// Dry run: a lock or blocker could not be inspected.
    #[error("cannot check {what}: {source}")]
    Inspect {
        what: &'static str,
        #[source]
        source: LockError,
    },
    #[error("a lock file of this run was removed or taken over while it ran")]
    LockLost,
    /// etcd refused a request or gave an answer we cannot read (lock_backend etcd or both).
    #[error("{source}")]
    Etcd {
        #[source]
        source: crate::lock::etcd::EtcdError,
    },
    /// The run's etcd lease expired or went unconfirmed too long while it ran.
    #[error("the etcd lease of this run was lost while it ran: {why}")]
    LeaseLost { why: String },
    /// One of the run's etcd keys was deleted (`locks break`), taken by another holder, or could
    /// not be proven ours for half the lease TTL, while it ran.
    #[error("etcd key {key} {why}; this run held it and was stopped")]
    KeyLost { key: String, why: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("run cancelled")]
    Cancelled,
    /// The job's `timeout` passed; `doing` says what the run was doing then.
    #[error(
        "the run did not finish within its timeout of {} and was stopped ({doing})",
        crate::config::duration::format(*.limit)
    )]
    TimedOut {
        limit: std::time::Duration,
        doing: String,
    },
    /// A `before` hook failed with `on_error: abort`; no sync ran.
    #[error("before hook {index} ({command}) {source}")]
    Hook {
        index: usize,
        command: String,
        #[source]
        source: crate::hooks::HookError,
    },
    /// A dump failed; no sync ran.
    #[error("dump {index} ({what}) failed: {source}")]
    Dump {
        index: usize,
        what: String,
        #[source]
        source: crate::hooks::dump::DumpError,
    },
    /// A `before` hook exited 75.
    #[error("skipped: before hook {index} ({command}) exited 75")]
    Skipped { index: usize, command: String },
}

impl RunError {
    pub fn kind(&self) -> ErrorKind {
        let lock = |e: &LockError| {
            if e.is_transport() {
                ErrorKind::Transport
            } else {
                ErrorKind::Io
            }
        };
        match self {
            RunError::RuntimeDir { .. }
            | RunError::RunLockOpen { .. }
            | RunError::RunLock { .. } => ErrorKind::Io,
            RunError::Blocked { .. } => ErrorKind::Blocked,
            RunError::TakeLock { source }
            | RunError::CheckBlocker { source }
            | RunError::BreakStale { source }
            | RunError::Inspect { source, .. } => lock(source),
            RunError::LockLost | RunError::LeaseLost { .. } | RunError::KeyLost { .. } => {
                ErrorKind::LockLost
            }
            RunError::Etcd { .. } => ErrorKind::Transport,
            RunError::Engine(e) => match e {
                EngineError::GuardRefused { .. } => ErrorKind::GuardRefused,
                EngineError::Rsync { .. } => ErrorKind::Io,
                EngineError::RsyncExit { exit_code, .. } => ErrorKind::RsyncExit(*exit_code),
                EngineError::Series { .. } => ErrorKind::Io,
                EngineError::Cancelled => ErrorKind::Cancelled,
            },
            RunError::Cancelled => ErrorKind::Cancelled,
            RunError::TimedOut { .. } => ErrorKind::Timeout,
            RunError::Hook { source, .. } if source.is_transport() => ErrorKind::Transport,
            RunError::Hook { .. } => ErrorKind::Hook,
            RunError::Dump { source, .. } if source.is_transport() => ErrorKind::Transport,
            RunError::Dump { .. } => ErrorKind::Hook,
            RunError::Skipped { .. } => ErrorKind::Skipped,
        }
    }

    pub fn status(&self) -> RunStatus {
        match self.kind() {
            ErrorKind::Blocked => RunStatus::Blocked,
            ErrorKind::Cancelled => RunStatus::Cancelled,
            ErrorKind::Skipped => RunStatus::Skipped,
            _ => RunStatus::Failed,
        }
    }
}
