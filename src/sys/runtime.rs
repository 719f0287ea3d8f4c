//! The runtime directory's layout (`pid_file_dir`, e.g. `/run/backupmanager`), written down
//! once: the daemon's pid file, one kernel run lock per job, ssh ControlMaster sockets; and the
//! rules for trusting a directory we write into as root ([`ensure_private_dir`]).
//!
//! ```text
//! <pid_file_dir>/backupmanager.pid     the daemon's pid file (flock while it runs)
//! <pid_file_dir>/jobs/<job id>.run     a job's run lock (flock while a run of it goes)
//! <pid_file_dir>/ssh/                  ControlMaster sockets (0700)
//! <pid_file_dir>/daemon.json           the daemon's live state (`store::live`)
//! <pid_file_dir>/tar-probe.json        the GNU tar probe's cached answer (`tar::probe`)
//! ```
//!
//! Why the rules: another user who creates `pid_file_dir` or `state_dir` first (both are often
//! under world-writable `/tmp` or a fresh `/run`) could plant symlinks there and make root
//! truncate any file (through `jobs/ID.run`, the pid file, `state.json.tmp`) or chmod any
//! directory (`ssh/`). So a directory is used only when it is a real directory (not a symlink)
//! owned by this user and not writable by group or others; a missing one is created with a
//! safe mode; files in it are opened with `O_NOFOLLOW` ([`open_no_follow`]).
//!
//! Must not: take or probe locks (the daemon's pid file and the runner's run lock do that).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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

    /// The daemon's live state ([`crate::store::live`]), next to its pid file.
    pub fn live_file(&self) -> PathBuf {
        self.root.join("daemon.json")
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

    /// Checks (creating what is missing) the root (0755), `jobs/` and `ssh/` (0700) by the rules
    /// of [`ensure_private_dir`], and that nothing in `jobs/` is anything but a regular file (a
    /// symlink there would make opening a run lock truncate or create its target).
    pub fn prepare(&self) -> Result<(), (PathBuf, io::Error)> {
        ensure_private_dir(&self.root, 0o755).map_err(|e| (self.root.clone(), e))?;
        for d in [self.jobs_dir(), self.ssh_dir()] {
            ensure_private_dir(&d, 0o700).map_err(|e| (d.clone(), e))?;
        }
        let ssh = self.ssh_dir();
        // A real directory of ours (checked above), so set_permissions cannot be redirected.
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700)).map_err(|e| (ssh, e))?;
        let jobs = self.jobs_dir();
        for entry in fs::read_dir(&jobs).map_err(|e| (jobs.clone(), e))? {
            let entry = entry.map_err(|e| (jobs.clone(), e))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| (path.clone(), e))?;
            if !meta.file_type().is_file() {
                let what = if meta.file_type().is_symlink() {
                    "a symbolic link"
                } else {
                    "not a regular file"
                };
                return Err((
                    path.clone(),
                    io::Error::other(format!(
                        "{} is {what}; backupmanager writes run locks there and will not follow \
                         it. Remove it and run again",
                        path.display()
                    )),
                ));
            }
        }
        Ok(())
    }

    /// Opens (creating) the run lock of `job` without following a symlink.
    pub fn open_run_lock(&self, job: &str) -> io::Result<fs::File> {
        open_no_follow(&self.run_lock(job))
    }
}

/// Opens `path` read-write, creating it (0644) if missing, never following a symlink in its
/// last component (`O_NOFOLLOW`: a symlink fails with ELOOP), never truncating.
pub fn open_no_follow(path: &Path) -> io::Result<fs::File> {
    fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Replaces `path` with `bytes` atomically: written to `<path>.tmp` (opened with `O_NOFOLLOW`,
/// truncated, `mode`), synced, renamed over `path`. The caller has checked the directory with
/// [`ensure_private_dir`], so nobody else can plant anything at the temporary name.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// Makes sure `dir` is a directory this process may trust with files it writes as its user:
/// created with `mode` if missing (parents 0755); otherwise it must be a real directory (its
/// last component not a symlink), owned by our effective uid and not writable by group or
/// others. The error says which rule failed and what to do.
pub fn ensure_private_dir(dir: &Path, mode: u32) -> io::Result<()> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)?;
            }
            match fs::DirBuilder::new().mode(mode).create(dir) {
                Ok(()) => {}
                // Someone made it meanwhile: judged below like any existing one.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            fs::symlink_metadata(dir)?
        }
        Err(e) => return Err(e),
    };
    let refuse = |why: String| Err(io::Error::other(format!("{}: {why}", dir.display())));
    if meta.file_type().is_symlink() {
        return refuse(
            "is a symbolic link; backupmanager does not follow one for a directory it writes \
             into as this user. Point the setting at the real directory, or remove the link"
                .into(),
        );
    }
    if !meta.is_dir() {
        return refuse("is not a directory".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail (nix exposes it only with "user").
    let me = unsafe { nix::libc::geteuid() };
    if meta.uid() != me {
        return refuse(format!(
            "is owned by uid {}, not by this user (uid {me}); another user may have created it \
             to redirect backupmanager's files. Remove it (backupmanager recreates it) or \
             `chown {me}` it after checking its contents",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "is writable by group or others (mode {:04o}); `chmod go-w` it",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_safe_dirs_and_refuses_unsafe_ones() {
        let t = tempfile::tempdir().unwrap();
        let rt = RuntimeDir::new(t.path().join("a/run"));
        rt.prepare().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&rt.ssh_dir()), 0o700);
        assert_eq!(mode(&rt.jobs_dir()), 0o700);
        rt.prepare().unwrap();

        let open = t.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_private_dir(&open, 0o700).unwrap_err().to_string();
        assert!(
            e.contains("writable by group or others") && e.contains("0777"),
            "{e}"
        );

        let link = t.path().join("link");
        std::os::unix::fs::symlink(t.path(), &link).unwrap();
        let e = ensure_private_dir(&link, 0o700).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");

        let victim = t.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, rt.run_lock("j")).unwrap();
        let (path, e) = rt.prepare().unwrap_err();
        assert_eq!(path, rt.run_lock("j"));
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(rt.open_run_lock("j").is_err(), "O_NOFOLLOW");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }
}
