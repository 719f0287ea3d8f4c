//! The typed status snapshot: is the daemon running, and for each job its schedule, next run,
//! last result and whether a run is in progress. `status --format json` serializes it, the text
//! output renders it, and the web API will serve it.
//!
//! Read-only: it reads `state.json` and `/proc/locks` (once per snapshot), never probing by
//! taking a lock (so a status probe can never make a starting daemon or a `--no-wait` run
//! think it is held).
//!
//! Where the daemon's registration ([`super::live`]) names a live daemon, its `pid_file_dir`
//! and `state_dir` are read (they may differ from an edited config until it restarts), and its
//! live state says what each running job does. The last success and failure come from the run
//! history; [`judge`] turns them and the schedule into the monitoring verdict.
//!
//! Must not: write anything, or start or signal runs.

use std::fs;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::history::{History, HistoryError, RunRow};
use super::live::{Doing, Live};
use super::state::{self, LastRun};
use crate::config::Config;
use crate::schedule::{format::rfc3339, plan};
use crate::sys::flocks::Flocks;
use crate::sys::runtime::RuntimeDir;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub config: PathBuf,
    /// Why the config file on disk cannot be used (the status then comes from the running
    /// daemon's registration and its state directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    pub daemon: Option<DaemonStatus>,
    /// Where the daemon's pid file is expected (for "not running" messages).
    #[serde(skip)]
    pub pid_file: PathBuf,
    pub state_file: PathBuf,
    /// Why the state file could not be read (its run counts and last results are then not
    /// shown); `None` when it was read or does not exist yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_error: Option<String>,
    /// Why the run history could not be read (last success and failure are then unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_error: Option<String>,
    pub jobs: Vec<JobStatus>,
    /// The monitoring verdict (`status --check`).
    pub check: Check,
}

#[derive(Debug, Clone, Serialize)]
pub struct DaemonStatus {
    /// What the holder wrote in the pid file, else `pid N` from `/proc/locks`.
    pub pid: String,
    /// From the daemon's registration (absent for a daemon that did not publish one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    pub pid_file_dir: PathBuf,
    pub state_dir: PathBuf,
    /// The daemon uses other directories than the config file now says (until it restarts).
    pub dirs_differ_from_config: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub id: String,
    pub enabled: bool,
    pub cron_schedule: String,
    /// RFC 3339 with offset; `None` for disabled and `@reboot` jobs.
    pub next_run: Option<String>,
    /// Who holds the job's run lock, when a run is in progress.
    pub running: Option<String>,
    /// `idle`, `waiting` or `running`.
    pub state: String,
    /// Since when (RFC 3339), when known.
    pub since: Option<String>,
    /// The run in progress, when known.
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// The sync (0-based) in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_index: Option<usize>,
    pub last_run: Option<LastRun>,
    pub last_success: Option<RunSummary>,
    pub last_failure: Option<RunSummary>,
    /// How old the last success may get (`alert_after`, else derived from the schedule);
    /// `None`: never overdue (disabled, `@reboot` without `alert_after`, or unknown).
    pub allowance_seconds: Option<u64>,
    pub overdue: bool,
    /// `ok`, `warning` or `critical`, and why.
    pub check: String,
    pub check_reason: String,
    pub runs: u64,
    pub missed: u64,
    pub skipped_overlap: u64,
    /// Complete restore points of a snapshot or archive job, as the daemon last counted them
    /// (at start and after each run). Only the web API has it (`status` lists no series).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_points: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub reason: String,
    pub lock: Option<String>,
    pub holder: Option<String>,
    pub since: String,
}

/// A finished run from the history. Times are RFC 3339 with offset.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub outcome: String,
    pub started: String,
    pub finished: Option<String>,
    pub duration_ms: Option<u64>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    #[serde(skip)]
    pub finished_at: Option<Timestamp>,
}

/// A monitoring-plugin verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub level: Level,
    /// The plugin exit code (0..3).
    pub code: i32,
    /// `BACKUPMANAGER OK - 3 jobs, ...`
    pub summary: String,
}

/// How much of a failure's message a verdict quotes.
const SHORT: usize = 80;
/// At least this much margin on top of a schedule's interval.
const MIN_MARGIN: SignedDuration = SignedDuration::from_hours(1);

/// How old a job's last success may get before it is overdue: `alert_after`, else the gap
/// between the next two fire times after `now` plus half of it (at least [`MIN_MARGIN`]).
pub fn allowance(
    schedule: &crate::schedule::Schedule,
    alert_after: Option<std::time::Duration>,
    tz: &jiff::tz::TimeZone,
    now: Timestamp,
) -> Option<SignedDuration> {
    if let Some(a) = alert_after {
        return SignedDuration::try_from(a).ok();
    }
    let n1 = schedule.next_after(now, tz)?;
    let n2 = schedule.next_after(n1, tz)?;
    let gap = n2.duration_since(n1);
    Some(gap + (gap / 2).max(MIN_MARGIN))
}

/// The verdict for one job (pure): see `status --help` for the rules.
pub fn judge(
    now: Timestamp,
    allowance: Option<SignedDuration>,
    last_success: Option<Timestamp>,
    last_failure: Option<&RunSummary>,
    tried: bool,
    scheduled_since: Option<Timestamp>,
) -> (Level, String, bool) {
    let failed_since = last_failure.filter(|f| match (f.finished_at, last_success) {
        (Some(f), Some(s)) => f > s,
        _ => true,
    });
    let hours = |d: SignedDuration| format!("{:.1}h", d.as_secs_f64() / 3600.0);
    let failure_text = |f: &RunSummary| {
        let kind = f.error_kind.as_deref().unwrap_or(&f.outcome);
        let msg = f
            .error
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        // The full message is in `last_failure`; the verdict stays one short line.
        let short: String = msg.chars().take(SHORT).collect();
        let more = if short.len() < msg.len() { "..." } else { "" };
        format!("last run {} ({kind}): {short}{more}", f.outcome)
    };
    let Some(success) = last_success else {
        if tried {
            let why = failed_since.map(failure_text).unwrap_or_default();
            return (Level::Critical, format!("never succeeded; {why}"), true);
        }
        // Never ran: overdue once a daemon has expected it for longer than it may go without.
        if let (Some(since), Some(allow)) = (scheduled_since, allowance) {
            let waited = now.duration_since(since);
            if waited > allow {
                return (
                    Level::Critical,
                    format!(
                        "never ran: scheduled since {since}, {} ago (allowed {})",
                        hours(waited),
                        hours(allow)
                    ),
                    true,
                );
            }
        }
        return (Level::Ok, "no run yet".into(), false);
    };
    let age = now.duration_since(success);
    if let Some(allow) = allowance {
        if age > allow * 2 {
            return (
                Level::Critical,
                format!("no success for {} (allowed {})", hours(age), hours(allow)),
                true,
            );
        }
        if age > allow {
            return (
                Level::Warning,
                format!("no success for {} (allowed {})", hours(age), hours(allow)),
                true,
            );
        }
    }
    match failed_since {
        Some(f) => (Level::Warning, failure_text(f), false),
        None => (Level::Ok, "ok".into(), false),
    }
}

/// Reads the snapshot for `config_path` at `now`. `config` is the file's valid configuration,
/// or `None` with `config_error` when it is broken; then the status comes from the live
/// daemon's registration (`live`), which the caller found. `only`: these jobs (all if empty).
pub fn snapshot(
    config_path: &Path,
    config: Option<&Config>,
    config_error: Option<String>,
    live: Option<&Live>,
    now: Timestamp,
    only: &[String],
) -> Status {
    let tz = config
        .map(|c| c.timezone.tz.clone())
        .unwrap_or_else(crate::config::zone::system);
    let (pid_file_dir, state_dir) = match (live, config) {
        (Some(l), _) => (l.pid_file_dir.clone(), l.state_dir.clone()),
        (None, Some(c)) => (c.pid_file_dir.clone(), c.state_dir.clone()),
        (None, None) => unreachable!("the caller has a config or a live daemon"),
    };
    // Read-only: a corrupt file is reported here, never moved aside (the daemon does that).
    let (st, state_error) = match state::load_read_only(&state_dir) {
        Ok(st) => (st, None),
        Err(e) => {
            tracing::error!("{e}");
            (state::State::default(), Some(e.to_string()))
        }
    };
    let (history, mut history_error) = match History::open_existing(&state_dir) {
        Ok(h) => (Some(h), None),
        Err(HistoryError::Missing { .. }) => (None, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let runtime = RuntimeDir::new(&pid_file_dir);
    // One read of the kernel's lock table for the pid file and every job's run lock.
    let flocks = Flocks::read();
    let daemon = lock_holder(&flocks, &runtime.pid_file())
        .or_else(|| live.map(|l| format!("pid {}", l.pid)))
        .map(|pid| DaemonStatus {
            pid,
            process_id: live.map(|l| l.pid),
            started: live.map(|l| l.started.clone()),
            pid_file_dir: pid_file_dir.clone(),
            state_dir: state_dir.clone(),
            dirs_differ_from_config: config
                .is_some_and(|c| c.pid_file_dir != pid_file_dir || c.state_dir != state_dir),
        });
    // The jobs: the config's, else what the daemon and its state know of.
    let mut ids: Vec<String> = match config {
        Some(c) => c.jobs.iter().map(|j| j.id.clone()).collect(),
        None => {
            let mut v: Vec<String> = st.jobs.keys().cloned().collect();
            v.extend(live.iter().flat_map(|l| l.runs.keys().cloned()));
            v.sort();
            v.dedup();
            v
        }
    };
    if !only.is_empty() {
        ids.retain(|id| only.contains(id));
    }
    let mut jobs = Vec::new();
    for id in ids {
        let job = config.and_then(|c| c.job(&id));
        let js = st.jobs.get(&id).cloned().unwrap_or_default();
        let enabled = job.is_none_or(|j| j.enabled);
        let next_run = match job {
            Some(j) if j.enabled && !j.schedule.is_reboot() => {
                let covered = st.covered_until(&id, now);
                plan::next_wake(&j.schedule, &tz, covered, now).map(|t| rfc3339(t, &tz))
            }
            _ => None,
        };
        let summary = |r: RunRow| RunSummary {
            finished_at: r.finished.as_deref().and_then(|f| f.parse().ok()),
            finished: r
                .finished
                .as_deref()
                .and_then(|f| f.parse().ok())
                .map(|t| rfc3339(t, &tz)),
            run_id: r.run_id,
            outcome: r.outcome,
            started: rfc3339(r.started_at, &tz),
            duration_ms: r.duration_ms,
            error_kind: r.error_kind,
            error: r.error,
            exit_code: r.exit_code,
        };
        let mut read = |failure: bool| match &history {
            Some(h) => {
                let row = if failure {
                    h.last_failure(&id)
                } else {
                    h.last_of(&id, &["success"])
                };
                match row {
                    Ok(r) => r.map(summary),
                    Err(e) => {
                        history_error.get_or_insert(e.to_string());
                        None
                    }
                }
            }
            None => None,
        };
        let last_success = read(false);
        let last_failure = read(true);
        let tried = last_failure.is_some() || js.runs > 0;
        let allow = job
            .filter(|j| j.enabled)
            .and_then(|j| allowance(&j.schedule, j.alert_after, &tz, now));
        let (level, reason, overdue) = if !enabled {
            (Level::Ok, "disabled".into(), false)
        } else {
            let success = last_success
                .as_ref()
                .map(|s| s.finished_at.unwrap_or(Timestamp::UNIX_EPOCH));
            judge(
                now,
                allow,
                success,
                last_failure.as_ref(),
                tried,
                js.scheduled_since(),
            )
        };
        let holder = lock_holder(&flocks, &runtime.run_lock(&id));
        let run = live.and_then(|l| l.runs.get(&id));
        let (state, since, waiting, sync_index) = match run.map(|r| &r.doing) {
            Some(Doing::Waiting {
                reason,
                lock,
                holder,
                since,
            }) => (
                "waiting",
                Some(since.clone()),
                Some(Waiting {
                    reason: reason.clone(),
                    lock: lock.clone(),
                    holder: holder.clone(),
                    since: since.clone(),
                }),
                None,
            ),
            Some(Doing::Syncing { index, .. }) => (
                "running",
                run.map(|r| r.started.clone()),
                None,
                Some(*index),
            ),
            Some(_) => ("running", run.map(|r| r.started.clone()), None, None),
            None if holder.is_some() => ("running", None, None, None),
            None => ("idle", None, None, None),
        };
        jobs.push(JobStatus {
            id: id.clone(),
            enabled,
            cron_schedule: job
                .map(|j| j.schedule.expr().to_string())
                .unwrap_or_default(),
            next_run,
            running: holder
                .or_else(|| run.map(|_| format!("daemon pid {}", live.map_or(0, |l| l.pid)))),
            state: state.into(),
            since,
            run_id: run.and_then(|r| r.run_id.clone()),
            waiting,
            sync_index,
            last_run: js.last_run,
            last_success,
            last_failure,
            allowance_seconds: allow.map(|a| a.as_secs().max(0) as u64),
            overdue,
            check: format!("{level:?}").to_lowercase(),
            check_reason: reason,
            runs: js.runs,
            missed: js.missed,
            skipped_overlap: js.skipped_overlap,
            restore_points: None,
        });
    }
    let mut s = Status {
        config: config_path.to_path_buf(),
        config_error,
        daemon,
        pid_file: runtime.pid_file(),
        state_file: state::path(&state_dir),
        state_error,
        history_error,
        jobs,
        check: Check {
            level: Level::Ok,
            code: 0,
            summary: String::new(),
        },
    };
    s.check = overall(&s, config.is_some_and(|c| c.jobs.iter().any(|j| j.enabled)));
    s
}

/// The whole status's verdict and summary line.
fn overall(s: &Status, scheduled: bool) -> Check {
    let mut level = Level::Ok;
    let mut problems = Vec::new();
    if s.config_error.is_some() {
        // Only reached with a running daemon (without one, `status` stops before): the
        // backups go on with the config it loaded; the next reload will be refused.
        level = Level::Warning;
        problems.push(
            "the config on disk is invalid (the daemon keeps running the one it loaded)"
                .to_string(),
        );
    }
    if let Some(e) = &s.history_error {
        level = Level::Unknown;
        problems.push(format!("cannot read the run history: {e}"));
    }
    if s.daemon.is_none() && scheduled {
        level = level.max(Level::Critical);
        problems.push("daemon not running".into());
    }
    for j in &s.jobs {
        let l = match j.check.as_str() {
            "critical" => Level::Critical,
            "warning" => Level::Warning,
            _ => Level::Ok,
        };
        if l > Level::Ok {
            problems.push(format!("{}: {}", j.id, j.check_reason));
        }
        level = level.max(l);
    }
    let n = s.jobs.len();
    let detail = if problems.is_empty() {
        let oldest = s
            .jobs
            .iter()
            .filter_map(|j| j.last_success.as_ref().map(|r| (r.finished_at, &j.id, r)))
            .min_by_key(|(t, ..)| *t);
        match oldest {
            Some((_, id, r)) => format!(
                "last success {} (oldest, {id})",
                r.finished.as_deref().unwrap_or(&r.started)
            ),
            None => "no successful run yet".into(),
        }
    } else {
        problems.join("; ")
    };
    Check {
        level,
        code: level as i32,
        summary: format!("BACKUPMANAGER {} - {n} jobs, {detail}", level.word()),
    }
}

/// Who holds a kernel lock on `path`, if anyone (per `flocks`, read once per snapshot): the
/// file's first line (the holder writes its pid there), else `pid N`.
fn lock_holder(flocks: &Flocks, path: &Path) -> Option<String> {
    let pid = flocks.holder(path)?;
    let first = fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    Some(if first.is_empty() {
        format!("pid {pid}")
    } else {
        first
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn failure(at: &str) -> RunSummary {
        RunSummary {
            run_id: "r".into(),
            outcome: "failed".into(),
            started: at.into(),
            finished: Some(at.into()),
            duration_ms: Some(1),
            error_kind: Some("rsync".into()),
            error: Some("boom".into()),
            exit_code: Some(23),
            finished_at: Some(t(at)),
        }
    }

    #[test]
    fn the_check_rules() {
        let now = t("2026-03-10T12:00:00Z");
        let day = Some(SignedDuration::from_hours(24));
        let ok = judge(now, day, Some(t("2026-03-10T01:00:00Z")), None, true, None);
        assert_eq!(ok.0, Level::Ok);
        let warn = judge(now, day, Some(t("2026-03-09T01:00:00Z")), None, true, None);
        assert_eq!((warn.0, warn.2), (Level::Warning, true), "{}", warn.1);
        let crit = judge(now, day, Some(t("2026-03-08T01:00:00Z")), None, true, None);
        assert_eq!((crit.0, crit.2), (Level::Critical, true));
        let f = failure("2026-03-10T11:00:00Z");
        let failed = judge(
            now,
            day,
            Some(t("2026-03-10T01:00:00Z")),
            Some(&f),
            true,
            None,
        );
        assert_eq!(failed.0, Level::Warning);
        assert!(
            failed.1.contains("last run failed (rsync): boom"),
            "{}",
            failed.1
        );
        let older = failure("2026-03-10T00:00:00Z");
        let recovered = judge(
            now,
            day,
            Some(t("2026-03-10T01:00:00Z")),
            Some(&older),
            true,
            None,
        );
        assert_eq!(recovered.0, Level::Ok);
        assert_eq!(
            judge(now, day, None, Some(&f), true, None).0,
            Level::Critical
        );
        assert_eq!(judge(now, day, None, None, false, None).0, Level::Ok);
        // Never ran: fine while the daemon has expected it for less than the allowance,
        // overdue (critical) after.
        let recent = Some(t("2026-03-10T00:00:00Z"));
        assert_eq!(judge(now, day, None, None, false, recent).0, Level::Ok);
        let long_ago = Some(t("2026-03-09T00:00:00Z"));
        let never = judge(now, day, None, None, false, long_ago);
        assert_eq!((never.0, never.2), (Level::Critical, true), "{}", never.1);
        assert!(
            never.1.starts_with("never ran: scheduled since"),
            "{}",
            never.1
        );
        // A success since, however old the scheduling, is judged by its age as before.
        let ok = judge(
            now,
            day,
            Some(t("2026-03-10T01:00:00Z")),
            None,
            true,
            long_ago,
        );
        assert_eq!(ok.0, Level::Ok);
    }

    #[test]
    fn the_allowance_is_the_interval_plus_half_at_least_an_hour() {
        let tz = jiff::tz::TimeZone::UTC;
        let now = t("2026-03-10T12:00:00Z");
        let daily = crate::schedule::Schedule::parse("0 3 * * *").unwrap();
        assert_eq!(
            allowance(&daily, None, &tz, now),
            Some(SignedDuration::from_hours(36))
        );
        let minutely = crate::schedule::Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            allowance(&minutely, None, &tz, now),
            Some(SignedDuration::from_secs(60 + 3600))
        );
        let explicit = allowance(&daily, Some(std::time::Duration::from_secs(7200)), &tz, now);
        assert_eq!(explicit, Some(SignedDuration::from_hours(2)));
        let reboot = crate::schedule::Schedule::parse("@reboot").unwrap();
        assert_eq!(allowance(&reboot, None, &tz, now), None);
    }
}
