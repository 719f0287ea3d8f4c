//! Lock files on this host's filesystem, with system calls only.
//!
//! Creation writes the record to a temporary file next to the lock, fsyncs it and hard-links it
//! into place (`link(2)` fails if the name exists), so a reader never sees a half-written lock
//! and two writers never both succeed.
//!
//! A directory at a lock path is an error (it can never be a lock, and `link(2)` onto it fails
//! like onto any existing name, so waiting would wait forever). A lock path is never followed: reads use `O_NOFOLLOW` (and `O_NONBLOCK`, so a FIFO cannot
//! hang a check), and a symlink there is reported as one, its target never read.
//!
//! Must not: judge staleness or decide to wait; it reports what it found.

use std::fmt;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::judge::{Foreign, Holder, Observed};
use super::record::Record;
use super::{holder_of, Created, LockBackend, LockError, IS_A_DIRECTORY, MAX_READ};

/// Lock files on this host.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFiles;

impl fmt::Display for LocalFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this host")
    }
}

fn io_err(path: &str, source: std::io::Error) -> LockError {
    LockError::Io {
        path: path.into(),
        source,
    }
}

/// Opens `path` for reading, never through a symlink (`O_NOFOLLOW`: ELOOP) and never waiting
/// on a FIFO (`O_NONBLOCK`).
fn open_no_follow(path: &Path) -> std::io::Result<fs::File> {
    fs::File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
}

/// What is at a lock path, found without following a symlink.
enum Found {
    Absent,
    /// A regular file, opened: its metadata and its first [`MAX_READ`] bytes (None when they
    /// cannot be read).
    File(fs::Metadata, Option<String>, fs::File),
    /// Anything else (a symlink, a directory, a FIFO, a socket, a device), or a file we may
    /// not open: its own metadata (`lstat`).
    Other(fs::Metadata),
}

fn find(path: &Path) -> std::io::Result<Found> {
    use std::io::Read;
    match open_no_follow(path) {
        Ok(f) => {
            let meta = f.metadata()?;
            if !meta.is_file() {
                return Ok(Found::Other(meta));
            }
            let mut buf = Vec::new();
            let text = (&f)
                .take(MAX_READ as u64)
                .read_to_end(&mut buf)
                .ok()
                .map(|_| String::from_utf8_lossy(&buf).into_owned());
            Ok(Found::File(meta, text, f))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Found::Absent),
        // ELOOP (a symlink), ENXIO (a socket), EACCES, ...: say what it is without opening it.
        Err(_) => match fs::symlink_metadata(path) {
            Ok(m) => Ok(Found::Other(m)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Found::Absent),
            Err(e) => Err(e),
        },
    }
}

impl LocalFiles {
    /// Acts on `path` only while it is a regular file holding `token` (never through a
    /// symlink): the one place that decides whether a local lock file is still ours. `act` gets
    /// the file as opened for the check. Returns whether it acted.
    fn if_token(
        &self,
        path: &str,
        token: &str,
        act: impl FnOnce(&fs::File) -> std::io::Result<()>,
    ) -> Result<bool, LockError> {
        let file = match find(Path::new(path)) {
            Ok(Found::File(_, Some(text), f))
                if Record::parse(&text).is_some_and(|r| r.token == token) =>
            {
                f
            }
            Ok(_) => return Ok(false),
            Err(e) => return Err(io_err(path, e)),
        };
        match act(&file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(path, e)),
        }
    }
}

impl LockBackend for LocalFiles {
    fn try_create(&self, path: &str, record: &Record) -> Result<Created, LockError> {
        let p = Path::new(path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err(path, e))?;
        }
        let tmp = PathBuf::from(format!("{path}.bm-{}", record.token));
        let mut f = fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| io_err(path, e))?;
        let written = f
            .write_all(record.to_line().as_bytes())
            .and_then(|()| f.sync_all());
        drop(f);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(path, e));
        }
        let linked = fs::hard_link(&tmp, p);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Created::Yes),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                Ok(Created::Exists(self.observe(path)?))
            }
            Err(e) => Err(io_err(path, e)),
        }
    }

    fn observe(&self, path: &str) -> Result<Option<Observed>, LockError> {
        let (meta, holder) = match find(Path::new(path)).map_err(|e| io_err(path, e))? {
            Found::Absent => return Ok(None),
            Found::File(meta, text, _) => {
                let holder = match text {
                    Some(text) => holder_of(&text, Some(meta.len())),
                    None => Holder::Foreign(Foreign::File {
                        size: Some(meta.len()),
                    }),
                };
                (meta, holder)
            }
            Found::Other(meta) if meta.is_dir() => {
                return Err(io_err(path, std::io::Error::other(IS_A_DIRECTORY)));
            }
            Found::Other(meta) if meta.file_type().is_symlink() => {
                (meta, Holder::Foreign(Foreign::Symlink))
            }
            Found::Other(meta) if meta.is_file() => {
                let size = Some(meta.len());
                (meta, Holder::Foreign(Foreign::File { size }))
            }
            Found::Other(meta) => (meta, Holder::Foreign(Foreign::Special)),
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or_default();
        Ok(Some(Observed { holder, age }))
    }

    fn release_if_token(&self, path: &str, token: &str) -> Result<bool, LockError> {
        // unlink(2) removes the name, never what a symlink there points to.
        self.if_token(path, token, |_| fs::remove_file(path))
    }

    fn refresh_if_token(&self, path: &str, token: &str) -> Result<bool, LockError> {
        // futimens on the file we checked, not on whatever the name leads to now.
        self.if_token(path, token, |f| f.set_modified(SystemTime::now()))
    }

    fn is_local(&self) -> bool {
        true
    }

    fn waker(&self, path: &str) -> Option<PathBuf> {
        Some(PathBuf::from(path))
    }
}
