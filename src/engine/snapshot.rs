//! The snapshot engine: each run of a sync makes a new dated, hard-linked copy of its source in
//! the sync's `dest` (a [`Series`]), and a successful run ages old ones out by the job's
//! retention policy.
//!
//! Per sync: `preflight` refuses a missing or empty source (an unmounted disk would become a
//! "newest" empty snapshot, and retention would then count it as a restore point); `transfer`
//! begins a pending snapshot and runs rsync into it with `--link-dest` to the newest complete
//! one; `commit` makes it complete (exit 0 or 24 only). After every sync succeeded,
//! `after_success` prunes each series. A dry run reads the newest snapshot and shows what
//! rsync would change against it; it creates nothing.
//!
//! Must not: take or look at locks, or remove anything but what the pruning plan names.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::tz::TimeZone;

use super::mirror::run_with_retries;
use super::{guard, prune, Engine, EngineError, Far, SyncCtx};
use crate::config::Sync;
use crate::events::{EventKind, SyncReport};
use crate::retention::Policy;
use crate::rsync::RsyncCommand;
use crate::snapshot::{self, Location, Pending, RunInfo, Series};
use crate::transport::Transport;

/// One sync's series and command template.
#[derive(Debug)]
pub struct SnapshotSync {
    pub sync: Sync,
    pub series: Series,
    /// The job's options, without source and destination (those come from the series).
    pub command: RsyncCommand,
}

#[derive(Debug)]
pub struct Snapshots {
    pub syncs: Vec<SnapshotSync>,
    pub policy: Policy,
    /// The zone retention counts days, weeks, ... in.
    pub tz: TimeZone,
    pub retries: u32,
    /// The other host, for messages (`None` for local syncs).
    pub far: Option<Far>,
    /// The pending snapshot of each sync during a run (one run of a job at a time: the run
    /// lock sees to that).
    pending: Mutex<Vec<Option<Pending>>>,
}

impl Snapshots {
    pub fn new(
        syncs: &[Sync],
        remote: Option<&Arc<dyn Transport>>,
        policy: Policy,
        tz: TimeZone,
        retries: u32,
        cancel_grace: Duration,
    ) -> Result<Snapshots, snapshot::SnapshotError> {
        let syncs = syncs
            .iter()
            .map(|sync| {
                let location = match remote {
                    Some(t) => Location::Remote(Arc::clone(t)),
                    None => Location::Local,
                };
                let series = Series::new(location, &sync.dest)?;
                let mut cmd = RsyncCommand::new(sync.source.clone(), String::new());
                cmd.opts = sync.args.clone();
                cmd.cancel_grace = cancel_grace;
                if let Some(t) = remote {
                    cmd.rsh = Some(t.rsync_rsh());
                    // Remote paths travel inside the rsync protocol (see the mirror engine).
                    cmd.extra.push("--protect-args".into());
                }
                Ok(SnapshotSync {
                    sync: sync.clone(),
                    series,
                    command: cmd,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = syncs.len();
        Ok(Snapshots {
            syncs,
            policy,
            tz,
            retries,
            far: remote.map(|t| Far::Dest(t.to_string())),
            pending: Mutex::new(vec![None; n]),
        })
    }

    fn series_err(index: usize, e: impl std::fmt::Display) -> EngineError {
        EngineError::Series {
            index,
            message: e.to_string(),
        }
    }
}

impl Engine for Snapshots {
    fn syncs(&self) -> usize {
        self.syncs.len()
    }

    fn preflight(&self, index: usize, _ctx: &SyncCtx) -> Result<(), EngineError> {
        // Whatever the options say: a snapshot of a missing source would count as the newest
        // restore point.
        let sync = &self.syncs[index].sync;
        guard::empty_source(sync, guard::Risk::Snapshot)
            .and_then(|()| guard::unmounted(sync, guard::Risk::Snapshot))
            .map_err(|message| EngineError::GuardRefused { index, message })
    }

    fn transfer(&self, index: usize, ctx: &SyncCtx) -> Result<SyncReport, EngineError> {
        let s = &self.syncs[index];
        let mut cmd = s.command.clone();
        if ctx.dry_run {
            cmd.dry_run = true;
            let newest = s.series.newest().map_err(|e| Self::series_err(index, e))?;
            let against = match &newest {
                Some(m) => format!("{}/", s.series.snapshot_path(&m.id)),
                None => format!("{}/", s.series.dest()),
            };
            cmd.dest = s.series.rsync_operand(&against);
            return run_with_retries(index, &cmd, &s.sync, self.retries, self.far.as_ref(), ctx);
        }
        let pending = s
            .series
            .begin(ctx.started)
            .map_err(|e| Self::series_err(index, e))?;
        cmd.extra.extend(pending.rsync_extra());
        cmd.dest = pending.rsync_dest().to_string();
        let report = run_with_retries(index, &cmd, &s.sync, self.retries, self.far.as_ref(), ctx)?;
        self.pending.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(pending);
        Ok(report)
    }

    fn commit(
        &self,
        index: usize,
        report: &SyncReport,
        ctx: &SyncCtx,
    ) -> Result<Option<String>, EngineError> {
        let Some(pending) = self.pending.lock().unwrap_or_else(|e| e.into_inner())[index].take()
        else {
            return Ok(None);
        };
        let s = &self.syncs[index];
        let m = s
            .series
            .commit(
                pending,
                RunInfo {
                    job: ctx.job.to_string(),
                    run_id: ctx.run_id.to_string(),
                    rsync_exit: report.exit_code,
                    stats: report.stats.clone(),
                },
            )
            .map_err(|e| Self::series_err(index, e))?;
        ctx.events.emit(EventKind::SnapshotCommitted {
            index,
            id: m.id.to_string(),
            series: s.series.where_(),
            archive: None,
        });
        Ok(Some(m.id.to_string()))
    }

    fn after_success(&self, ctx: &SyncCtx) -> Result<(), EngineError> {
        let now = jiff::Timestamp::now();
        for (index, s) in self.syncs.iter().enumerate() {
            let result = prune::prune(&s.series, &self.policy, &self.tz, now, false);
            super::prune::report(ctx.events, index, s.series.where_(), "snapshot", result);
        }
        Ok(())
    }
}
