//! Scratch directories: the one way tests make a temporary directory.
//!
//! A [`Scratch`] is a fresh directory made by the `tempfile` crate (random name, mode 0700),
//! removed with everything in it when the value is dropped. Two bases:
//! - [`Scratch::new`]: the system temp dir (`$TMPDIR`, else `/tmp`), for plain files;
//! - [`Scratch::short`]: always `/tmp`, for anything that puts a unix socket inside (sshd, ssh
//!   ControlMaster sockets, a notify socket): a socket path must fit in 108 bytes, and `$TMPDIR`
//!   may be long.
//!
//! Keep on failure: with `BM_KEEP_TMP` set, a scratch directory dropped while its test panics is
//! kept and its path printed, so logs and configs of a failing test can be read afterwards.
use std::path::{Path, PathBuf};

pub struct Scratch {
    dir: Option<tempfile::TempDir>,
}

impl Scratch {
    /// A fresh directory `<temp dir>/<prefix><6 random chars>`.
    pub fn new(prefix: &str) -> Scratch {
        Scratch::in_dir(prefix, &std::env::temp_dir())
    }

    /// A fresh directory `/tmp/<prefix><6 random chars>`: short, for unix sockets.
    pub fn short(prefix: &str) -> Scratch {
        Scratch::in_dir(prefix, Path::new("/tmp"))
    }

    fn in_dir(prefix: &str, base: &Path) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(base)
            .unwrap_or_else(|e| panic!("create a scratch directory in {}: {e}", base.display()));
        Scratch { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("scratch directory").path()
    }

    /// `rel` inside the directory.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    /// `rel` inside the directory, as a string (for configs and arguments).
    pub fn s(&self, rel: &str) -> String {
        self.p(rel)
            .to_str()
            .expect("scratch paths are UTF-8")
            .to_string()
    }

    /// Keeps the directory (it is not removed on drop); returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.dir.take().expect("scratch directory").keep()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else {
            return;
        };
        if std::thread::panicking() && std::env::var_os("BM_KEEP_TMP").is_some() {
            eprintln!(
                "keeping scratch directory {} (BM_KEEP_TMP)",
                dir.keep().display()
            );
        }
        // Otherwise `dir` is dropped here: removed with its contents.
    }
}
