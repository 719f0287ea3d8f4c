//! The pid file: `<pid_file_dir>/backupmanager.pid`, held with a kernel lock for the daemon's
//! life. A second daemon finds it locked and names the running one's pid; a pid file left by a
//! crash is not locked (the kernel dropped the lock with the process), so it never blocks a restart.

use std::fs::{self, File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("another backupmanager daemon is already running (pid {pid}, pid file {path}); stop it first, or use `backupmanager run-job` for a one-off run")]
    Running { pid: String, path: PathBuf },
    #[error("pid file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct PidFile {
    file: File,
    path: PathBuf,
}

impl PidFile {
    pub fn acquire(dir: &Path) -> Result<PidFile, PidFileError> {
        let path = dir.join("backupmanager.pid");
        let io = |source| PidFileError::Io {
            path: path.clone(),
            source,
        };
        // Refuses a directory another user owns or can write, and a symlinked pid file.
        crate::sys::runtime::ensure_private_dir(dir, 0o755).map_err(io)?;
        let mut file = crate::sys::runtime::open_no_follow(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let pid = fs::read_to_string(&path)
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                return Err(PidFileError::Running {
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid
                    },
                    path,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(PidFile { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Still holding the lock, so no other daemon can have taken the file over.
        let _ = fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}
