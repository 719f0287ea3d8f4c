//! The typed status snapshot: is the daemon running, and for each job its schedule, next run,
//! last result and whether a run is in progress. `status --format json` serializes it, the text
//! output renders it, and the web API will serve it.
//!
//! Read-only: it reads `state.json` and `/proc/locks`, never probing by taking a lock (so a
//! status probe can never make a starting daemon or a `--no-wait` run think it is held).
//!
//! Must not: write anything, or start or signal runs.

use std::fs;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;

use super::state::{self, LastRun};
use crate::config::Config;
use crate::schedule::{format::rfc3339, plan};
use crate::sys::runtime::RuntimeDir;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub config: PathBuf,
    pub daemon: Option<DaemonStatus>,
    /// Where the daemon's pid file is expected (for "not running" messages).
    #[serde(skip)]
    pub pid_file: PathBuf,
    pub state_file: PathBuf,
    /// Why the state file could not be read (its run counts and last results are then not
    /// shown); `None` when it was read or does not exist yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_error: Option<String>,
    pub jobs: Vec<JobStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DaemonStatus {
    /// What the holder wrote in the pid file, else `pid N` from `/proc/locks`.
    pub pid: String,
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
    pub last_run: Option<LastRun>,
    pub runs: u64,
    pub missed: u64,
    pub skipped_overlap: u64,
}

/// Reads the snapshot for `config` (loaded from `config_path`) at `now`.
pub fn snapshot(config_path: &Path, config: &Config, now: Timestamp) -> Status {
    let tz = &config.timezone.tz;
    // Read-only: a corrupt file is reported here, never moved aside (the daemon does that).
    let (st, state_error) = match state::load_read_only(&config.state_dir) {
        Ok(st) => (st, None),
        Err(e) => {
            tracing::error!("{e}");
            (state::State::default(), Some(e.to_string()))
        }
    };
    let runtime = RuntimeDir::new(&config.pid_file_dir);
    let jobs = config
        .jobs
        .iter()
        .map(|job| {
            let js = st.jobs.get(&job.id).cloned().unwrap_or_default();
            let next_run = if !job.enabled || job.schedule.is_reboot() {
                None
            } else {
                let covered = st.covered_until(&job.id, now);
                plan::next_wake(&job.schedule, tz, covered, now).map(|t| rfc3339(t, tz))
            };
            JobStatus {
                id: job.id.clone(),
                enabled: job.enabled,
                cron_schedule: job.schedule.expr().to_string(),
                next_run,
                running: lock_holder(&runtime.run_lock(&job.id)),
                last_run: js.last_run,
                runs: js.runs,
                missed: js.missed,
                skipped_overlap: js.skipped_overlap,
            }
        })
        .collect();
    Status {
        config: config_path.to_path_buf(),
        daemon: lock_holder(&runtime.pid_file()).map(|pid| DaemonStatus { pid }),
        pid_file: runtime.pid_file(),
        state_file: state::path(&config.state_dir),
        state_error,
        jobs,
    }
}

/// Who holds a kernel lock on `path`, if anyone: the file's first line (the holder writes its
/// pid there), else the pid from `/proc/locks`.
fn lock_holder(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    let (major, minor) = (
        nix::sys::stat::major(meta.dev()),
        nix::sys::stat::minor(meta.dev()),
    );
    let locks = fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
    let pid = locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (pid, dev_ino) = (f.get(4)?, f.get(5)?);
        let mut parts = dev_ino.split(':');
        let maj = u64::from_str_radix(parts.next()?, 16).ok()?;
        let min = u64::from_str_radix(parts.next()?, 16).ok()?;
        let ino: u64 = parts.next()?.parse().ok()?;
        (f.get(1) == Some(&"FLOCK") && maj == major && min == minor && ino == meta.ino())
            .then(|| pid.to_string())
    })?;
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
