//! Pinning a checked sender path, so the directory rsync reads is the one the gate checked.
//!
//! Between the gate's check and rsync opening the path, a user on the client who can write in
//! a root could swap a directory on the way for a symlink out of it. So the gate opens the
//! directory itself (`O_PATH`, following symlinks as rsync would), verifies through
//! `/proc/self/fd` that what it holds is inside the root, keeps the descriptor open across
//! `exec`, and hands rsync `/proc/self/fd/N/…` instead of the path. (rrsync does the same.)
//! For a path without a trailing slash its parent is pinned and the last name appended: rsync
//! sends that entry as what it is (a symlink stays a symlink).
//!
//! Must not: be used without Linux's `/proc/self/fd` (the gate refuses then, it never falls back
//! to the unpinned path).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// An open directory rsync will inherit, and the argument naming the path through it.
#[derive(Debug)]
pub struct Pinned {
    pub arg: String,
    _dir: File,
}

/// Pins `path` (already checked lexically to be `lex`, inside `root`).
pub fn pin(path: &str, lex: &Path, root: &Path) -> Result<Pinned, String> {
    let (dir, tail) = if path.ends_with('/') {
        (lex.to_path_buf(), None)
    } else {
        let parent = lex
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        (
            parent,
            lex.file_name().map(|n| n.to_string_lossy().into_owned()),
        )
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_DIRECTORY)
        .open(&dir)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("path {path:?} does not exist"),
            _ => format!("path {path:?}: cannot open {}: {e}", dir.display()),
        })?;
    let fd = file.as_raw_fd();
    let held = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map_err(|e| format!("path {path:?}: cannot verify the opened directory: {e}"))?;
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", root.display()))?;
    // A root named without a trailing slash is sent as itself (its name, then its tree): its
    // parent is pinned, which must then be exactly the root's real parent.
    let root_itself = lex == root
        && Some(held.as_path()) == real_root.parent()
        && tail.as_deref().map(std::ffi::OsStr::new) == real_root.file_name();
    if !held.starts_with(&real_root) && !root_itself {
        return Err(format!(
            "path {path:?} resolves to {} through a symlink, outside {}",
            held.display(),
            root.display()
        ));
    }
    fcntl(&file, FcntlArg::F_SETFD(FdFlag::empty()))
        .map_err(|e| format!("cannot keep the pinned directory open for rsync: {e}"))?;
    let mut arg = format!("/proc/self/fd/{fd}");
    match tail {
        Some(t) => {
            arg.push('/');
            arg.push_str(&t);
        }
        None => arg.push('/'),
    }
    Ok(Pinned { arg, _dir: file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn pins_inside_and_refuses_a_swapped_symlink() {
        let t = std::env::temp_dir().join(format!("bm-gate-pin-{}", std::process::id()));
        let root = t.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        let p = |s: &str| format!("{}/{s}", root.display());
        let a = pin(&p("sub/"), &root.join("sub"), &root).unwrap();
        assert!(a.arg.starts_with("/proc/self/fd/") && a.arg.ends_with('/'));
        let b = pin(&p("sub"), &root.join("sub"), &root).unwrap();
        assert!(b.arg.ends_with("/sub"), "{}", b.arg);
        // The root itself, without a trailing slash: its parent is pinned, its name kept.
        let r = pin(&root.display().to_string(), &root, &root).unwrap();
        assert!(r.arg.ends_with("/root"), "{}", r.arg);
        // Through a symlink to the root, the parent is not the root's: refused.
        symlink(&root, t.join("alias")).unwrap();
        let alias = t.join("alias");
        assert!(pin(&alias.display().to_string(), &alias, &alias).is_err());
        assert!(pin(&format!("{}/", alias.display()), &alias, &alias).is_ok());
        // The check passed, then the directory became a symlink to /etc: the pin sees it.
        std::fs::remove_dir(root.join("sub")).unwrap();
        symlink("/etc", root.join("sub")).unwrap();
        assert!(pin(&p("sub/"), &root.join("sub"), &root).is_err());
        assert!(pin(&p("missing/"), &root.join("missing"), &root).is_err());
        std::fs::remove_dir_all(&t).unwrap();
    }
}
