//! The GNU tar probe: `tar --version` must name GNU tar (archive mode needs its
//! `--listed-incremental`), and its first line goes into every manifest.
//!
//! Owns: running the probe, and a cache of its answer across processes, so a `run-job` does
//! not start an extra `tar` child every time (measured: 3–23 ms on a loaded machine, most of
//! what separated a level 1 run from the same pipeline typed by hand).
//!
//! The cache is one small JSON file in the runtime directory (`<pid_file_dir>/tar-probe.json`,
//! on tmpfs in a normal install, so a reboot forgets it). It is trusted only for the very
//! binary it describes: the `tar` that `PATH` resolves to now (as the pipeline's exec will),
//! its symlinks resolved, with the same device, inode, size, mtime and ctime (nanoseconds). An
//! upgrade, a reinstall, a `chmod`, a different `PATH` or another file put in its place changes
//! the key, and a missing, unreadable, malformed or mismatched cache simply probes again. The
//! cache is rewritten atomically (a unique temporary name, then rename); failing to write it
//! costs only the next run's probe. A cached answer is only ever a GNU tar line: a refusal is
//! never cached.
//!
//! Must not: trust a cache entry for any other binary, or turn a cache problem into an error.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::TAR;

/// The cache file's name inside the runtime directory.
pub const CACHE_FILE: &str = "tar-probe.json";

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("could not run `tar --version`: {0}; install GNU tar")]
    Spawn(#[source] std::io::Error),
    #[error("`tar` is not GNU tar ({0}); archive mode needs GNU tar's --listed-incremental")]
    NotGnu(String),
}

/// `tar --version`'s first line, e.g. `tar (GNU tar) 1.34`, refusing anything but GNU tar.
/// Always runs tar.
pub fn version() -> Result<String, ProbeError> {
    let out = Command::new(TAR)
        .arg("--version")
        .env("LC_ALL", "C")
        .output()
        .map_err(ProbeError::Spawn)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("").trim().to_string();
    parse_version(&first)
}

/// Like [`version`], answered from the cache in `runtime_dir` when it describes the `tar` that
/// would run now; otherwise probes and (on success) rewrites the cache.
pub fn version_cached(runtime_dir: &Path) -> Result<String, ProbeError> {
    let path = runtime_dir.join(CACHE_FILE);
    let key = resolve(TAR).and_then(|p| Key::of(&p));
    if let Some(key) = &key {
        if let Some(v) = read(&path, key) {
            return Ok(v);
        }
    }
    let v = version()?;
    if let Some(key) = key {
        // The binary may have changed while it was probed: then the key no longer fits it,
        // and the next run probes again.
        if Key::of(Path::new(&key.path)).as_ref() == Some(&key) {
            let _ = write(
                &path,
                &Entry {
                    key,
                    version: v.clone(),
                },
            );
        }
    }
    Ok(v)
}

pub(super) fn parse_version(first: &str) -> Result<String, ProbeError> {
    if first.contains("GNU tar") {
        Ok(first.to_string())
    } else {
        Err(ProbeError::NotGnu(first.to_string()))
    }
}

/// What identifies one binary on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Key {
    /// The resolved path (no symlinks).
    path: String,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Key {
    fn of(path: &Path) -> Option<Key> {
        let real = fs::canonicalize(path).ok()?;
        let m = fs::metadata(&real).ok()?;
        if !m.is_file() {
            return None;
        }
        Some(Key {
            path: real.to_str()?.to_string(),
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    key: Key,
    version: String,
}

/// The file `execvp` would run for `program`: the first executable regular file named so in
/// `PATH` (glibc's default path when `PATH` is unset; an empty entry is the current
/// directory). A name with a `/` is itself.
fn resolve(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    resolve_in(program, &path)
}

fn resolve_in(program: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(path).find_map(|dir| {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(program);
        let m = fs::metadata(&candidate).ok()?;
        (m.is_file() && m.mode() & 0o111 != 0).then_some(candidate)
    })
}

fn read(path: &Path, key: &Key) -> Option<String> {
    let f = fs::File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let e: Entry = serde_json::from_reader(std::io::BufReader::new(f)).ok()?;
    (e.key == *key && parse_version(&e.version).is_ok()).then_some(e.version)
}

fn write(path: &Path, e: &Entry) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", crate::sys::random::hex(6)));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec(e).map_err(std::io::Error::other)?)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_gnu_tar_is_accepted() {
        assert!(parse_version("tar (GNU tar) 1.34").is_ok());
        assert!(parse_version("bsdtar 3.6.2 - libarchive 3.6.2").is_err());
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bm-probe-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_cache_entry_fits_only_the_binary_it_was_made_for() {
        let d = scratch("key");
        let bin = d.join("tar");
        fs::write(&bin, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let key = Key::of(&bin).unwrap();
        let cache = d.join(CACHE_FILE);
        let e = Entry {
            key: key.clone(),
            version: "tar (GNU tar) 1.34".into(),
        };
        write(&cache, &e).unwrap();
        assert_eq!(read(&cache, &key).as_deref(), Some("tar (GNU tar) 1.34"));
        // The same path, changed in place (size, mtime and ctime move): not trusted.
        fs::write(&bin, "#!/bin/sh\necho other\n").unwrap();
        let changed = Key::of(&bin).unwrap();
        assert_ne!(changed, key);
        assert_eq!(read(&cache, &changed), None);
        // A chmod alone moves ctime.
        let before = Key::of(&bin).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o700)).unwrap();
        assert_ne!(Key::of(&bin).unwrap(), before);
        // Another file put in its place (a new inode), reached through a symlink: its key
        // names the resolved file.
        let other = d.join("tar2");
        fs::copy(&bin, &other).unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&other, &link).unwrap();
        let k2 = Key::of(&link).unwrap();
        assert!(k2.path.ends_with("/tar2"), "{}", k2.path);
        assert_eq!(read(&cache, &k2), None);
        // Garbage, or an entry whose version is not GNU tar, is ignored.
        fs::write(&cache, "{not json").unwrap();
        assert_eq!(read(&cache, &key), None);
        write(
            &cache,
            &Entry {
                key: key.clone(),
                version: "bsdtar 3.6.2".into(),
            },
        )
        .unwrap();
        assert_eq!(read(&cache, &key), None);
        // No temporary files are left behind.
        let left: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_real_tar_is_probed_once_then_answered_from_the_cache() {
        let d = scratch("real");
        let v = version_cached(&d).unwrap();
        assert!(v.contains("GNU tar"), "{v}");
        let cache = d.join(CACHE_FILE);
        let text = fs::read_to_string(&cache).unwrap();
        assert!(text.contains("GNU tar"), "{text}");
        // Answered from the cache: make its version recognisably different but still GNU.
        let mut e: Entry = serde_json::from_str(&text).unwrap();
        e.version = "tar (GNU tar) 0.0-cached".into();
        write(&cache, &e).unwrap();
        assert_eq!(version_cached(&d).unwrap(), "tar (GNU tar) 0.0-cached");
        // A cache for another binary is not: the real probe answers and rewrites it.
        e.key.ino ^= 1;
        write(&cache, &e).unwrap();
        assert_eq!(version_cached(&d).unwrap(), v);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn path_resolution_finds_the_first_executable() {
        let d = scratch("path");
        let (a, b) = (d.join("a"), d.join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        fs::write(a.join("prog"), "").unwrap(); // not executable: skipped
        fs::write(b.join("prog"), "").unwrap();
        fs::set_permissions(b.join("prog"), fs::Permissions::from_mode(0o755)).unwrap();
        let joined = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(resolve_in("prog", &joined), Some(b.join("prog")));
        assert_eq!(resolve_in("other", &joined), None);
        assert_eq!(resolve_in("/x/y", &joined), Some(PathBuf::from("/x/y")));
        fs::remove_dir_all(&d).unwrap();
    }
}
