//! Records the git commit the binary is built from, for `backupmanager --version`.
//!
//! `BACKUPMANAGER_GIT_COMMIT` is `git rev-parse --short HEAD` of this checkout, or `unknown` when
//! there is no git or no repository (a release tarball, a Debian source package). A tarball
//! unpacked inside some other repository does not borrow that repository's commit: the work
//! tree's top level must be this crate's directory.
//!
//! Cargo reruns this script when HEAD moves (a checkout, a commit on the current branch) and
//! not otherwise; works in linked worktrees too, where `.git` is a file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=build.rs");

    let ours = git(&dir, &["rev-parse", "--show-toplevel"])
        .and_then(|top| Path::new(&top).canonicalize().ok())
        .is_some_and(|top| dir.canonicalize().is_ok_and(|d| d == top));
    let commit = ours
        .then(|| git(&dir, &["rev-parse", "--short", "HEAD"]))
        .flatten();

    if ours {
        // HEAD itself, the branch it points at, and packed-refs (where a branch may live).
        let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
        if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
            watch.push(branch);
        }
        for name in watch {
            if let Some(p) = git(&dir, &["rev-parse", "--git-path", &name]) {
                let p = dir.join(p);
                // A path that does not exist would make cargo rerun this on every build.
                if p.exists() {
                    println!("cargo:rerun-if-changed={}", p.display());
                }
            }
        }
    }
    println!(
        "cargo:rustc-env=BACKUPMANAGER_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
