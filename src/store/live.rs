//! The running daemon's live state, a small JSON document it owns and rewrites (atomically,
//! never following a symlink) whenever it changes: its pid and start time, the config it was
//! started with, the `pid_file_dir` and `state_dir` it really uses, and per running job the run
//! id and what the run is doing (waiting on what, held by whom, since when; or which sync).
//!
//! It is published in two places with the same content:
//! - `<pid_file_dir>/daemon.json`, next to the pid file;
//! - the **registration**, `<registry>/<16 hex>.json`, named by a hash of the canonical config
//!   path, under a directory that does not depend on the config's contents
//!   (`/run/backupmanager/daemons` for root, else `$XDG_RUNTIME_DIR/backupmanager/daemons`).
//!
//! The registration is how `status` and `run-job` find the daemon of a config file even when the
//! file was edited since (a new `pid_file_dir` waiting for a restart) or is broken: they look up
//! the config path they were given, and trust the entry only when its process is alive (same
//! boot, pid and start time).
//!
//! Must not: lock, signal, or decide anything; the daemon writes, the others only read.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sys::{procfs, runtime};

/// What the daemon publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub pid: u32,
    /// The process's start time in clock ticks after boot (with `pid` and `boot_id`: alive?).
    pub pid_start: u64,
    pub boot_id: String,
    /// The config path as the daemon was given it, and canonical.
    pub config: PathBuf,
    pub config_canonical: PathBuf,
    pub pid_file_dir: PathBuf,
    pub state_dir: PathBuf,
    /// RFC 3339.
    pub started: String,
    /// Running jobs by id.
    #[serde(default)]
    pub runs: BTreeMap<String, LiveRun>,
}

/// One run in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRun {
    /// `None` until the run's first event names it.
    pub run_id: Option<String>,
    /// RFC 3339.
    pub started: String,
    pub doing: Doing,
}

/// What a run is doing now. `since` is RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Doing {
    /// Started, nothing reported yet.
    Starting { since: String },
    /// Waiting for its run lock, a blocker or a lock of its own.
    Waiting {
        reason: String,
        lock: Option<String>,
        holder: Option<String>,
        since: String,
    },
    /// Holding its locks, between syncs.
    Running { since: String },
    /// Sync `index` (0-based) is running.
    Syncing {
        index: usize,
        source: String,
        dest: String,
        since: String,
    },
}

impl Live {
    /// True when the process that wrote this still runs (same boot, pid and start time).
    pub fn alive(&self) -> bool {
        self.boot_id == procfs::boot_id() && procfs::process_alive(self.pid, self.pid_start)
    }
}

/// Where daemons register, by who we are: root uses `/run/backupmanager/daemons`, another user
/// `$XDG_RUNTIME_DIR/backupmanager/daemons` (else `/tmp/backupmanager-UID/daemons`).
pub fn registry_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { nix::libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/backupmanager/daemons");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("backupmanager/daemons"),
        None => PathBuf::from(format!("/tmp/backupmanager-{uid}/daemons")),
    }
}

/// The config path as registrations name it: canonical when it resolves, else absolute.
pub fn canonical_config(config: &Path) -> PathBuf {
    fs::canonicalize(config)
        .unwrap_or_else(|_| std::path::absolute(config).unwrap_or(config.into()))
}

/// The registration file for `config`: a 64-bit FNV-1a hash of the canonical path in 16 hex
/// digits. FNV, not std's hasher: the name must not change with the Rust version, or a daemon
/// started by the old binary would be invisible to the new one after an upgrade.
pub fn registration_path(config: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical_config(config).as_os_str().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    registry_dir().join(format!("{h:016x}.json"))
}

/// Reads a live-state file; `None` when missing or unreadable.
pub fn read(path: &Path) -> Option<Live> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The live daemon registered for `config`, if one is alive.
pub fn find(config: &Path) -> Option<Live> {
    let live = read(&registration_path(config))?;
    (live.config_canonical == canonical_config(config) && live.alive()).then_some(live)
}

/// The daemon's writer: publishes to both places, only when the content changed.
pub struct Publisher {
    paths: Vec<PathBuf>,
    last: Option<Live>,
}

impl Publisher {
    pub fn new(config: &Path, pid_file_dir: &Path) -> Publisher {
        Publisher {
            paths: vec![
                registration_path(config),
                runtime::RuntimeDir::new(pid_file_dir).live_file(),
            ],
            last: None,
        }
    }

    /// Removes registrations of daemons that are gone (killed, or from another boot if the
    /// registry survived): they are harmless, since readers check liveness, but they pile up.
    /// Files that are not registrations are left alone.
    pub fn sweep_dead(&self) {
        let Some(dir) = self.paths[0].parent() else {
            return;
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let is_file = e.file_type().is_ok_and(|t| t.is_file());
            if is_file && p.extension().is_some_and(|x| x == "json") {
                if let Some(l) = read(&p) {
                    if !l.alive() {
                        let _ = fs::remove_file(&p);
                    }
                }
            }
        }
    }

    /// Writes `live` unless it is what was written last. Errors are returned for the log; the
    /// next change tries again.
    pub fn publish(&mut self, live: &Live) -> Result<(), String> {
        if self.last.as_ref() == Some(live) {
            return Ok(());
        }
        let mut bytes = serde_json::to_vec_pretty(live).expect("live state serializes");
        bytes.push(b'\n');
        let mut errors = Vec::new();
        for p in &self.paths {
            let dir = p.parent().expect("a file in a directory");
            let done = ensure_dirs(dir).and_then(|()| runtime::write_atomic(p, &bytes, 0o644));
            if let Err(e) = done {
                errors.push(format!("cannot write {}: {e}", p.display()));
            }
        }
        if errors.is_empty() {
            self.last = Some(live.clone());
            Ok(())
        } else {
            self.last = None;
            Err(errors.join("; "))
        }
    }

    /// Removes both files if they still name this process (a daemon that replaced us keeps its).
    pub fn remove(&self) {
        let me = std::process::id();
        for p in &self.paths {
            if read(p).is_some_and(|l| l.pid == me) {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// The registry's parent is shared (`/run/backupmanager` is also the default `pid_file_dir`):
/// both levels must be ours and not writable by others.
fn ensure_dirs(dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        runtime::ensure_private_dir(parent, 0o755)?;
    }
    runtime::ensure_private_dir(dir, 0o755)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_names_are_stable_and_follow_the_canonical_path() {
        let t = tempfile::tempdir().unwrap();
        let cfg = t.path().join("c.yaml");
        fs::write(&cfg, "x").unwrap();
        let link = t.path().join("l.yaml");
        std::os::unix::fs::symlink(&cfg, &link).unwrap();
        let a = registration_path(&cfg);
        assert_eq!(a, registration_path(&link));
        assert_eq!(a, registration_path(&t.path().join("./c.yaml")));
        let name = a.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 16 + 5, "{name}");
        assert!(name[..16].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, registration_path(&t.path().join("other.yaml")));
    }

    #[test]
    fn a_dead_writer_is_not_alive() {
        let me = std::process::id();
        let mut l = Live {
            pid: me,
            pid_start: procfs::process_start(me).unwrap(),
            boot_id: procfs::boot_id(),
            config: "c".into(),
            config_canonical: "c".into(),
            pid_file_dir: "r".into(),
            state_dir: "s".into(),
            started: "2026-01-01T00:00:00Z".into(),
            runs: BTreeMap::new(),
        };
        assert!(l.alive());
        l.pid_start += 1;
        assert!(!l.alive());
    }
}
