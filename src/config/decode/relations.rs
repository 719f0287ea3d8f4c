//! Checks between a job's entries that no single entry can make: a job that would wait on
//! itself (the same lock twice, a blocker that is one of its own locks however it is spelled).
//!
//! Paths are compared *lexically normalized* ([`lexical`]): `//` and `/./` collapse and a
//! trailing `/` goes, as the kernel does when it resolves them. `..` is kept as written: what it
//! means depends on symlinks this module cannot see, so two spellings with `..` may name one file
//! and not be caught, but nothing is ever reported that is not the same file.
//!
//! Must not: touch the filesystem or the network.

use super::job::Entries;
use super::Decoder;

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

impl Decoder {
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
    use super::lexical;

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
