//! Lock files on this host's filesystem, with system calls only.
//!
//! Creation writes the record to a temporary file next to the lock, fsyncs it and hard-links it
//! into place (`link(2)` fails if the name exists), so a reader never sees a half-written lock
//! and two writers never both succeed.
//!
//! Must not: judge staleness or decide to wait; it reports what it found.

use std::fmt;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::judge::Observed;
use super::record::Record;
use super::{holder_of, Created, LockBackend, LockError, MAX_READ};

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

fn read_prefix(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    fs::File::open(path)?
        .take(MAX_READ as u64)
        .read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

impl LocalFiles {
    /// Acts on `path` only while it holds `token`: the one place that decides whether a local
    /// lock file is still ours. Returns whether it acted.
    fn if_token(
        &self,
        path: &str,
        token: &str,
        act: impl FnOnce() -> std::io::Result<()>,
    ) -> Result<bool, LockError> {
        match read_prefix(Path::new(path)) {
            Ok(text) if Record::parse(&text).is_some_and(|r| r.token == token) => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(path, e)),
        }
        match act() {
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
        let p = Path::new(path);
        let meta = match fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path, e)),
        };
        let text = match read_prefix(p) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            // A directory, a socket, no permission: it exists, so it counts; we cannot read it.
            Err(_) => String::new(),
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or_default();
        Ok(Some(Observed {
            holder: holder_of(&text),
            age,
        }))
    }

    fn release_if_token(&self, path: &str, token: &str) -> Result<bool, LockError> {
        self.if_token(path, token, || fs::remove_file(path))
    }

    fn refresh_if_token(&self, path: &str, token: &str) -> Result<bool, LockError> {
        self.if_token(path, token, || {
            fs::File::options()
                .append(true)
                .open(path)?
                .set_modified(SystemTime::now())
        })
    }

    fn is_local(&self) -> bool {
        true
    }

    fn waker(&self, path: &str) -> Option<PathBuf> {
        Some(PathBuf::from(path))
    }
}
