//! Per-run log files: where they live, finding one, and trimming them with the history.
//!
//! ```text
//! <state_dir>/logs/                    0700
//! <state_dir>/logs/<job id>/           0700
//! <state_dir>/logs/<job id>/<run id>.log   0600, one run's log (written by `run::runlog`)
//! ```
//!
//! Job ids are validated path components (`[A-Za-z0-9_.-]`, not starting with `.` or `-`) and
//! run ids are ours, so a path is never built from anything else. Directories are checked with
//! [`ensure_private_dir`]; files are created and removed without following symlinks.
//!
//! Must not: write log lines (that is the run's observer) or decide what a run is.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::sys::runtime::ensure_private_dir;

/// The final line of every run's log starts with this (after the time): a follower knows the
/// run ended when it reads it.
pub const END_MARK: &str = "run ended: ";

/// `<state_dir>/logs`.
pub fn root(state_dir: &Path) -> PathBuf {
    state_dir.join("logs")
}

/// The directory of one job's logs.
pub fn job_dir(state_dir: &Path, job: &str) -> PathBuf {
    root(state_dir).join(job)
}

/// The log file of one run.
pub fn path(state_dir: &Path, job: &str, run_id: &str) -> PathBuf {
    job_dir(state_dir, job).join(format!("{run_id}.log"))
}

/// True for a name that may be used as one path component here (a job or run id).
pub fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '-'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Creates (checking) the directories for `job`'s logs and the new file of `run_id` (mode 0600,
/// never following a symlink, never reusing an existing file).
pub fn create(state_dir: &Path, job: &str, run_id: &str) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if !safe_name(job) || !safe_name(run_id) {
        return Err(io::Error::other(format!(
            "unsafe log name {job:?}/{run_id:?}"
        )));
    }
    ensure_private_dir(state_dir, 0o700)?;
    ensure_private_dir(&root(state_dir), 0o700)?;
    ensure_private_dir(&job_dir(state_dir, job), 0o700)?;
    fs::File::options()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path(state_dir, job, run_id))
}

/// The log files of `job`, oldest first (run ids start with their local start time).
pub fn list(state_dir: &Path, job: &str) -> Vec<PathBuf> {
    if !safe_name(job) {
        return Vec::new();
    }
    let mut v = log_files(&job_dir(state_dir, job));
    v.sort();
    v
}

/// The log of run `run_id` of any job, if there is one.
pub fn find_run(state_dir: &Path, run_id: &str) -> Option<PathBuf> {
    if !safe_name(run_id) {
        return None;
    }
    let name = format!("{run_id}.log");
    job_dirs(state_dir)
        .into_iter()
        .map(|d| d.join(&name))
        .find(|p| is_regular(p))
}

/// Removes the logs of the runs the history trim removed (`(job, run_id)`), and any log whose
/// last write is before `cutoff` (orphans: a run the history never recorded or lost). Never
/// follows a symlink; errors are skipped (the next trim tries again). Returns how many.
pub fn trim(state_dir: &Path, removed: &[(String, String)], cutoff: SystemTime) -> usize {
    let mut n = 0;
    for (job, run_id) in removed {
        if safe_name(job) && safe_name(run_id) {
            let p = path(state_dir, job, run_id);
            if is_regular(&p) && fs::remove_file(&p).is_ok() {
                n += 1;
            }
        }
    }
    for dir in job_dirs(state_dir) {
        for f in log_files(&dir) {
            let old = fs::symlink_metadata(&f)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if old && fs::remove_file(&f).is_ok() {
                n += 1;
            }
        }
        // Gone only when empty.
        let _ = fs::remove_dir(&dir);
    }
    n
}

fn is_regular(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file())
}

/// Real directories (not symlinks) under `<state_dir>/logs`.
fn job_dirs(state_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(root(state_dir)) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Regular files named `*.log` in `dir` (not following symlinks).
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn create_list_find_trim() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path().join("state");
        assert!(create(&s, "../x", "r").is_err());
        create(&s, "j", "20260101T000000-aaaaaa").unwrap();
        create(&s, "j", "20260102T000000-bbbbbb").unwrap();
        assert!(
            create(&s, "j", "20260102T000000-bbbbbb").is_err(),
            "never reused"
        );
        let l = list(&s, "j");
        assert_eq!(l.len(), 2);
        assert!(l[1].ends_with("20260102T000000-bbbbbb.log"));
        assert_eq!(
            find_run(&s, "20260101T000000-aaaaaa"),
            Some(path(&s, "j", "20260101T000000-aaaaaa"))
        );
        // A symlink named like a log is neither listed nor removed through.
        let victim = t.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, job_dir(&s, "j").join("evil.log")).unwrap();
        assert_eq!(list(&s, "j").len(), 2);
        let removed = vec![("j".to_string(), "20260101T000000-aaaaaa".to_string())];
        let past = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(trim(&s, &removed, past), 1);
        assert_eq!(list(&s, "j").len(), 1);
        // Everything is older than a cutoff in the future: the orphan goes too.
        let future = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(trim(&s, &[], future), 1);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }
}
