//! The log observer: turns run events into the log lines operators read (journald fields
//! `PHASE`, `EVENT`, `SYNC`, `RESULT`, `EXIT_CODE`, `DURATION_MS`, `PATH`, `HOST`, `HOLDER`,
//! `WHY`, ...). The job and run ids come from the run's tracing span, which is entered on the
//! run's thread, where this observer is called.
//!
//! `event` names the kind of line (`sync_started`, `sync_retry`, `stale_removed`, `run_end`,
//! ...; rsync's own output lines have none), so a reader (a log query, the chain test) never
//! has to match message text; the message stays free to change wording.
//!
//! Must not: keep state or block.

use tracing::{debug, error, info, warn};

use crate::events::{EventKind, Observer, RunEvent};
use crate::rsync::{RsyncStats, Stream};

pub struct LogObserver;

impl Observer for LogObserver {
    fn on_event(&self, ev: &RunEvent) {
        match &ev.kind {
            EventKind::Started { .. } => {}
            EventKind::Waiting {
                reason,
                lock,
                holder,
                retry,
            } => {
                let path = lock.as_ref().map(|l| l.path.as_str());
                let host = lock.as_ref().map(|l| l.host.as_str());
                if retry.is_zero() {
                    info!(
                        phase = "wait",
                        event = "waiting",
                        path,
                        host,
                        holder,
                        "waiting: {reason}"
                    );
                } else {
                    info!(
                        phase = "wait",
                        event = "waiting",
                        path,
                        host,
                        holder,
                        "waiting: {reason} (re-checking every {}s)",
                        retry.as_secs()
                    );
                }
            }
            EventKind::LockTaken { lock } => info!(
                phase = "lock",
                event = "lock_taken",
                path = lock.path,
                host = lock.host,
                "lock taken: {} on {}",
                lock.path,
                lock.host
            ),
            EventKind::LockReleased { lock } => info!(
                phase = "lock",
                event = "lock_released",
                path = lock.path,
                host = lock.host,
                "lock released: {} on {}",
                lock.path,
                lock.host
            ),
            EventKind::LockNotOurs { lock } => warn!(
                phase = "lock",
                event = "lock_not_ours",
                path = lock.path,
                host = lock.host,
                "lock {} on {} was no longer ours; left it alone",
                lock.path,
                lock.host
            ),
            EventKind::LockReleaseFailed { lock, error } => error!(
                phase = "lock",
                event = "lock_release_failed",
                path = lock.path,
                host = lock.host,
                "could not release lock {} on {}: {error}; it expires when its lease runs out",
                lock.path,
                lock.host
            ),
            EventKind::LockRefreshFailed { lock, error } => warn!(
                phase = "lock",
                event = "lock_refresh_failed",
                path = lock.path,
                host = lock.host,
                "cannot refresh lock {} on {}: {error}",
                lock.path,
                lock.host
            ),
            EventKind::LockLost { lock, why } => match why {
                None => error!(
                    phase = "lock",
                    event = "lock_lost",
                    path = lock.path,
                    host = lock.host,
                    "lock {} on {} is no longer ours; stopping the run",
                    lock.path,
                    lock.host
                ),
                Some(why) => error!(
                    phase = "lock",
                    event = "lock_lost",
                    path = lock.path,
                    host = lock.host,
                    why,
                    "lock {} on {} {why}",
                    lock.path,
                    lock.host
                ),
            },
            EventKind::StaleRemoved { lock, holder, why } => warn!(
                phase = "lock",
                event = "stale_removed",
                path = lock.path,
                host = lock.host,
                holder,
                why,
                "removed stale lock {} on {} left by {holder}: {why}",
                lock.path,
                lock.host
            ),
            EventKind::ForeignIgnored { lock, holder, why } => warn!(
                phase = "lock",
                event = "foreign_ignored",
                path = lock.path,
                host = lock.host,
                holder,
                why,
                "ignoring blocker {} on {}: {holder} ({why}); it is not ours, so it stays",
                lock.path,
                lock.host
            ),
            EventKind::Inspected {
                what,
                lock,
                holder,
                verdict,
            } => match (holder, verdict) {
                (Some(h), Some(v)) => info!(
                    phase = "dry-run",
                    event = "inspected",
                    path = lock.path,
                    host = lock.host,
                    holder = h,
                    "{what} {} on {}: present, held by {h} ({v})",
                    lock.path,
                    lock.host
                ),
                _ => info!(
                    phase = "dry-run",
                    event = "inspected",
                    path = lock.path,
                    host = lock.host,
                    "{what} {} on {}: absent",
                    lock.path,
                    lock.host
                ),
            },
            EventKind::SyncStarted {
                index,
                source,
                dest,
                attempt,
            } => info!(
                phase = "sync",
                event = "sync_started",
                sync = index,
                attempt,
                "sync {index} starting: {source} -> {dest}{}",
                if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                }
            ),
            EventKind::SyncOutput {
                index,
                stream,
                line,
            } => match stream {
                // Progress (`run-job` on a terminal) is drawn by the terminal, never logged.
                Stream::Stdout if is_progress(line) => {}
                // The --stats block is parsed into the sync summary; keep it out of the info log.
                Stream::Stdout
                    if line.trim().is_empty() || RsyncStats::default().parse_line(line) =>
                {
                    debug!(phase = "rsync", sync = index, channel = "stdout", "{line}")
                }
                Stream::Stdout => info!(phase = "rsync", sync = index, channel = "stdout", "{line}"),
                Stream::Stderr => warn!(phase = "rsync", sync = index, channel = "stderr", "{line}"),
            },
            EventKind::ArchiveOutput {
                index,
                stream,
                line,
            } => match stream {
                Stream::Stdout => info!(phase = "archive", sync = index, channel = "stdout", "{line}"),
                Stream::Stderr => warn!(phase = "archive", sync = index, channel = "stderr", "{line}"),
            },
            EventKind::SyncVanished { index } => warn!(
                phase = "sync",
                event = "sync_vanished",
                sync = index,
                exit_code = 24,
                "sync {index}: some source files vanished during the transfer (normal for live data)"
            ),
            EventKind::SyncStopped { index } => warn!(
                phase = "sync",
                event = "sync_stopped",
                sync = index,
                "sync {index} stopped: the run was cancelled and rsync has ended"
            ),
            EventKind::SyncRetry {
                index,
                exit_code,
                message,
                backoff,
            } => warn!(
                phase = "sync",
                event = "sync_retry",
                sync = index,
                exit_code,
                "sync {index} failed transiently: {message}; retrying in {}s",
                backoff.as_secs()
            ),
            EventKind::SyncDone { report } if report.archive.is_some() => {
                let a = report.archive.expect("checked");
                let i = report.index;
                info!(
                    phase = "archive",
                    event = "sync_done",
                    sync = i,
                    result = "ok",
                    exit_code = report.exit_code,
                    duration_ms = report.duration.as_millis() as u64,
                    level = a.level,
                    files = a.files,
                    bytes = a.bytes,
                    "sync {i} done: {}",
                    a.written()
                );
            }
            EventKind::SyncDone { report } => {
                let (files, bytes) = report
                    .stats
                    .as_ref()
                    .map_or((0, 0), |s| (s.files_transferred, s.total_size));
                let i = report.index;
                info!(
                    phase = "sync",
                    event = "sync_done",
                    sync = i,
                    result = "ok",
                    exit_code = report.exit_code,
                    duration_ms = report.duration.as_millis() as u64,
                    files,
                    bytes,
                    "sync {i} done: {files} file(s) transferred, {bytes} bytes in the tree"
                );
            }
            EventKind::SnapshotCommitted {
                index,
                id,
                series,
                archive: Some(a),
            } => info!(
                phase = "archive",
                event = "archive_committed",
                sync = index,
                snapshot = id,
                level = a.level,
                files = a.files,
                bytes = a.bytes,
                "sync {index}: {}",
                a.committed(id, series)
            ),
            EventKind::SnapshotCommitted {
                index, id, series, ..
            } => info!(
                phase = "snapshot",
                event = "snapshot_committed",
                sync = index,
                snapshot = id,
                "sync {index}: snapshot {id} complete in {series}"
            ),
            EventKind::Pruned {
                index,
                series,
                kept,
                removed,
                what,
            } => info!(
                phase = "prune",
                event = "pruned",
                sync = index,
                removed = removed.len(),
                "sync {index}: retention kept {kept} {what}(s) in {series}, removed {}{}",
                removed.len(),
                if removed.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", removed.join(", "))
                }
            ),
            EventKind::PruneFailed {
                index,
                series,
                error,
            } => error!(
                phase = "prune",
                event = "prune_failed",
                sync = index,
                "sync {index}: retention could not run in {series}: {error}; no snapshot was removed by it"
            ),
            EventKind::Finished {
                outcome,
                message,
                duration,
                ..
            } => {
                let ms = duration.as_millis() as u64;
                match *outcome {
                    "success" => info!(
                        phase = "end",
                        event = "run_end",
                        result = "success",
                        duration_ms = ms,
                        "run succeeded"
                    ),
                    "failed" => error!(
                        phase = "end",
                        event = "run_end",
                        result = "failed",
                        duration_ms = ms,
                        "run failed: {message}"
                    ),
                    "blocked" => warn!(
                        phase = "end",
                        event = "run_end",
                        result = "blocked",
                        duration_ms = ms,
                        "run blocked: {message}"
                    ),
                    "skipped" => info!(
                        phase = "end",
                        event = "run_end",
                        result = "skipped",
                        duration_ms = ms,
                        "run {message}"
                    ),
                    _ => warn!(
                        phase = "end",
                        event = "run_end",
                        result = "cancelled",
                        duration_ms = ms,
                        "run cancelled"
                    ),
                }
            }
            EventKind::RunRetrying {
                attempt,
                wait,
                until,
            } => warn!(
                phase = "end",
                event = "run_retry",
                attempt,
                "transient failure: the whole run is tried again in {} (try {attempt}; retry_for ends at {})",
                crate::config::duration::format(*wait),
                until.strftime("%Y-%m-%d %H:%M:%S UTC")
            ),
            EventKind::HookStarted {
                phase,
                index,
                command,
                remote,
            } => info!(
                phase = "hook",
                event = "hook_started",
                hook = format!("{phase}[{index}]"),
                "{phase} hook {index} starting{}: {command}",
                if *remote { " on the job's host" } else { "" }
            ),
            EventKind::HookOutput {
                phase,
                index,
                stream,
                line,
            } => {
                let hook = format!("{phase}[{index}]");
                match stream {
                    Stream::Stdout => info!(phase = "hook", hook, channel = "stdout", "{line}"),
                    Stream::Stderr => info!(phase = "hook", hook, channel = "stderr", "{line}"),
                }
            }
            EventKind::HookDone {
                phase,
                index,
                exit_code,
                duration,
                error,
                fatal,
            } => {
                let hook = format!("{phase}[{index}]");
                let ms = duration.as_millis() as u64;
                match (error, fatal) {
                    (None, _) => info!(
                        phase = "hook",
                        event = "hook_done",
                        hook,
                        exit_code,
                        duration_ms = ms,
                        "{phase} hook {index} done (exit {})",
                        exit_code.unwrap_or(0)
                    ),
                    (Some(e), true) => error!(
                        phase = "hook",
                        event = "hook_failed",
                        hook,
                        exit_code,
                        duration_ms = ms,
                        "{phase} hook {index} {e}; the run fails"
                    ),
                    (Some(e), false) => warn!(
                        phase = "hook",
                        event = "hook_failed",
                        hook,
                        exit_code,
                        duration_ms = ms,
                        "{phase} hook {index} {e}"
                    ),
                }
            }
        }
    }
}

/// One readable line for `ev` (without time), as the per-run log file writes it
/// ([`crate::run::runlog`]); `None` for events that make no line (the start is said by the
/// file's first line, rsync's `--stats` block and blank lines are summed up in `sync_done`).
/// Warnings and errors start with `warning: ` / `error: `.
pub fn text(ev: &RunEvent) -> Option<String> {
    let on = |l: &crate::events::LockRef| format!("{} on {}", l.path, l.host);
    Some(match &ev.kind {
        EventKind::Started { trigger, .. } => {
            format!("run {} of job {} started ({})", ev.run_id, ev.job, trigger.as_str())
        }
        EventKind::Waiting { reason, retry, .. } if retry.is_zero() => format!("waiting: {reason}"),
        EventKind::Waiting { reason, retry, .. } => {
            format!("waiting: {reason} (re-checking every {}s)", retry.as_secs())
        }
        EventKind::LockTaken { lock } => format!("lock taken: {}", on(lock)),
        EventKind::LockReleased { lock } => format!("lock released: {}", on(lock)),
        EventKind::LockNotOurs { lock } => {
            format!("warning: lock {} was no longer ours; left it alone", on(lock))
        }
        EventKind::LockReleaseFailed { lock, error } => format!(
            "error: could not release lock {}: {error}; it expires when its lease runs out",
            on(lock)
        ),
        EventKind::LockRefreshFailed { lock, error } => {
            format!("warning: cannot refresh lock {}: {error}", on(lock))
        }
        EventKind::LockLost { lock, why: None } => {
            format!("error: lock {} is no longer ours; stopping the run", on(lock))
        }
        EventKind::LockLost {
            lock,
            why: Some(why),
        } => format!("error: lock {} {why}", on(lock)),
        EventKind::StaleRemoved { lock, holder, why } => format!(
            "warning: removed stale lock {} left by {holder}: {why}",
            on(lock)
        ),
        EventKind::ForeignIgnored { lock, holder, why } => format!(
            "warning: ignoring blocker {}: {holder} ({why}); it is not ours, so it stays",
            on(lock)
        ),
        EventKind::Inspected { .. } => return None,
        EventKind::SyncStarted {
            index,
            source,
            dest,
            attempt,
        } => format!(
            "sync {index} starting: {source} -> {dest}{}",
            if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            }
        ),
        EventKind::SyncOutput {
            index,
            stream,
            line,
        } => {
            // A progress line (`--info=progress2`) is rewritten with `\r`: keep what is left
            // after the last one, and drop it if that is progress too.
            let line = line.rsplit('\r').next().unwrap_or_default().trim_end();
            if line.trim().is_empty()
                || is_progress(line)
                || (*stream == Stream::Stdout
                    && (RsyncStats::default().parse_line(line) || is_stats_trailer(line)))
            {
                return None;
            }
            match stream {
                Stream::Stdout => format!("sync {index}: {line}"),
                Stream::Stderr => format!("warning: sync {index} (rsync): {line}"),
            }
        }
        EventKind::ArchiveOutput {
            index,
            stream,
            line,
        } => match stream {
            Stream::Stdout => format!("sync {index}: {line}"),
            Stream::Stderr => format!("warning: sync {index} (archive): {line}"),
        },
        EventKind::SyncStopped { index } => format!(
            "warning: sync {index} stopped: the run was cancelled and rsync has ended"
        ),
        EventKind::SyncVanished { index } => format!(
            "warning: sync {index}: some source files vanished during the transfer (normal for live data)"
        ),
        EventKind::SyncRetry {
            index,
            message,
            backoff,
            ..
        } => format!(
            "warning: sync {index} failed transiently: {message}; retrying in {}s",
            backoff.as_secs()
        ),
        EventKind::SyncDone { report } if report.archive.is_some() => format!(
            "sync {} done: {}, {:.1}s",
            report.index,
            report.archive.expect("checked").written(),
            report.duration.as_secs_f64()
        ),
        EventKind::SyncDone { report } => {
            let (files, bytes) = report
                .stats
                .as_ref()
                .map_or((0, 0), |s| (s.files_transferred, s.total_size));
            format!(
                "sync {} done: {files} file(s) transferred, {bytes} bytes in the tree, {:.1}s",
                report.index,
                report.duration.as_secs_f64()
            )
        }
        EventKind::SnapshotCommitted {
            index,
            id,
            series,
            archive: Some(a),
        } => format!("sync {index}: {}", a.committed(id, series)),
        EventKind::SnapshotCommitted {
            index, id, series, ..
        } => {
            format!("sync {index}: snapshot {id} complete in {series}")
        }
        EventKind::Pruned {
            index,
            series,
            kept,
            removed,
            what,
        } => format!(
            "sync {index}: retention kept {kept} {what}(s) in {series}, removed {}",
            removed.len()
        ),
        EventKind::PruneFailed {
            index,
            series,
            error,
        } => format!("error: sync {index}: retention could not run in {series}: {error}"),
        EventKind::Finished {
            outcome,
            message,
            exit_code,
            duration,
            ..
        } => {
            let mut s = format!(
                "{}{outcome} (exit {exit_code}, {:.1}s)",
                crate::store::runlog::END_MARK,
                duration.as_secs_f64()
            );
            if !message.is_empty() {
                s.push_str(": ");
                s.push_str(&message.replace('\n', " | "));
            }
            s
        }
        EventKind::RunRetrying {
            attempt,
            wait,
            until,
        } => format!(
            "warning: transient failure: the whole run is tried again in {} (try {attempt}; retry_for ends at {})",
            crate::config::duration::format(*wait),
            until.strftime("%Y-%m-%d %H:%M:%S UTC")
        ),
        EventKind::HookStarted {
            phase,
            index,
            command,
            remote,
        } => format!(
            "{phase} hook {index} starting{}: {command}",
            if *remote { " on the job's host" } else { "" }
        ),
        EventKind::HookOutput {
            phase,
            index,
            stream,
            line,
        } => match stream {
            Stream::Stdout => format!("{phase} hook {index}: {line}"),
            Stream::Stderr => format!("{phase} hook {index} (stderr): {line}"),
        },
        EventKind::HookDone {
            phase,
            index,
            exit_code,
            error,
            fatal,
            ..
        } => match (error, fatal) {
            (None, _) => format!(
                "{phase} hook {index} done (exit {})",
                exit_code.unwrap_or(0)
            ),
            (Some(e), true) => format!("error: {phase} hook {index} {e}; the run fails"),
            (Some(e), false) => format!("warning: {phase} hook {index} {e}"),
        },
    })
}

/// The lines of rsync's `--stats` block that [`RsyncStats`] does not keep.
fn is_stats_trailer(line: &str) -> bool {
    ["File list ", "sent ", "total size is ", "Total bytes "]
        .iter()
        .any(|p| line.starts_with(p))
}

/// True for a line of rsync's `--info=progress2` (or `--progress`) output:
/// `  1,234,567  45%   10.00MB/s    0:00:01 (xfr#1, to-chk=0/2)`.
pub fn is_progress(line: &str) -> bool {
    let mut w = line.split_whitespace();
    let (Some(bytes), Some(pct)) = (w.next(), w.next()) else {
        return false;
    };
    bytes
        .chars()
        .all(|c| c.is_ascii_digit() || c == ',' || c == '.')
        && pct.ends_with('%')
        && pct[..pct.len() - 1].chars().all(|c| c.is_ascii_digit())
}
