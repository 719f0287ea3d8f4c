//! Checks between a job's entries that no single entry can make: a job that would wait on
//! itself (the same lock twice, a blocker that is one of its own locks however it is spelled),
//! and a lock file its own `--delete` sync would remove; and local paths in a private `/tmp`.
//!
//! Paths are compared *lexically normalized* ([`lexical`]): `//` and `/./` collapse and a
//! trailing `/` goes, as the kernel does when it resolves them. `..` is kept as written: what it
//! means depends on symlinks this module cannot see, so two spellings with `..` may name one file
//! and not be caught, but nothing is ever reported that is not the same file.
//!
//! Must not: touch the filesystem or the network.

use super::job::Entries;
use super::Decoder;
use crate::config::{words, Location, Sync};

/// `path` with empty and `.` components removed and no trailing `/` (`/` stays `/`).
pub(in crate::config) fn lexical(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let joined = parts.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// The directory whose extraneous files a `--delete` sync removes, normalized: `dest` when the
/// source ends in `/` (its contents are copied), else `dest/NAME` (the directory itself is
/// copied, and rsync deletes only inside the directories it transfers). With `-R` the source's
/// path is recreated under `dest`. `None` for a relative (remote, home-based) `dest`.
fn deletion_root(sync: &Sync) -> Option<String> {
    if !sync.dest.starts_with('/') {
        return None;
    }
    let dest = lexical(&sync.dest);
    let source = lexical(&sync.source);
    let sub = if words::is_relative(&sync.args) {
        // `/./` marks where the recreated path starts.
        match sync.source.rsplit_once("/./") {
            Some((_, rest)) => lexical(rest),
            None => source.trim_start_matches('/').to_string(),
        }
    } else if sync.source.ends_with('/') {
        String::new()
    } else {
        source.rsplit('/').next().unwrap_or("").to_string()
    };
    Some(if sub.is_empty() {
        dest
    } else {
        lexical(&format!("{dest}/{sub}"))
    })
}

/// `path` is `root` or lies below it (both normalized).
fn at_or_under(path: &str, root: &str) -> bool {
    path == root || root == "/" || path.starts_with(&format!("{root}/"))
}

/// Directories a service manager may give a process its own copy of (systemd's `PrivateTmp=`).
const PRIVATE_TMP: &[&str] = &["/tmp", "/var/tmp"];

/// The private-tmp directory `path` lies in, if any.
pub(in crate::config) fn in_private_tmp(path: &str) -> Option<&'static str> {
    let p = lexical(path);
    PRIVATE_TMP.iter().copied().find(|t| at_or_under(&p, t))
}

impl Decoder {
    /// A local path under `/tmp` or `/var/tmp` that processes must share (a lock, a blocker,
    /// the runtime or state dir) is a different file for a service with `PrivateTmp=` than for
    /// ssh sessions, `run-job` and `status`. The packaged unit does not set it; any other unit
    /// or sandbox may. A warning, not an error: tests and demos rightly live in /tmp.
    pub(in crate::config) fn warn_private_tmp(
        &mut self,
        span: crate::config::Span,
        path: &str,
        what: &str,
        value: &str,
    ) {
        let Some(tmp) = in_private_tmp(value) else {
            return;
        };
        self.warn(
            span,
            path,
            format!(
                "{what} `{value}` is under {tmp}: a service with systemd's PrivateTmp= sees its own {tmp}, so the daemon and ssh sessions, `run-job` and `status` would not share it"
            ),
        )
        .help = Some(
            "the packaged unit does not set PrivateTmp= for this reason; to be safe under any unit, use /run/backupmanager/ or /var/lib/backupmanager/"
                .into(),
        );
    }

    /// Local lock files and blockers under a private-tmp directory (see [`Self::warn_private_tmp`]).
    /// Remote ones are not: they are reached through sshd, which has no private `/tmp`.
    pub(super) fn check_private_tmp(&mut self, path: &str, e: &Entries) {
        for (j, l) in e.lock_files.iter().enumerate() {
            if l.location == Location::Local {
                let p = format!("{path}.lock_files[{j}].path");
                self.warn_private_tmp(l.span.clone(), &p, "lock file", &l.path);
            }
        }
        for (i, b) in e.blocks_on.iter().enumerate() {
            if b.location == Location::Local {
                let p = format!("{path}.blocks_on[{i}].lock_file_path");
                self.warn_private_tmp(b.span.clone(), &p, "blocker", &b.path);
            }
        }
    }

    /// A lock file inside a directory the job's own `--delete` sync mirrors is deleted by that
    /// rsync right after it was taken: the other instance then sees no lock. `at` is where the
    /// syncs' `dest` lives (the job's host, or local).
    pub(super) fn check_locks_outside_deleted_dests(
        &mut self,
        path: &str,
        e: &Entries,
        at: &Location,
    ) {
        for (j, l) in e.lock_files.iter().enumerate() {
            if !l.location.same_place(at) {
                continue;
            }
            let lock = lexical(&l.path);
            for (i, s) in e.syncs.iter().enumerate() {
                if !s.deletes() {
                    continue;
                }
                let Some(root) = deletion_root(s) else {
                    continue;
                };
                if at_or_under(&lock, &root) {
                    self.err(
                        l.span.clone(),
                        &format!("{path}.lock_files[{j}]"),
                        format!(
                            "lock file `{}` is inside `{root}`, which syncs[{i}] (dest `{}`) mirrors with --delete: its rsync would delete the lock right after the job takes it",
                            l.path, s.dest
                        ),
                    )
                    .help = Some(
                        "keep lock files outside the directories a sync deletes in, e.g. under /run/backupmanager/ or /var/lib/backupmanager/locks/"
                            .into(),
                    );
                }
            }
        }
    }

    /// A job holding the same lock twice, or blocking on a lock it creates itself, waits forever
    /// (its second create, or its blocker check, meets its own first lock).
    pub(super) fn check_self_waiting(&mut self, path: &str, e: &Entries) {
        for (j, l) in e.lock_files.iter().enumerate() {
            let here = lexical(&l.path);
            if let Some((i, first)) = e.lock_files[..j]
                .iter()
                .enumerate()
                .find(|(_, f)| lexical(&f.path) == here && f.location.same_place(&l.location))
            {
                self.err(
                    l.span.clone(),
                    &format!("{path}.lock_files[{j}]"),
                    format!(
                        "lock_files[{j}] ({} `{}`) is the same file as lock_files[{i}] ({} `{}`); the job would wait on itself forever",
                        l.location, l.path, first.location, first.path
                    ),
                )
                .help = Some("list each lock file once".into());
            }
        }
        for (i, b) in e.blocks_on.iter().enumerate() {
            let here = lexical(&b.path);
            if let Some((j, l)) = e
                .lock_files
                .iter()
                .enumerate()
                .find(|(_, l)| lexical(&l.path) == here && l.location.same_place(&b.location))
            {
                let shown = if l.path == b.path {
                    format!("{} {}", l.location, l.path)
                } else {
                    format!("{} {}, written here as `{}`", l.location, l.path, b.path)
                };
                self.err(
                    b.span.clone(),
                    &format!("{path}.blocks_on[{i}]"),
                    format!(
                        "the job waits on a lock file it creates itself (lock_files[{j}]: {shown}); it would wait forever"
                    ),
                )
                .help = Some("block on the other instance's lock file, not this job's own".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{deletion_root, lexical};
    use crate::config::{Span, Sync};

    #[test]
    fn deletion_root_follows_rsyncs_trailing_slash_and_relative_rules() {
        let root = |source: &str, dest: &str, args: &[&str]| {
            deletion_root(&Sync {
                source: source.into(),
                dest: dest.into(),
                opts: vec![],
                args: args.iter().map(|s| s.to_string()).collect(),
                allow_empty_source: false,
                allow_unmounted: false,
                span: Span::new(std::path::Path::new("t"), 1, 1, 1),
            })
        };
        assert_eq!(root("/home/", "/b//", &[]).as_deref(), Some("/b"));
        assert_eq!(root("/home/u", "/b/", &[]).as_deref(), Some("/b/u"));
        assert_eq!(
            root("/home/u/", "/b", &["-aR"]).as_deref(),
            Some("/b/home/u")
        );
        assert_eq!(
            root("/home/./u", "/b", &["--relative"]).as_deref(),
            Some("/b/u")
        );
        assert_eq!(root("/home/", "rel/dir", &[]), None);
    }

    #[test]
    fn lexical_collapses_what_the_kernel_collapses() {
        for (a, b) in [
            ("/a/b", "/a/b"),
            ("/a//b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/b/", "/a/b"),
            ("//a/b//.//", "/a/b"),
            ("/", "/"),
            ("/a/../b", "/a/../b"),
            ("rel//x/", "rel/x"),
        ] {
            assert_eq!(lexical(a), b, "{a}");
        }
    }
}
