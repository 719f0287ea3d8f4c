//! Restore: copy a complete snapshot, or parts of it, back into a local directory.
//!
//! Owns: checking the request (the snapshot is complete, each `--path` stays inside it, the
//! target is empty unless overwriting) and building the rsync commands: `-aH --numeric-ids`
//! (hard links, permissions, times, symlinks as symlinks, numeric owners), the snapshot's
//! *contents* landing directly in the target, each `--path` under its own relative path
//! (`-R` with a `/./` anchor).
//!
//! Must not: delete anything in the target (no `--delete` of any kind, ever), copy a
//! manifest (manifests live beside the snapshot directories, never inside), follow a
//! symlink inside the snapshot to reach a `--path` (it could lead out of the snapshot),
//! write into a local series itself, or create the target when `dry_run` is set.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::backend::Op;
use super::error::SnapshotError;
use super::manifest::Manifest;
use super::series::{Location, Series};
use crate::rsync::{self, RsyncCommand, RsyncResult, Stream};

/// The options of every restore: archive, hard links, numeric owners.
pub const RESTORE_OPTS: &[&str] = &["-aH", "--numeric-ids"];

/// What to restore, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    /// A snapshot id, or `latest` (the newest complete snapshot).
    pub snapshot: String,
    /// Paths inside the snapshot to restore (empty = all of it).
    pub paths: Vec<String>,
    /// Local directory the contents land in (created by rsync if missing).
    pub to: PathBuf,
    pub dry_run: bool,
    /// Allow a non-empty target: same-named files are replaced, nothing else is touched.
    pub overwrite: bool,
}

/// The checked restore: which snapshot, and the rsync runs that copy it.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub manifest: Manifest,
    /// One command for the whole snapshot, or one per path (hard links between different
    /// `--path`s are therefore not kept; within one they are).
    pub commands: Vec<RsyncCommand>,
}

/// A `--path` made relative and clean: no `..`, no empty or `.` components.
pub fn clean_subpath(p: &str) -> Result<String, SnapshotError> {
    let bad = |reason: &str| SnapshotError::InvalidPath {
        path: p.to_string(),
        reason: reason.to_string(),
    };
    if p.contains('\0') {
        return Err(bad("contains NUL"));
    }
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(bad("`..` would leave the snapshot")),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(bad("names the whole snapshot; omit --path for that"));
    }
    Ok(parts.join("/"))
}

/// Check the target: absolute (a relative one is made so: rsync would read `a:b` as a host),
/// UTF-8, a directory if it exists, empty unless `overwrite`.
fn check_target(to: &Path, overwrite: bool) -> Result<String, SnapshotError> {
    let abs = std::path::absolute(to).map_err(|e| SnapshotError::BadTarget {
        to: to.to_path_buf(),
        reason: e.to_string(),
    })?;
    let s = abs
        .to_str()
        .ok_or_else(|| SnapshotError::BadTarget {
            to: to.to_path_buf(),
            reason: "path is not UTF-8".into(),
        })?
        .trim_end_matches('/')
        .to_string();
    match std::fs::read_dir(&abs) {
        Ok(mut rd) => {
            if !overwrite && rd.next().is_some() {
                return Err(SnapshotError::TargetNotEmpty {
                    to: to.to_path_buf(),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(SnapshotError::BadTarget {
                to: to.to_path_buf(),
                reason: e.to_string(),
            })
        }
    }
    Ok(s)
}

/// Check `req` against `series` and build the rsync commands. Changes nothing anywhere.
pub fn restore_plan(series: &Series, req: &RestoreRequest) -> Result<RestorePlan, SnapshotError> {
    let paths = req
        .paths
        .iter()
        .map(|p| clean_subpath(p))
        .collect::<Result<Vec<_>, _>>()?;
    let to = check_target(&req.to, req.overwrite)?;
    if let Location::Local = series.location() {
        // Restoring into the series would change a snapshot (and, through hard links, others).
        let inside = |p: &Path| p.starts_with(series.dest());
        let canonical = std::fs::canonicalize(&to).ok();
        let canonical_dest = std::fs::canonicalize(series.dest()).ok();
        let in_canonical =
            matches!((&canonical, &canonical_dest), (Some(t), Some(d)) if t.starts_with(d));
        if inside(Path::new(&to)) || in_canonical {
            return Err(SnapshotError::BadTarget {
                to: req.to.clone(),
                reason: format!("it is inside the snapshot series {}", series.dest()),
            });
        }
    }
    let manifest = series.resolve(&req.snapshot)?;
    let id = manifest.id.to_string();

    // Each path must exist, and no directory on the way to it may be a symlink.
    let mut checks = vec![Op::AssertRealDir(id.clone())];
    for p in &paths {
        let comps: Vec<&str> = p.split('/').collect();
        for i in 1..comps.len() {
            checks.push(Op::AssertNotSymlink(format!(
                "{id}/{}",
                comps[..i].join("/")
            )));
        }
        checks.push(Op::AssertExists(format!("{id}/{p}")));
    }
    series
        .apply("checking restore paths", &checks)
        .map_err(|e| match e {
            // A check failed (locally an io error, remotely our script's `fail`): the path
            // is missing or leads through a symlink.
            SnapshotError::Io { op, source, .. } => SnapshotError::InvalidPath {
                path: op.trim_start_matches("checking ").to_string(),
                reason: source.to_string(),
            },
            SnapshotError::Remote { stderr_tail, .. } => SnapshotError::InvalidPath {
                path: req.paths.join(", "),
                reason: stderr_tail.trim().to_string(),
            },
            other => other,
        })?;

    let snap = series.snapshot_path(&manifest.id);
    let make = |source: String, relative: bool| {
        let mut c = RsyncCommand::new(series.rsync_operand(&source), format!("{to}/"));
        c.opts = RESTORE_OPTS.iter().map(|s| s.to_string()).collect();
        if relative {
            c.opts.push("-R".into());
        }
        c.rsh = series.rsync_rsh();
        c.dry_run = req.dry_run;
        c
    };
    let commands = if paths.is_empty() {
        vec![make(format!("{snap}/"), false)]
    } else {
        paths
            .iter()
            .map(|p| make(format!("{snap}/./{p}"), true))
            .collect()
    };
    Ok(RestorePlan { manifest, commands })
}

/// Plan and run a restore; every rsync must exit 0. `on_line` sees rsync's output.
pub fn restore(
    series: &Series,
    req: &RestoreRequest,
    mut on_line: impl FnMut(Stream, &str),
    cancel: &AtomicBool,
) -> Result<(RestorePlan, Vec<RsyncResult>), SnapshotError> {
    let plan = restore_plan(series, req)?;
    let id = plan.manifest.id.to_string();
    let mut results = Vec::new();
    for cmd in &plan.commands {
        let r = rsync::run(cmd, &mut on_line, cancel).map_err(|source| SnapshotError::Rsync {
            id: id.clone(),
            source,
        })?;
        if r.exit_code != 0 {
            return Err(SnapshotError::RestoreFailed {
                id,
                message: r.message(),
            });
        }
        results.push(r);
    }
    Ok((plan, results))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subpaths() {
        assert_eq!(clean_subpath("a/b").unwrap(), "a/b");
        assert_eq!(clean_subpath("/a//./b/").unwrap(), "a/b");
        assert_eq!(clean_subpath("with space/ü ✓").unwrap(), "with space/ü ✓");
        assert_eq!(clean_subpath("-x").unwrap(), "-x");
        assert_eq!(clean_subpath("a..b/..c").unwrap(), "a..b/..c");
        for bad in ["..", "a/../b", "a/..", "../etc", "", "/", ".", "./", "a\0b"] {
            assert!(clean_subpath(bad).is_err(), "{bad:?}");
        }
    }
}
