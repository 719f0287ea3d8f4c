//! The series on a local file system: [`Inventory`] and [`Op`] with std::fs and syscalls.
//!
//! Owns: reading the series directory with one `readdir` (entry types from the directory
//! itself, no per-entry `stat`) plus one read per manifest, and each [`Op`] as a rename,
//! mkdir, unlink or tree removal. Renames never replace an existing name
//! (`renameat2(RENAME_NOREPLACE)` where available, else a check first: a series has one
//! writer, the job's run lock). `latest` is switched by renaming a fresh symlink over it,
//! which `rename(2)` does atomically without following it.
//!
//! Must not: start a shell or any other process, follow a symlink named like ours, or
//! touch a name that is not ours.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::backend::{Inventory, Kind, LatestState, Op};
use super::error::SnapshotError;
use super::names::{self, Name};

fn io_err(dest: &Path, op: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let where_ = dest.display().to_string();
    let op = op.into();
    move |source| SnapshotError::Io { where_, op, source }
}

fn kind_of(ft: fs::FileType) -> Kind {
    if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

/// One `readdir` of `dest`, plus the manifests of complete snapshots.
pub fn inventory(dest: &Path) -> Result<Inventory, SnapshotError> {
    let rd = match fs::read_dir(dest) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Inventory::absent()),
        Err(e) => return Err(io_err(dest, "reading the series directory")(e)),
    };
    let mut inv = Inventory {
        exists: true,
        ..Inventory::absent()
    };
    for entry in rd {
        let entry = entry.map_err(io_err(dest, "reading the series directory"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(n) = names::classify(name) else {
            continue;
        };
        let kind = kind_of(
            entry
                .file_type()
                .map_err(io_err(dest, format!("reading the type of {name}")))?,
        );
        if n == Name::Latest {
            inv.latest = match kind {
                Kind::Symlink => {
                    let t = fs::read_link(entry.path())
                        .map_err(io_err(dest, "reading the latest symlink"))?;
                    LatestState::Symlink(t.to_string_lossy().into_owned())
                }
                _ => LatestState::NotSymlink,
            };
            continue;
        }
        inv.entries.push((n, kind));
    }
    let dirs: std::collections::HashSet<&names::SnapshotId> = inv
        .entries
        .iter()
        .filter_map(|(n, k)| match (n, k) {
            (Name::Snapshot(id), Kind::Dir) => Some(id),
            _ => None,
        })
        .collect();
    let mut manifests = Vec::new();
    for (n, k) in &inv.entries {
        if let (Name::Manifest(id), Kind::File) = (n, k) {
            if dirs.contains(id) {
                let path = dest.join(names::manifest(id));
                match fs::read(&path) {
                    Ok(bytes) => manifests.push((id.clone(), bytes)),
                    // Removed since the readdir (a concurrent prune): not complete any more.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(dest, format!("reading {}", path.display()))(e)),
                }
            }
        }
    }
    inv.manifests = manifests;
    Ok(inv)
}

fn exists_nofollow(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// `rename(from, to)` that fails with `AlreadyExists` instead of replacing `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
        match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(()),
            // Not supported by this file system: fall back to check + rename.
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOSYS) => {}
            Err(e) => return Err(io::Error::from_raw_os_error(e as i32)),
        }
    }
    if exists_nofollow(to) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists", to.display()),
        ));
    }
    fs::rename(from, to)
}

/// fsync a directory so that renames in it survive a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Run `ops` in order; the first failure stops.
pub fn apply(dest: &Path, ops: &[Op]) -> Result<(), SnapshotError> {
    let mut dirty = false;
    for op in ops {
        apply_one(dest, op, &mut dirty)?;
    }
    if dirty {
        sync_dir(dest).map_err(io_err(dest, "syncing the series directory"))?;
    }
    Ok(())
}

fn apply_one(dest: &Path, op: &Op, dirty: &mut bool) -> Result<(), SnapshotError> {
    let at = |n: &str| -> PathBuf { dest.join(n) };
    match op {
        Op::CreateDest => {
            fs::create_dir_all(dest).map_err(io_err(dest, "creating the series directory"))?
        }
        Op::MkdirIncomplete(id) => {
            let n = names::incomplete(id);
            fs::create_dir(at(&n)).map_err(io_err(dest, format!("creating {n}")))?;
            *dirty = true;
        }
        Op::Rename { from, to } => {
            rename_noreplace(&at(from), &at(to))
                .map_err(io_err(dest, format!("renaming {from} to {to}")))?;
            *dirty = true;
        }
        Op::SyncData => {
            let dir = fs::File::open(dest).map_err(io_err(dest, "opening the series directory"))?;
            nix::unistd::syncfs(&dir).map_err(|e| {
                io_err(dest, "syncing the file system")(io::Error::from_raw_os_error(e as i32))
            })?;
        }
        Op::WriteIncompleteManifest { id, content } => {
            let n = names::incomplete_manifest(id);
            let path = at(&n);
            let _ = fs::remove_file(&path);
            let write = || -> io::Result<()> {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                f.write_all(content.as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_all()
            };
            write().map_err(io_err(dest, format!("writing {n}")))?;
        }
        Op::RemoveFile(n) => match fs::remove_file(at(n)) {
            Ok(()) => *dirty = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(dest, format!("removing {n}"))(e)),
        },
        Op::SwitchLatest(id) => {
            let latest = at(names::LATEST);
            if let Ok(m) = fs::symlink_metadata(&latest) {
                if !m.file_type().is_symlink() {
                    return Err(SnapshotError::LatestNotSymlink {
                        where_: dest.display().to_string(),
                    });
                }
            }
            let tmp = at(&names::latest_new(id));
            let _ = fs::remove_file(&tmp);
            symlink(id.to_string(), &tmp)
                .map_err(io_err(dest, "creating the new latest symlink"))?;
            fs::rename(&tmp, &latest).map_err(io_err(dest, "switching latest"))?;
            *dirty = true;
        }
        Op::PurgeDeleting => {
            let rd = match fs::read_dir(dest) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err(dest, "reading the series directory")(e)),
            };
            for entry in rd {
                let entry = entry.map_err(io_err(dest, "reading the series directory"))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !matches!(names::classify(name), Some(Name::Deleting(_))) {
                    continue;
                }
                let path = entry.path();
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                let r = if is_dir {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                match r {
                    Ok(()) => *dirty = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(dest, format!("removing {name}"))(e)),
                }
            }
        }
        Op::AssertRealDir(p) => {
            let ok = fs::symlink_metadata(at(p))
                .map(|m| m.is_dir())
                .unwrap_or(false);
            if !ok {
                return Err(io_err(dest, format!("checking {p}"))(io::Error::new(
                    io::ErrorKind::NotFound,
                    "not a directory",
                )));
            }
        }
        Op::AssertNotSymlink(p) => {
            if fs::symlink_metadata(at(p))
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false)
            {
                return Err(io_err(dest, format!("checking {p}"))(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "is a symlink",
                )));
            }
        }
        Op::AssertExists(p) => {
            fs::symlink_metadata(at(p)).map_err(io_err(dest, format!("checking {p}")))?;
        }
    }
    Ok(())
}
