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

/// A pid file opened (created if missing) but not locked yet.
pub struct Opened {
    file: File,
    path: PathBuf,
}

impl PidFile {
    pub fn acquire(dir: &Path) -> Result<PidFile, PidFileError> {
        PidFile::open(dir)?.lock()
    }

    /// Opens (creating) the pid file in `dir`, a directory trusted by the runtime-dir rules.
    pub fn open(dir: &Path) -> Result<Opened, PidFileError> {
        let path = dir.join("backupmanager.pid");
        // Refuses a directory another user owns or can write, and a symlinked pid file.
        crate::sys::runtime::ensure_private_dir(dir, 0o755).map_err(|e| io_err(&path, e))?;
        let file = crate::sys::runtime::open_no_follow(&path).map_err(|e| io_err(&path, e))?;
        Ok(Opened { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn io_err(path: &Path, source: std::io::Error) -> PidFileError {
    PidFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// True when `path` still names the file `file` is open on (same device and inode).
fn still_at(file: &File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let mine = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(there) => Ok(there.dev() == mine.dev() && there.ino() == mine.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// How often a pid file that moved between our open and our lock is opened again. Each retry
/// needs another daemon to exit in that window; more than a few in a row is not a race.
const MAX_REOPEN: usize = 8;

impl Opened {
    /// Locks the pid file and writes our pid into it. The lock counts only if the path still
    /// names the locked file afterwards: a daemon on its way out removes its pid file while
    /// holding the lock, and a lock won on that removed file would protect nothing (a third
    /// daemon would create a new file and run alongside). Then the file is opened again.
    pub fn lock(self) -> Result<PidFile, PidFileError> {
        let Opened { mut file, path } = self;
        let io = |source| io_err(&path, source);
        for _ in 0..MAX_REOPEN {
            Opened::try_lock(&file, &path)?;
            if still_at(&file, &path).map_err(io)? {
                file.set_len(0).map_err(io)?;
                writeln!(file, "{}", std::process::id()).map_err(io)?;
                return Ok(PidFile { file, path });
            }
            drop(file);
            file = crate::sys::runtime::open_no_follow(&path).map_err(io)?;
        }
        Err(io(std::io::Error::other(
            "it keeps being replaced while we lock it; is another program removing it?",
        )))
    }

    fn try_lock(file: &File, path: &Path) -> Result<(), PidFileError> {
        match file.try_lock() {
            Ok(()) => Ok(()),
            Err(TryLockError::WouldBlock) => {
                let pid = fs::read_to_string(path)
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                Err(PidFileError::Running {
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid
                    },
                    path: path.to_path_buf(),
                })
            }
            Err(TryLockError::Error(e)) => Err(io_err(path, e)),
        }
    }
}

impl Drop for PidFile {
    /// Removes the file while still holding its lock, then unlocks. The other order would let
    /// a starting daemon lock the file between our unlock and our removal, and then lose its
    /// pid file to our removal. This order leaves a daemon that opened the file before the
    /// removal holding a lock on a removed file, which [`Opened::lock`] detects and retries.
    /// Only the file we hold is removed, never one someone put in its place.
    fn drop(&mut self) {
        if still_at(&self.file, &self.path).unwrap_or(false) {
            let _ = fs::remove_file(&self.path);
        }
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon that opened the pid file just before the running one removed it (on its way
    /// out) must not end up holding a lock on the removed file: a third daemon would then find
    /// no pid file, create a new one and run next to it.
    #[test]
    fn a_pid_file_removed_between_open_and_lock_is_not_held() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("run");
        let first = PidFile::acquire(&dir).unwrap();
        let second = PidFile::open(&dir).unwrap();
        drop(first);
        let second = second.lock().expect("the second daemon starts");
        match PidFile::acquire(&dir) {
            Err(PidFileError::Running { pid, .. }) => {
                assert_eq!(pid, std::process::id().to_string())
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a third daemon started next to the second"),
        }
        drop(second);
        assert!(!dir.join("backupmanager.pid").exists());
        let again = PidFile::acquire(&dir).expect("free again");
        drop(again);
    }
}
