//! The project's own test harness, shared by every test binary (`mod support;`):
//! - [`scratch`]: scratch directories (the only way tests make one), removed on drop;
//! - [`builder`]: typed config builders writing properly quoted YAML (no `format!` YAML);
//! - [`procfs`]: the one `/proc/PID/stat` parser (alive, children, process groups, names);
//! - [`etcd`]: a real etcd cluster on 127.0.0.1; [`etcd_netns`]: one split over two namespaces;
//! - [`sshd`]: a private sshd on 127.0.0.1; [`netns`]: fake hosts in network namespaces;
//! - [`curl`]: HTTP requests with curl (TCP or unix socket); [`browser`]: a headless Chromium driven over the DevTools pipe;
//! - [`gate`]: an sshd whose key is restricted by `backupmanager gate`, with its syslog;
//! - [`bm`]: a running backupmanager owned by the test; [`master`]: closes the ssh
//!   ControlMaster a run leaves; [`files`]: big incompressible files, backdated mtimes, a directory's names;
//! - here: `wait_until`, the tool check, and hostile file trees with a tree comparison.
//!
//! Must not: kill anything by name, touch the system's sshd or root namespace, or silently skip
//! when tools are missing (it panics with instructions).
#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

pub mod bm;
pub mod browser;
pub mod builder;
pub mod curl;
pub mod etcd;
pub mod etcd_netns;
pub mod files;
pub mod gate;
pub mod http;
pub mod master;
pub mod netns;
pub mod procfs;
pub mod promtool;
pub mod scratch;
pub mod sshd;

// Each binary uses a subset of these re-exports (`use support::*`).
#[allow(unused_imports)]
pub use bm::{bm_json, bm_ok, snapshots_json, Bm, BIN, BLOCKED, FAILED, LONG, OK};
#[allow(unused_imports)]
pub use builder::{Blocker, ConfigBuilder, JobBuilder, LockFile, Remote, SyncEntry};
#[allow(unused_imports)]
pub use files::{big_file, names_in, set_mtime_ago};
#[allow(unused_imports)]
pub use http::HttpRecorder;
#[allow(unused_imports)]
pub use master::Master;
#[allow(unused_imports)]
pub use procfs::{children_of, descendants, group_members, pid_alive};
#[allow(unused_imports)]
pub use promtool::promtool_check;
#[allow(unused_imports)]
pub use scratch::Scratch;
#[allow(unused_imports)]
pub use sshd::{stop_sshd_child, Sshd, SSHD};

/// Poll `cond` every ~20 ms until it is true; panic naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

/// Panic (never skip) unless we are root and sshd, ssh, ssh-keygen, rsync and unshare exist.
pub fn require_root_tools() {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions (nix exposes it only with its "user" feature).
    if unsafe { nix::libc::geteuid() } != 0 {
        missing.push("root privileges (sshd must run as root to log in as root)".to_string());
    }
    if !Path::new(SSHD).is_file() {
        missing.push(SSHD.to_string());
    }
    for p in ["ssh", "ssh-keygen", "rsync", "unshare"] {
        if !on_path(p) {
            missing.push(p.to_string());
        }
    }
    if !missing.is_empty() {
        panic!(
            "integration tests need {}. Run them as the README says: \
             `sudo apt-get install -y rsync openssh-server openssh-client util-linux && sudo cargo test`",
            missing.join(", ")
        );
    }
}

/// File names that break naive quoting: spaces, unicode, leading '-', newline, quotes, globs.
pub const HOSTILE_NAMES: &[&str] = &[
    "with space",
    "ünïcødé ✓",
    "-leading-dash",
    "new\nline",
    "quote'single",
    "dq\"double",
    "star*?[x]",
    "$(touch pwned)",
    "back`tick`;&&",
];

/// Build a tree of files (and a nested dir) named from [`HOSTILE_NAMES`] under `root`.
pub fn make_hostile_tree(root: &Path) {
    fs::create_dir_all(root.join("sub dir")).unwrap();
    for (i, n) in HOSTILE_NAMES.iter().enumerate() {
        fs::write(root.join(n), format!("content {i} of {n:?}\n")).unwrap();
        fs::write(root.join("sub dir").join(n), vec![i as u8; 1000 + i]).unwrap();
    }
    // Non-UTF-8 name.
    use std::os::unix::ffi::OsStrExt;
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"latin1-\xe9t\xe9")),
        b"\xff\xfe binary",
    )
    .unwrap();
}

/// Assert `a` and `b` hold the same names, types and bytes (recursively).
pub fn assert_same_tree(a: &Path, b: &Path) {
    let list = |p: &Path| {
        let mut v: Vec<_> = fs::read_dir(p)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", p.display()))
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let (la, lb) = (list(a), list(b));
    assert_eq!(la, lb, "entries differ: {} vs {}", a.display(), b.display());
    for n in la {
        let (pa, pb) = (a.join(&n), b.join(&n));
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "type of {}", pa.display());
        if ma.is_dir() {
            assert_same_tree(&pa, &pb);
        } else {
            assert_eq!(
                fs::read(&pa).unwrap(),
                fs::read(&pb).unwrap(),
                "bytes of {}",
                pa.display()
            );
        }
    }
}
