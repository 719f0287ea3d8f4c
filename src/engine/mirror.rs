//! The mirror engine: one rsync per sync into its destination, as the original design has it.
//! Transient rsync failures (network, protocol, timeouts) are retried with a growing pause.
//!
//! The rsync argument vectors are built once, when the plan is built; a run only adds
//! `--dry-run` when asked.
//!
//! Must not: take or look at locks, or decide what a failure means for the run's exit code.

use std::sync::Arc;
use std::time::Duration;

use super::{guard, Engine, EngineError, Far, SyncCtx};
use crate::config::Sync;
use crate::events::{EventKind, SyncReport};
use crate::rsync::{self, ExitClass, RsyncCommand};
use crate::sys::cancel::sleep_cancellable;
use crate::transport::Transport;

/// Longest pause between retries of a transiently failed sync.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One sync, ready to run.
#[derive(Debug, Clone)]
pub struct MirrorSync {
    pub sync: Sync,
    pub command: RsyncCommand,
}

#[derive(Debug)]
pub struct Mirror {
    pub syncs: Vec<MirrorSync>,
    /// The other host, for messages (`None` for local syncs).
    pub far: Option<Far>,
    /// How many times a transient failure is retried.
    pub retries: u32,
}

impl Mirror {
    /// Builds the rsync commands of `syncs`, through `remote` when the destination is another
    /// host. `cancel_grace` is how long rsync gets between SIGTERM and SIGKILL on a cancel.
    pub fn new(
        syncs: &[Sync],
        remote: Option<&Arc<dyn Transport>>,
        retries: u32,
        cancel_grace: Duration,
    ) -> Mirror {
        let syncs = syncs
            .iter()
            .map(|sync| {
                let mut cmd = RsyncCommand::new(sync.source.clone(), sync.dest.clone());
                cmd.opts = sync.args.clone();
                cmd.cancel_grace = cancel_grace;
                if let Some(t) = remote {
                    cmd.rsh = Some(t.rsync_rsh());
                    cmd.dest = t.rsync_operand(&sync.dest);
                    // Send the remote path inside the rsync protocol, not on the remote shell's
                    // command line: rsync 3.2.7's default escaping leaves backticks alone, so a
                    // dest containing `cmd` would run cmd on the remote host.
                    cmd.extra.push("--protect-args".into());
                }
                MirrorSync {
                    sync: sync.clone(),
                    command: cmd,
                }
            })
            .collect();
        Mirror {
            syncs,
            far: remote.map(|t| Far::Dest(t.to_string())),
            retries,
        }
    }
}

impl Engine for Mirror {
    fn syncs(&self) -> usize {
        self.syncs.len()
    }

    fn preflight(&self, index: usize, _ctx: &SyncCtx) -> Result<(), EngineError> {
        let sync = &self.syncs[index].sync;
        guard::empty_source(sync, guard::Risk::Deletes)
            .and_then(|()| guard::unmounted(sync, guard::Risk::Deletes))
            .map_err(|message| EngineError::GuardRefused { index, message })
    }

    fn transfer(&self, index: usize, ctx: &SyncCtx) -> Result<SyncReport, EngineError> {
        let s = &self.syncs[index];
        let mut cmd = s.command.clone();
        cmd.dry_run = ctx.dry_run;
        run_with_retries(index, &cmd, &s.sync, self.retries, self.far.as_ref(), ctx)
    }

    fn commit(&self, _: usize, _: &SyncReport, _: &SyncCtx) -> Result<Option<String>, EngineError> {
        Ok(None)
    }
}

/// Runs `cmd`, retrying transient failures up to `retries` times. Shared by every engine that
/// copies with rsync.
pub fn run_with_retries(
    index: usize,
    cmd: &RsyncCommand,
    sync: &Sync,
    retries: u32,
    far: Option<&Far>,
    ctx: &SyncCtx,
) -> Result<SyncReport, EngineError> {
    let mut cmd = cmd.clone();
    cmd.progress = ctx.progress;
    let cmd = &cmd;
    let max_attempts = retries + 1;
    let mut attempt = 0;
    loop {
        attempt += 1;
        ctx.events.emit(EventKind::SyncStarted {
            index,
            source: cmd.source.clone(),
            dest: cmd.dest.clone(),
            attempt,
        });
        let on_line = |stream, line: &str| {
            ctx.events.emit(EventKind::SyncOutput {
                index,
                stream,
                line: line.to_string(),
            })
        };
        let res = match rsync::run(cmd, on_line, ctx.cancel) {
            Ok(r) => r,
            Err(rsync::RsyncError::Cancelled { .. }) => {
                ctx.events.emit(EventKind::SyncStopped { index });
                return Err(EngineError::Cancelled);
            }
            Err(source) => return Err(EngineError::Rsync { index, source }),
        };
        let report = SyncReport {
            index,
            exit_code: res.exit_code,
            attempts: attempt,
            stats: res.stats.clone(),
            archive: None,
            duration: res.duration,
        };
        match res.class {
            ExitClass::Ok | ExitClass::Vanished => {
                if res.class == ExitClass::Vanished {
                    ctx.events.emit(EventKind::SyncVanished { index });
                }
                ctx.events.emit(EventKind::SyncDone {
                    report: report.clone(),
                });
                return Ok(report);
            }
            ExitClass::Transient(code) if attempt < max_attempts => {
                let backoff = (Duration::from_secs(5) * 2u32.pow(attempt - 1)).min(MAX_BACKOFF);
                ctx.events.emit(EventKind::SyncRetry {
                    index,
                    exit_code: code,
                    message: res.message(),
                    backoff,
                });
                if sleep_cancellable(backoff, ctx.cancel) {
                    return Err(EngineError::Cancelled);
                }
            }
            _ => {
                return Err(EngineError::RsyncExit {
                    index,
                    exit_code: res.exit_code,
                    attempts: attempt,
                    source_path: sync.source.clone(),
                    dest: sync.dest.clone(),
                    far: far.cloned().map(Box::new),
                    message: res.message(),
                    report: Box::new(report),
                })
            }
        }
    }
}
