//! An archive series on another host: each step one POSIX `sh` script over the job's
//! [`Transport`], and streams (an archive into a remote file, a remote file out) as an ssh
//! process whose stdin or stdout is the data.
//!
//! Owns: the scripts and the strict parsing of their answers. Every name in a script is one of
//! ours ([`names::classify`]) and goes through [`shell_quote`]; the series directory arrives as
//! `$1` (`exec /bin/sh -c SCRIPT sh DEST`, whatever the login shell is).
//!
//! Must not: decide anything (the series does), rely on more than POSIX `sh` and utilities plus
//! `sha256sum` (coreutils, BusyBox), or read an answer leniently.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use super::error::ArchiveError;
use super::names::{self, File};
use crate::transport::{shell_quote, Transport};

const HEADER: &str = "BM-ARCHIVE-INVENTORY 1";
const END: &str = "BM-ARCHIVE-END";
const SHORT: Duration = Duration::from_secs(120);
/// sha256sum of a large archive on a slow disk.
const LONG: Duration = Duration::from_secs(6 * 3600);

/// Lists regular files named like ours with their sizes (`F size name`), and the contents of
/// each committed manifest right after its line (`M size`, the bytes, a newline).
const INVENTORY: &[&str] = &[
    "d=$1",
    "if [ ! -e \"$d\" ]; then printf 'BM-ARCHIVE-INVENTORY 1 absent\\nBM-ARCHIVE-END\\n'; exit 0; fi",
    "cd \"$d\" || exit 3",
    "printf 'BM-ARCHIVE-INVENTORY 1 present\\n'",
    "for n in [0-9]*_L*_* .incomplete-[0-9]*_L*_*; do \
     if [ -L \"$n\" ] || [ ! -f \"$n\" ]; then continue; fi; \
     s=$(wc -c < \"$n\") || exit 3; s=$(echo $s); \
     printf 'F %s %s\\n' \"$s\" \"$n\"; \
     case $n in .incomplete-*) ;; *.json) printf 'M %s\\n' \"$s\"; cat \"$n\" || exit 3; printf '\\n' ;; esac; \
     done",
    "printf 'BM-ARCHIVE-END\\n'",
];

/// One read of the remote directory.
#[derive(Debug, Default)]
pub struct Inventory {
    pub files: Vec<(String, File, u64)>,
    /// `(name, bytes)` of each committed manifest.
    pub manifests: Vec<(String, Vec<u8>)>,
}

#[derive(Clone)]
pub struct RemoteDir {
    pub transport: Arc<dyn Transport>,
    pub dest: String,
}

impl std::fmt::Debug for RemoteDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteDir({})", self.where_())
    }
}

/// `exec /bin/sh -c SCRIPT sh DEST`.
fn wrap(statements: &[String], dest: &str) -> String {
    let script = statements.join("; ");
    debug_assert!(!script.contains('\n'), "remote scripts are one line");
    format!(
        "exec /bin/sh -c {} sh {}",
        shell_quote(&script),
        shell_quote(dest)
    )
}

/// A name of ours, quoted for the script (after `cd "$1"`).
fn q(name: &str) -> String {
    debug_assert!(names::classify(name).is_some(), "{name} is not ours");
    shell_quote(name)
}

impl RemoteDir {
    pub fn where_(&self) -> String {
        format!("{}:{}", self.transport, self.dest)
    }

    fn run(
        &self,
        op: &str,
        statements: &[String],
        timeout: Duration,
    ) -> Result<Vec<u8>, ArchiveError> {
        let script = wrap(statements, &self.dest);
        let out =
            self.transport
                .run_script(&script, timeout)
                .map_err(|e| ArchiveError::Remote {
                    where_: self.where_(),
                    op: op.into(),
                    message: e.to_string(),
                })?;
        if !out.success() {
            let err = out.stderr_lossy();
            let lines: Vec<&str> = err.lines().collect();
            return Err(ArchiveError::Remote {
                where_: self.where_(),
                op: op.into(),
                message: format!(
                    "exit status {}\n{}",
                    out.status,
                    lines[lines.len().saturating_sub(20)..].join("\n")
                ),
            });
        }
        Ok(out.stdout)
    }

    fn malformed(&self, why: &str) -> ArchiveError {
        ArchiveError::Remote {
            where_: self.where_(),
            op: "list".into(),
            message: format!("malformed answer: {why}"),
        }
    }

    pub fn inventory(&self) -> Result<Inventory, ArchiveError> {
        let statements: Vec<String> = INVENTORY.iter().map(|s| s.to_string()).collect();
        let out = self.run("list", &statements, SHORT)?;
        let mut inv = Inventory::default();
        let mut rest: &[u8] = &out;
        let line = |rest: &mut &[u8]| -> Option<String> {
            let i = rest.iter().position(|&b| b == b'\n')?;
            let l = String::from_utf8_lossy(&rest[..i]).into_owned();
            *rest = &rest[i + 1..];
            Some(l)
        };
        match line(&mut rest).as_deref() {
            Some(h) if h == format!("{HEADER} absent") => {
                return match line(&mut rest).as_deref() {
                    Some(END) if rest.is_empty() => Ok(inv),
                    _ => Err(self.malformed("text after `absent`")),
                }
            }
            Some(h) if h == format!("{HEADER} present") => {}
            _ => return Err(self.malformed("no header")),
        }
        loop {
            let l = line(&mut rest).ok_or_else(|| self.malformed("no end line"))?;
            if l == END {
                if !rest.is_empty() {
                    return Err(self.malformed("text after the end line"));
                }
                return Ok(inv);
            }
            let Some(f) = l.strip_prefix("F ") else {
                return Err(self.malformed(&format!("unexpected line {l:?}")));
            };
            let (size, name) = f.split_once(' ').ok_or_else(|| self.malformed("F line"))?;
            let size: u64 = size.parse().map_err(|_| self.malformed("F size"))?;
            let Some(kind) = names::classify(name) else {
                // A name the shell glob matched that is not ours (strictly): skip it, but its
                // manifest framing cannot follow (only committed `.json` of ours are printed).
                continue;
            };
            if let File::Committed { suffix, .. } = &kind {
                if suffix == "json" {
                    let m = line(&mut rest).ok_or_else(|| self.malformed("no M line"))?;
                    let n: usize = m
                        .strip_prefix("M ")
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| self.malformed("M line"))?;
                    if rest.len() < n + 1 || rest[n] != b'\n' {
                        return Err(self.malformed("manifest framing"));
                    }
                    inv.manifests.push((name.to_string(), rest[..n].to_vec()));
                    rest = &rest[n + 1..];
                }
            }
            inv.files.push((name.to_string(), kind, size));
        }
    }

    pub fn mkdir(&self) -> Result<(), ArchiveError> {
        self.run("mkdir", &["mkdir -p -- \"$1\"".into()], SHORT)
            .map(|_| ())
    }

    /// Removes files of ours, in the order given; absent ones are fine.
    pub fn remove(&self, names: &[String]) -> Result<(), ArchiveError> {
        if names.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = names.iter().map(|n| q(n)).collect();
        self.run(
            "remove",
            &[
                "cd \"$1\" || exit 3".into(),
                format!("rm -f -- {}", list.join(" ")),
            ],
            SHORT,
        )
        .map(|_| ())
    }

    /// A file's bytes (a state file: small).
    pub fn fetch(&self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        self.run(
            "fetch",
            &["cd \"$1\" || exit 3".into(), format!("cat -- {}", q(name))],
            SHORT,
        )
    }

    /// `sha256sum` and size of a file there.
    pub fn sha256(&self, name: &str) -> Result<(String, u64), ArchiveError> {
        let out = self.run(
            "sha256",
            &[
                "cd \"$1\" || exit 3".into(),
                format!("sha256sum -- {n} && wc -c < {n}", n = q(name)),
            ],
            LONG,
        )?;
        let text = String::from_utf8_lossy(&out);
        let mut lines = text.lines();
        let sum = lines
            .next()
            .and_then(|l| l.split_whitespace().next())
            .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|s| s.to_ascii_lowercase());
        let size = lines.next().and_then(|l| l.trim().parse::<u64>().ok());
        match (sum, size) {
            (Some(s), Some(n)) => Ok((s, n)),
            _ => Err(self.malformed("sha256sum answer")),
        }
    }

    /// The argv that writes its stdin to `name` there (replacing a leftover).
    pub fn writer_argv(&self, name: &str) -> Result<Vec<OsString>, ArchiveError> {
        self.argv(&["cd \"$1\" || exit 3".into(), format!("cat > {}", q(name))])
    }

    /// The argv that prints `name` there on stdout.
    pub fn reader_argv(&self, name: &str) -> Result<Vec<OsString>, ArchiveError> {
        self.argv(&[
            "cd \"$1\" || exit 3".into(),
            format!("exec cat -- {}", q(name)),
        ])
    }

    fn argv(&self, statements: &[String]) -> Result<Vec<OsString>, ArchiveError> {
        self.transport
            .script_argv(&wrap(statements, &self.dest))
            .ok_or_else(|| ArchiveError::Refused(format!("{}: cannot stream data", self.where_())))
    }

    /// Writes the manifest, flushes, and renames `(from, to)` pairs in order (the manifest
    /// last), refusing to replace anything.
    pub fn commit(
        &self,
        manifest_tmp: &str,
        manifest: &str,
        renames: &[(String, String)],
    ) -> Result<(), ArchiveError> {
        let mut s = vec![
            "cd \"$1\" || exit 3".to_string(),
            format!(
                "printf '%s\\n' {} > {} || exit 3",
                shell_quote(manifest.trim_end_matches('\n')),
                q(manifest_tmp)
            ),
            "sync".into(),
        ];
        for (from, to) in renames {
            s.push(format!(
                "if [ -e {t} ] || [ -L {t} ]; then echo \"backupmanager: {t} exists\" >&2; exit 4; fi",
                t = q(to)
            ));
            s.push(format!("mv -- {} {} || exit 3", q(from), q(to)));
        }
        s.push("sync".into());
        self.run("commit", &s, SHORT).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_one_line_and_quote_names_and_the_dest() {
        let s = wrap(
            &[
                "cd \"$1\" || exit 3".into(),
                format!(
                    "cat > {}",
                    q(".incomplete-2026-11-28T093902Z_L00_2026-11-28T093902Z.tar.zst")
                ),
            ],
            "/srv/it's here",
        );
        assert!(!s.contains('\n'));
        assert!(s.starts_with("exec /bin/sh -c '"));
        assert!(s.ends_with(&shell_quote("/srv/it's here")));
    }
}
