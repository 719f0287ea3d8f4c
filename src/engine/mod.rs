//! Engines: how a job's syncs are turned into data at the destination. [`mirror`] is today's
//! rsync mirror; snapshot and archive engines implement the same [`Engine`] trait.
//!
//! The run calls, for each sync in order: [`Engine::preflight`] (checks that may refuse, such
//! as the empty-source guard), [`Engine::transfer`] (the copy, with retries of transient
//! failures), then [`Engine::commit`] (make the copy a restore point; a mirror has nothing to
//! commit). Engines run under the job's locks and never see them.
//!
//! Must not: import [`crate::lock`] or [`crate::run`] (the arrows point down: run → engine →
//! transport/rsync → sys), decide exit codes, or format log lines (they emit events).

pub mod archive;
pub mod archive_prune;
pub mod guard;
pub mod mirror;
pub mod prune;
pub mod pull;
pub mod snapshot;

use std::sync::atomic::AtomicBool;

use crate::events::{Emitter, SyncReport};
use crate::rsync::RsyncError;

/// What an engine needs from the run it works for.
pub struct SyncCtx<'a> {
    pub job: &'a str,
    pub run_id: &'a str,
    /// When the run started (a snapshot's time).
    pub started: &'a jiff::Zoned,
    pub dry_run: bool,
    /// rsync reports its progress (`--info=progress2`) for a terminal.
    pub progress: bool,
    pub cancel: &'a AtomicBool,
    pub events: &'a Emitter,
}

/// One way of turning syncs into data at the destination.
pub trait Engine: std::fmt::Debug + Send + Sync {
    /// How many syncs this engine runs.
    fn syncs(&self) -> usize;

    /// Checks before sync `index` copies anything; an error refuses the sync.
    fn preflight(&self, index: usize, ctx: &SyncCtx) -> Result<(), EngineError>;

    /// Copies sync `index`.
    fn transfer(&self, index: usize, ctx: &SyncCtx) -> Result<SyncReport, EngineError>;

    /// Makes a successful transfer a restore point. Returns its id, if the engine keeps any.
    fn commit(
        &self,
        index: usize,
        report: &SyncReport,
        ctx: &SyncCtx,
    ) -> Result<Option<String>, EngineError>;

    /// After every sync succeeded (never after a failure or in a dry run), still under the
    /// job's locks: e.g. age out old snapshots.
    fn after_success(&self, _ctx: &SyncCtx) -> Result<(), EngineError> {
        Ok(())
    }
}

/// The host on the other end of a sync, and which end it is (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Far {
    /// A push: the destination is on this host.
    Dest(String),
    /// A pull: the source is on this host.
    Source(String),
}

impl Far {
    pub fn host(&self) -> String {
        match self {
            Far::Dest(h) | Far::Source(h) => h.clone(),
        }
    }
}

/// Why an engine could not do its part. Messages are final text for logs and history.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A check refused to copy (e.g. a `--delete` sync from an empty source).
    #[error("sync {index}: {message}")]
    GuardRefused { index: usize, message: String },
    /// rsync could not be started, was killed by a signal we did not send, or could not be
    /// waited for.
    #[error("sync {index}: {source}")]
    Rsync {
        index: usize,
        #[source]
        source: RsyncError,
    },
    /// rsync ran and exited with a failing code (after retries of transient ones).
    #[error(
        "sync {index} ({source_path}{from} -> {dest}{on}) failed after {attempts} attempt(s): {message}{hint}",
        from = match .far.as_deref() { Some(Far::Source(h)) => format!(" on {h}"), _ => String::new() },
        on = match .far.as_deref() { Some(Far::Dest(h)) => format!(" on {h}"), _ => String::new() },
        hint = match *.exit_code {
            255 => format!("\nthe connection to {} failed; check that its sshd runs and is reachable", .far.as_deref().map(Far::host).unwrap_or_default()),
            25 => "\nrefusing to delete more files at the destination than the sync's max_delete allows (a missing or half-mounted source looks like this); check the source, and if the deletions are intended raise max_delete for one run".to_string(),
            _ => String::new(),
        }
    )]
    RsyncExit {
        index: usize,
        exit_code: i32,
        attempts: u32,
        source_path: String,
        dest: String,
        /// The other host, for remote syncs (boxed: it keeps the error small).
        far: Option<Box<Far>>,
        /// rsync's own summary and stderr tail.
        message: String,
        report: Box<SyncReport>,
    },
    /// A snapshot series could not be read or changed.
    #[error("sync {index}: {message}")]
    Series { index: usize, message: String },
    #[error("run cancelled")]
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(far: Option<Far>, exit_code: i32) -> String {
        EngineError::RsyncExit {
            index: 0,
            exit_code,
            attempts: 1,
            source_path: "/data/".into(),
            dest: "/backup/".into(),
            far: far.map(Box::new),
            message: "rsync said so".into(),
            report: Box::new(SyncReport {
                index: 0,
                exit_code,
                attempts: 1,
                stats: None,
                duration: std::time::Duration::ZERO,
                archive: None,
            }),
        }
        .to_string()
    }

    #[test]
    fn a_failed_sync_names_the_host_on_the_side_it_is_on() {
        assert!(failed(None, 23).starts_with("sync 0 (/data/ -> /backup/) failed"));
        let push = failed(Some(Far::Dest("b@srv".into())), 23);
        assert!(
            push.starts_with("sync 0 (/data/ -> /backup/ on b@srv) failed"),
            "{push}"
        );
        let pull = failed(Some(Far::Source("r@client".into())), 255);
        assert!(
            pull.starts_with("sync 0 (/data/ on r@client -> /backup/) failed"),
            "{pull}"
        );
        assert!(pull.contains("the connection to r@client failed"), "{pull}");
    }
}
