//! The runtime directory's layout (`pid_file_dir`, e.g. `/run/backupmanager`), written down
//! once: the daemon's pid file, one kernel run lock per job, ssh ControlMaster sockets.
//!
//! ```text
//! <pid_file_dir>/backupmanager.pid     the daemon's pid file (flock while it runs)
//! <pid_file_dir>/jobs/<job id>.run     a job's run lock (flock while a run of it goes)
//! <pid_file_dir>/ssh/                  ControlMaster sockets (0700)
//! ```
//!
//! Must not: take or probe locks (the daemon's pid file and the runner's run lock do that).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Paths under one runtime directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDir {
    root: PathBuf,
}

impl RuntimeDir {
    pub fn new(root: impl Into<PathBuf>) -> RuntimeDir {
        RuntimeDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pid_file(&self) -> PathBuf {
        self.root.join("backupmanager.pid")
    }

    pub fn jobs_dir(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// The kernel lock that keeps one run of `job` per host.
    pub fn run_lock(&self, job: &str) -> PathBuf {
        self.jobs_dir().join(format!("{job}.run"))
    }

    /// Where ssh ControlMaster sockets live.
    pub fn ssh_dir(&self) -> PathBuf {
        self.root.join("ssh")
    }

    /// Creates `jobs/` and `ssh/` (0700), as a run needs them.
    pub fn prepare(&self) -> Result<(), (PathBuf, std::io::Error)> {
        for d in [self.jobs_dir(), self.ssh_dir()] {
            fs::create_dir_all(&d).map_err(|e| (d.clone(), e))?;
        }
        let _ = fs::set_permissions(self.ssh_dir(), fs::Permissions::from_mode(0o700));
        Ok(())
    }
}
