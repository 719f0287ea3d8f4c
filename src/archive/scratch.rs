//! This host's temporary files of an archive run, and removing those a killed run left.
//!
//! A run keeps two kinds of files in the temporary directory (`$TMPDIR`, else `/tmp`): tar's
//! member list (`backupmanager-<pid>-<stem>.idx`, every archive) and, for a remote series, the
//! state file being built (`backupmanager-<pid>-.incomplete-<stem>.snar`; the series directory
//! is on the other host). Both are removed when the run ends, except when the run was killed
//! (`kill -9`, a crash, power loss). [`sweep`], called before each new archive, removes those:
//! regular files of ours (by name, owned by this user) whose `<pid>` is no longer running.
//!
//! Must not: touch a file whose process may still be running (its pid alive, even if reused
//! since), a file of another user, or anything not named like ours.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const PREFIX: &str = "backupmanager-";

/// The temporary file `<tmp>/backupmanager-<our pid>-<rest>`.
pub fn path(rest: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{PREFIX}{}-{rest}", std::process::id()))
}

/// Creates `p` (a name from [`path`]) empty with mode 0600, never through anything already
/// there: in a shared temporary directory another user can put a symlink at a name they can
/// guess (our pid, a timestamp), and tar or our writer would write through it. A regular file
/// of ours already there (left by a killed process that had our pid) is replaced; anything
/// else is refused. Once created, the file is ours in a sticky directory: nobody else can
/// swap it, so tar may open it by name.
pub fn claim(p: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { nix::libc::geteuid() };
    for _ in 0..2 {
        let made = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(p);
        match made {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let m = fs::symlink_metadata(p)?;
                if !(m.file_type().is_file() && m.uid() == me) {
                    break;
                }
                fs::remove_file(p)?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "something else is already there (a symlink, or another user's file); refusing to write through it",
    ))
}

/// The pid in one of our names, if it is one of ours.
fn pid_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, tail) = rest.split_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let stem = tail
        .strip_suffix(".idx")
        .or_else(|| tail.strip_suffix(".snar"))?;
    let stem = stem.strip_prefix(super::names::INCOMPLETE).unwrap_or(stem);
    super::names::Stem::parse(stem)?;
    pid.parse().ok()
}

/// Removes what killed runs left in the temporary directory; returns the paths removed. Never
/// fails: a file it cannot remove stays for the next sweep.
pub fn sweep() -> Vec<PathBuf> {
    sweep_in(&std::env::temp_dir())
}

fn sweep_in(dir: &Path) -> Vec<PathBuf> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { nix::libc::geteuid() };
    let mut removed = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return removed;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(pid_of) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.file_type().is_file() && m.uid() == me && fs::remove_file(&p).is_ok() {
            removed.push(p);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEM: &str = "2026-11-28T093902Z_L01_2026-11-29T093914Z";

    #[test]
    fn only_our_names_are_recognised() {
        assert_eq!(pid_of(&format!("backupmanager-42-{STEM}.idx")), Some(42));
        assert_eq!(
            pid_of(&format!("backupmanager-42-.incomplete-{STEM}.snar")),
            Some(42)
        );
        for n in [
            format!("backupmanager-x-{STEM}.idx"),
            format!("backupmanager--{STEM}.idx"),
            format!("backupmanager-42-{STEM}.tar"),
            "backupmanager-42-notastem.idx".to_string(),
            format!("other-42-{STEM}.idx"),
        ] {
            assert_eq!(pid_of(&n), None, "{n}");
        }
    }

    #[test]
    fn a_claim_never_writes_through_what_is_already_there() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("bm-claim-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        // New: created empty, private.
        let fresh = d.join("fresh");
        claim(&fresh).unwrap();
        let m = fs::metadata(&fresh).unwrap();
        assert_eq!((m.len(), m.permissions().mode() & 0o777), (0, 0o600));
        // A stale regular file of ours: replaced (emptied).
        fs::write(&fresh, "stale").unwrap();
        claim(&fresh).unwrap();
        assert_eq!(fs::read(&fresh).unwrap(), b"");
        // A symlink planted at the name (dangling or not): refused, its target untouched.
        let target = d.join("precious");
        fs::write(&target, "keep").unwrap();
        let planted = d.join("planted");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let e = claim(&planted).unwrap_err();
        assert!(e.to_string().contains("refusing"), "{e}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
        let dangling = d.join("dangling");
        std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
        assert!(claim(&dangling).is_err());
        assert!(!d.join("nowhere").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn files_of_dead_processes_go_and_live_ones_stay() {
        let d = std::env::temp_dir().join(format!("bm-sweep-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        // A process that has exited (and been reaped): its pid is free.
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let dead = c.id();
        c.wait().unwrap();
        let gone = d.join(format!("backupmanager-{dead}-.incomplete-{STEM}.snar"));
        let mine = d.join(format!("backupmanager-{}-{STEM}.idx", std::process::id()));
        let live = d.join(format!("backupmanager-1-{STEM}.idx"));
        let other = d.join(format!("unrelated-{dead}-{STEM}.idx"));
        for p in [&gone, &mine, &live, &other] {
            fs::write(p, "x").unwrap();
        }
        let removed = sweep_in(&d);
        assert_eq!(removed, vec![gone.clone()]);
        assert!(!gone.exists() && mine.exists() && live.exists() && other.exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
