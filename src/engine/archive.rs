//! The archive engine: each run of a sync writes one compressed GNU tar archive of its source
//! into the sync's `dest` (an [`ArchiveSeries`]): a level 0 that starts a chain, or an
//! incremental on top of the newest archive. A successful run ages old archives out without
//! breaking a chain ([`super::archive_prune`]).
//!
//! Per sync: `preflight` refuses a missing or empty source (it would become the newest restore
//! point) and anything but GNU tar (probed once per tar binary: [`crate::tar::probe`] caches the
//! answer in `pid_file_dir`); `transfer` decides the level ([`chain::decide`]: full_every,
//! max_chain_length, a changed source device, a chain kept only as parents, a broken chain),
//! then runs `tar | compressor` into a pending file; `commit` renames it into place with its
//! manifest. A dry run says what the next archive would be and writes nothing.
//!
//! Must not: take or look at locks, or remove anything but what the pruning plan names.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jiff::tz::TimeZone;

use super::{archive_prune, guard, Engine, EngineError, SyncCtx};
use crate::archive::chain::{self, Next, Seen};
use crate::archive::create::{self, Made};
use crate::archive::{ArchiveError, ArchiveManifest, ArchiveSeries, Pending};
use crate::config::{ArchiveSettings, Sync};
use crate::events::{ArchiveFacts, EventKind, SyncReport};
use crate::retention::Policy;
use crate::rsync::Stream;
use crate::transport::Transport;

/// An incremental at least this share of its level 0's size is worth a warning.
const CLOSE_TO_FULL: f64 = 0.9;
/// ... when the level 0 is at least this large (tiny archives vary too much to tell).
const CLOSE_TO_FULL_MIN: u64 = 1 << 20;

#[derive(Debug)]
pub struct ArchiveSync {
    pub sync: Sync,
    pub series: ArchiveSeries,
}

#[derive(Debug)]
struct Written {
    pending: Pending,
    made: Made,
    device: u64,
}

#[derive(Debug)]
pub struct Archives {
    pub syncs: Vec<ArchiveSync>,
    pub policy: Policy,
    pub settings: ArchiveSettings,
    /// The zone retention counts days, weeks, ... in.
    pub tz: TimeZone,
    /// Where the GNU tar probe's answer is cached across runs (`pid_file_dir`).
    runtime_dir: PathBuf,
    tar_version: Mutex<Option<String>>,
    pending: Mutex<Vec<Option<Written>>>,
}

impl Archives {
    pub fn new(
        syncs: &[Sync],
        remote: Option<&Arc<dyn Transport>>,
        policy: Policy,
        settings: ArchiveSettings,
        tz: TimeZone,
        runtime_dir: &Path,
    ) -> Archives {
        Archives {
            syncs: syncs
                .iter()
                .map(|s| ArchiveSync {
                    sync: s.clone(),
                    series: ArchiveSeries::new(&s.dest, remote),
                })
                .collect(),
            policy,
            settings,
            tz,
            runtime_dir: runtime_dir.to_path_buf(),
            tar_version: Mutex::new(None),
            pending: Mutex::new((0..syncs.len()).map(|_| None).collect()),
        }
    }

    fn err(index: usize, e: impl std::fmt::Display) -> EngineError {
        EngineError::Series {
            index,
            message: e.to_string(),
        }
    }

    /// A line about the archive: one starting with `warning: ` is logged as a warning
    /// (without that prefix, which the logs add back their own way), the rest as information.
    fn say(ctx: &SyncCtx, index: usize, line: String) {
        let (stream, line) = match line.strip_prefix("warning: ") {
            Some(rest) => (Stream::Stderr, rest.to_string()),
            None => (Stream::Stdout, line),
        };
        ctx.events.emit(EventKind::ArchiveOutput {
            index,
            stream,
            line,
        });
    }

    /// What the next archive of sync `index` is, and why; the source's device; and for an
    /// incremental, the size of its chain's level 0 (from the same listing: the series is
    /// read once per run before the archive is written).
    fn next(&self, index: usize) -> Result<(Next, u64, Option<u64>), EngineError> {
        let s = &self.syncs[index];
        let list = s.series.list().map_err(|e| Self::err(index, e))?;
        let device = std::fs::metadata(&s.sync.source)
            .map_err(|e| Self::err(index, format!("{}: {e}", s.sync.source)))?
            .dev();
        let now = jiff::Timestamp::now();
        let verdicts = archive_prune::plan(&list, &self.policy, &self.tz, now);
        let newest_snar_present = match list.first() {
            Some(m) => s
                .series
                .has_file(&format!("{}.snar", m.stem))
                .map_err(|e| Self::err(index, e))?,
            None => false,
        };
        let seen = Seen {
            list: &list,
            source_device: device,
            newest_snar_present,
            kept_only_as_parents: archive_prune::kept_only_as_parents(&list, &verdicts),
            now,
        };
        let next = chain::decide(&self.settings, &seen);
        let full_size = match &next {
            Next::Incremental { parent, .. } => list
                .iter()
                .find(|m| m.stem.chain == parent.chain && m.stem.level == 0)
                .map(|m| m.size),
            Next::Full { .. } => None,
        };
        Ok((next, device, full_size))
    }
}

impl Engine for Archives {
    fn syncs(&self) -> usize {
        self.syncs.len()
    }

    fn preflight(&self, index: usize, _ctx: &SyncCtx) -> Result<(), EngineError> {
        let sync = &self.syncs[index].sync;
        guard::empty_source(sync, guard::Risk::Snapshot)
            .and_then(|()| guard::unmounted(sync, guard::Risk::Snapshot))
            .map_err(|message| EngineError::GuardRefused { index, message })?;
        let mut v = self.tar_version.lock().unwrap_or_else(|e| e.into_inner());
        if v.is_none() {
            *v = Some(
                crate::tar::version_cached(&self.runtime_dir).map_err(|e| Self::err(index, e))?,
            );
        }
        Ok(())
    }

    fn transfer(&self, index: usize, ctx: &SyncCtx) -> Result<SyncReport, EngineError> {
        let s = &self.syncs[index];
        let start = Instant::now();
        ctx.events.emit(EventKind::SyncStarted {
            index,
            source: s.sync.source.clone(),
            dest: s.series.where_(),
            attempt: 1,
        });
        let (next, device, full_size) = self.next(index)?;
        let parent = match &next {
            Next::Full { why, warn } => {
                let verb = if ctx.dry_run {
                    "would start"
                } else {
                    "starting"
                };
                Self::say(
                    ctx,
                    index,
                    format!(
                        "{}{verb} a new chain (level 0): {why}",
                        if *warn { "warning: " } else { "" }
                    ),
                );
                None
            }
            Next::Incremental { parent, level } => {
                let verb = if ctx.dry_run {
                    "would write"
                } else {
                    "writing"
                };
                Self::say(
                    ctx,
                    index,
                    format!("{verb} level {level} on top of {parent}"),
                );
                Some(parent.clone())
            }
        };
        let report = |exit_code, archive| SyncReport {
            index,
            exit_code,
            attempts: 1,
            stats: None,
            duration: start.elapsed(),
            archive,
        };
        if ctx.dry_run {
            let r = report(0, None);
            ctx.events.emit(EventKind::SyncDone { report: r.clone() });
            return Ok(r);
        }
        let ext = crate::tar::extension(self.settings.compression);
        let pending = s
            .series
            .begin(ctx.started.timestamp(), parent.as_ref(), ext)
            .map_err(|e| Self::err(index, e))?;
        if !pending.leftovers.is_empty() {
            Self::say(
                ctx,
                index,
                format!(
                    "removed {} leftover file(s) of an interrupted run: {}",
                    pending.leftovers.len(),
                    pending.leftovers.join(", ")
                ),
            );
        }
        let made = create::create(
            &s.series,
            &pending,
            &s.sync.source,
            self.settings.compression,
            ctx.cancel,
        )
        .map_err(|e| match e {
            ArchiveError::Cancelled => EngineError::Cancelled,
            e => Self::err(index, e),
        })?;
        for w in &made.warnings {
            Self::say(ctx, index, format!("warning: {w}"));
        }
        if let Some(full) = full_size {
            if full >= CLOSE_TO_FULL_MIN && made.size as f64 >= CLOSE_TO_FULL * full as f64 {
                Self::say(
                    ctx,
                    index,
                    format!(
                        "warning: this incremental ({} bytes) is close to its level 0's size ({} bytes): most of the source changed, or tar saw every file as new (a changed device or restored files)",
                        made.size, full
                    ),
                );
            }
        }
        let r = report(made.tar_exit, Some(facts(&pending, &made)));
        self.pending.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(Written {
            pending,
            made,
            device,
        });
        ctx.events.emit(EventKind::SyncDone { report: r.clone() });
        Ok(r)
    }

    fn commit(
        &self,
        index: usize,
        _report: &SyncReport,
        ctx: &SyncCtx,
    ) -> Result<Option<String>, EngineError> {
        let Some(w) = self.pending.lock().unwrap_or_else(|e| e.into_inner())[index].take() else {
            return Ok(None);
        };
        let s = &self.syncs[index];
        let archive = Some(facts(&w.pending, &w.made));
        let m = ArchiveManifest {
            stem: w.pending.stem.clone(),
            time: crate::snapshot::manifest::start_time(ctx.started),
            parent: w.pending.parent.clone(),
            sha256: w.made.sha256,
            size: w.made.size,
            compression: self.settings.compression,
            tar_version: self
                .tar_version
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default(),
            tar_options: w.made.tar_options,
            files: w.made.files,
            tar_exit: w.made.tar_exit,
            source: s.sync.source.clone(),
            source_device: w.device,
            job: ctx.job.to_string(),
            run_id: ctx.run_id.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        s.series
            .commit(&w.pending, &m)
            .map_err(|e| Self::err(index, e))?;
        ctx.events.emit(EventKind::SnapshotCommitted {
            index,
            id: m.stem.to_string(),
            series: s.series.where_(),
            archive,
        });
        Ok(Some(m.stem.to_string()))
    }

    fn after_success(&self, ctx: &SyncCtx) -> Result<(), EngineError> {
        let now = jiff::Timestamp::now();
        for (index, s) in self.syncs.iter().enumerate() {
            let result = archive_prune::prune(&s.series, &self.policy, &self.tz, now, false);
            super::prune::report(ctx.events, index, s.series.where_(), "archive", result);
        }
        Ok(())
    }
}

/// What the events say about an archive just written.
fn facts(pending: &Pending, made: &Made) -> ArchiveFacts {
    ArchiveFacts {
        level: pending.stem.level,
        files: made.files,
        bytes: made.size,
    }
}
