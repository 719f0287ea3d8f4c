//! What happens during a run, as a stream of typed [`RunEvent`]s delivered to [`Observer`]s.
//!
//! The run and its engine emit events; they never format log lines themselves. Today's log
//! output is one observer ([`crate::run::log::LogObserver`]); the daemon's channel is another
//! (it forwards events to the one owner of state, which fans them out to history, metrics,
//! notifications and the web page as those arrive).
//!
//! Must not: let an observer block or fail a run. `Observer::on_event` returns nothing, and an
//! observer that needs to do slow work hands the event to its own thread or channel.
//! This module sits below run and engine and imports only plain data from below them.

use std::sync::Arc;
use std::time::Duration;

use crate::rsync::{RsyncStats, Stream};

/// One event of one run.
#[derive(Debug, Clone)]
pub struct RunEvent {
    pub job: String,
    pub run_id: String,
    pub at: jiff::Timestamp,
    pub kind: EventKind,
}

/// A lock or blocker, as events name it: its path and the host that holds the file (`"this
/// host"` or `user@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRef {
    pub path: String,
    pub host: String,
}

/// What one sync did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub index: usize,
    pub exit_code: i32,
    pub attempts: u32,
    pub stats: Option<RsyncStats>,
    pub duration: Duration,
    /// What an archive sync wrote (archive mode only; `stats` is then `None`).
    pub archive: Option<ArchiveFacts>,
}

/// One archive as events describe it: its level in its chain, the members tar listed and the
/// compressed size written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveFacts {
    pub level: u32,
    pub files: u64,
    pub bytes: u64,
}

impl ArchiveFacts {
    /// "archive level N written (X files, Y bytes)": the log's words for a finished sync.
    pub fn written(&self) -> String {
        format!(
            "archive level {} written ({} file(s), {} bytes)",
            self.level, self.files, self.bytes
        )
    }

    /// "archive ID committed (level N, X files, Y bytes) in SERIES".
    pub fn committed(&self, id: &str, series: &str) -> String {
        format!(
            "archive {id} committed (level {}, {} file(s), {} bytes) in {series}",
            self.level, self.files, self.bytes
        )
    }
}

#[derive(Debug, Clone)]
pub enum EventKind {
    /// The run began (after its id was chosen). `slot` is the schedule slot it runs for.
    Started {
        dry_run: bool,
        trigger: Trigger,
        slot: Option<jiff::Timestamp>,
    },
    /// The run waits. `lock` and `holder` name the obstacle when it is a lock file; `retry` is
    /// the re-check interval (zero for the run lock, which is re-checked every second).
    Waiting {
        reason: String,
        lock: Option<LockRef>,
        holder: Option<String>,
        retry: Duration,
    },
    LockTaken {
        lock: LockRef,
    },
    LockReleased {
        lock: LockRef,
    },
    /// At release the file no longer carried our token; it was left alone.
    LockNotOurs {
        lock: LockRef,
    },
    LockReleaseFailed {
        lock: LockRef,
        error: String,
    },
    /// A held lock could not be refreshed (the run goes on while the lease lasts).
    LockRefreshFailed {
        lock: LockRef,
        error: String,
    },
    /// A held lock is gone or taken over (`why` is `None`), or could not be confirmed in time
    /// (`why` says so): the run stops.
    LockLost {
        lock: LockRef,
        why: Option<String>,
    },
    /// An abandoned backupmanager lock was removed.
    StaleRemoved {
        lock: LockRef,
        holder: String,
        why: String,
    },
    /// Another program's stale file was ignored (and kept).
    ForeignIgnored {
        lock: LockRef,
        holder: String,
        why: String,
    },
    /// Dry run: what a lock or blocker looks like now. `state` is `absent` or a description.
    Inspected {
        what: &'static str,
        lock: LockRef,
        holder: Option<String>,
        verdict: Option<String>,
    },
    SyncStarted {
        index: usize,
        source: String,
        dest: String,
        attempt: u32,
    },
    SyncOutput {
        index: usize,
        stream: Stream,
        line: String,
    },
    /// rsync exit 24: files vanished during the transfer (normal for live data).
    SyncVanished {
        index: usize,
    },
    SyncRetry {
        index: usize,
        exit_code: i32,
        message: String,
        backoff: Duration,
    },
    SyncDone {
        report: SyncReport,
    },
    /// A snapshot (or, with `archive`, an archive) became a restore point.
    SnapshotCommitted {
        index: usize,
        id: String,
        series: String,
        archive: Option<ArchiveFacts>,
    },
    /// Retention ran over a series after a successful run.
    Pruned {
        index: usize,
        series: String,
        kept: usize,
        removed: Vec<String>,
        /// What the series holds: `snapshot` or `archive` (the log's word).
        what: &'static str,
    },
    /// Retention could not run (every snapshot is still there).
    PruneFailed {
        index: usize,
        series: String,
        error: String,
    },
    /// The run ended. `outcome` is success, failed, blocked or cancelled; `message` is the
    /// error's text, empty on success; `error_kind` its [`crate::run::ErrorKind`] as text.
    /// `syncs` has every sync that ran, including a failed one (which had no `SyncDone`).
    Finished {
        outcome: &'static str,
        message: String,
        error_kind: Option<String>,
        exit_code: i32,
        waited: Duration,
        duration: Duration,
        syncs: Vec<SyncReport>,
    },
    /// This run failed transiently and the whole run is tried again (`retry_for`) after
    /// `wait`, as try number `attempt`; no try starts after `until`.
    RunRetrying {
        attempt: u32,
        wait: Duration,
        until: jiff::Timestamp,
    },
    /// A hook began. `phase` is `before`, `after_success`, `after_failure` or `finally`;
    /// `index` its place in that list; `command` a readable form of what it runs.
    HookStarted {
        phase: &'static str,
        index: usize,
        command: String,
        remote: bool,
    },
    /// One line a hook printed.
    HookOutput {
        phase: &'static str,
        index: usize,
        stream: Stream,
        line: String,
    },
    /// A hook ended. `error` is `None` when it exited 0; `fatal` when its failure fails the
    /// run (a `before` hook with `on_error: abort`), otherwise the failure is a warning.
    HookDone {
        phase: &'static str,
        index: usize,
        exit_code: Option<i32>,
        duration: Duration,
        error: Option<String>,
        fatal: bool,
    },
    /// rsync was stopped because the run was cancelled (signal, `timeout`, a lost lock); sent
    /// once its process group is gone, so a log shows when copying really ended.
    SyncStopped {
        index: usize,
    },
    /// A line about an archive sync (the level chosen and why, tar's warnings), logged with
    /// `phase="archive"`; `Stderr` lines are warnings.
    ArchiveOutput {
        index: usize,
        stream: Stream,
        line: String,
    },
}

/// What started a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Trigger {
    /// `backupmanager run-job`.
    #[default]
    Manual,
    /// The daemon, at its slot.
    Schedule,
    /// The daemon, for a slot missed while it was down or the machine slept.
    CatchUp,
    /// The daemon at its start, for an `@reboot` job.
    Reboot,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch-up",
            Trigger::Reboot => "reboot",
        }
    }
}

/// Receives every event of the runs it is attached to.
pub trait Observer: Send + Sync {
    fn on_event(&self, event: &RunEvent);
}

/// Sends a run's events to its observers, stamped with the job and run id.
#[derive(Clone)]
pub struct Emitter {
    job: String,
    run_id: String,
    observers: Vec<Arc<dyn Observer>>,
}

impl Emitter {
    pub fn new(job: &str, run_id: &str, observers: Vec<Arc<dyn Observer>>) -> Emitter {
        Emitter {
            job: job.into(),
            run_id: run_id.into(),
            observers,
        }
    }

    pub fn emit(&self, kind: EventKind) {
        let ev = RunEvent {
            job: self.job.clone(),
            run_id: self.run_id.clone(),
            at: jiff::Timestamp::now(),
            kind,
        };
        for o in &self.observers {
            o.on_event(&ev);
        }
    }
}
