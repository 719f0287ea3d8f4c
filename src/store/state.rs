//! Persistent scheduler state in `<state_dir>/state.json`: per job, how far its schedule slots
//! have been handled (`covered_until`, so a restart neither repeats nor forgets a slot), and the
//! last run's result. Written atomically (temporary file, fsync, rename).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub jobs: BTreeMap<String, JobState>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobState {
    /// Every slot at or before this instant has been handled (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    #[serde(default)]
    pub runs: u64,
    /// Slots not run because the previous run was still going.
    #[serde(default)]
    pub skipped_overlap: u64,
    /// Slots missed while the daemon was down or the machine slept.
    #[serde(default)]
    pub missed: u64,
    /// When a daemon first scheduled this job (RFC 3339): how long it has been expected to
    /// run, which makes a job that never ran at all overdue in `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_since: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastRun {
    pub run_id: String,
    pub result: String,
    pub message: String,
    pub finished: String,
    pub duration_ms: u64,
}

impl JobState {
    pub fn covered_until(&self) -> Option<Timestamp> {
        self.covered_until.as_deref().and_then(|s| s.parse().ok())
    }

    pub fn scheduled_since(&self) -> Option<Timestamp> {
        self.scheduled_since.as_deref().and_then(|s| s.parse().ok())
    }

    /// A job the daemon schedules from `now` on: a job never seen starts counting its slots
    /// from now (no catch-up for a brand-new job), and is expected to run from now.
    pub fn start_scheduling(&mut self, now: Timestamp) {
        if self.covered_until().is_none() {
            self.covered_until = Some(now.to_string());
        }
        if self.scheduled_since().is_none() {
            self.scheduled_since = Some(now.to_string());
        }
    }
}

impl State {
    /// How far `job`'s slots are handled, or `default` for a job never seen: the one lookup the
    /// daemon and `status` share.
    pub fn covered_until(&self, job: &str, default: Timestamp) -> Timestamp {
        self.jobs
            .get(job)
            .and_then(JobState::covered_until)
            .unwrap_or(default)
    }
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("state.json")
}

/// Reads the state for the daemon; a missing file is a fresh start. A corrupt file is moved
/// aside (never deleted) and reported. Read-only callers use [`load_read_only`].
pub fn load(state_dir: &Path) -> State {
    let p = path(state_dir);
    match fs::read(&p) {
        Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
            Ok(s) => s,
            Err(e) => {
                let aside = p.with_extension(format!("corrupt-{}", Timestamp::now().as_second()));
                let _ = fs::rename(&p, &aside);
                tracing::error!(
                    "state file {} is unreadable ({e}); moved it to {} and starting fresh",
                    p.display(),
                    aside.display()
                );
                State::default()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => {
            tracing::error!(
                "cannot read state file {}: {e}; starting fresh",
                p.display()
            );
            State::default()
        }
    }
}

/// Why `state.json` could not be read (for read-only callers such as `status`).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("state file {path} is unreadable ({source}); the daemon will move it aside and start fresh at its next start")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read state file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the state without changing anything: a missing file is a fresh start, a corrupt or
/// unreadable one is reported, never moved aside (that is [`load`]'s job, the daemon's).
pub fn load_read_only(state_dir: &Path) -> Result<State, ReadError> {
    let path = path(state_dir);
    match fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| ReadError::Corrupt { path, source })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(source) => Err(ReadError::Io { path, source }),
    }
}

pub fn save(state_dir: &Path, state: &State) -> std::io::Result<()> {
    // Refuses a state dir another user owns or can write (they could plant a symlink at the
    // temporary file's name); the temporary file is never followed if it is a symlink.
    crate::sys::runtime::ensure_private_dir(state_dir, 0o700)?;
    let p = path(state_dir);
    let tmp = p.with_extension("json.tmp");
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        fs::File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?
    };
    let mut s = state.clone();
    s.version = 1;
    f.write_all(
        serde_json::to_string_pretty(&s)
            .expect("state serializes")
            .as_bytes(),
    )?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    fs::rename(&tmp, &p)
}
