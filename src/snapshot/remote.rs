//! The series on another host: [`Inventory`] and [`Op`] as POSIX `sh` scripts over ssh.
//!
//! Owns: the scripts (one ssh round trip per [`inventory`] or [`apply`]) and the strict
//! parsing of their answers.
//!
//! Must not: put any text into a script except through [`shell_quote`], rely on anything
//! beyond POSIX `sh` and utilities (no `stat`, `readlink`, `mv -T` as a requirement, GNU
//! flags), or read an answer leniently: the answer must start with our header and end with
//! our end line, with nothing else around it, or it is [`SnapshotError::Malformed`].
//!
//! # Portability
//! The script runs under `/bin/sh` (`exec /bin/sh -c SCRIPT sh DEST`), whatever the login
//! shell is, and is one line (csh rejects newlines inside quotes). Symlinks are read with
//! `ls -ld`, whose `name -> target` form POSIX specifies.
//!
//! # Switching `latest`
//! `rename(2)` replaces a symlink atomically, but POSIX `mv new latest` moves `new` *into*
//! the directory `latest` points to. The script makes the new link `.latest-new-<id>` and
//! tries, in order: `mv -T` (GNU coreutils, BusyBox), `mv -h` (FreeBSD, macOS: do not follow
//! a target symlink), both of which are a plain atomic `rename(2)`; an `mv` that knows
//! neither rejects the option and moves nothing. Only then does it fall back to removing
//! `latest` and renaming the new link to it (OpenBSD, NetBSD, old BusyBox): `latest` is then
//! briefly absent, but never points at anything but a complete snapshot. Afterwards the script checks with `ls -ld` that `latest`
//! is a symlink to the new id and that the temporary link is gone, and fails otherwise.

use std::time::Duration;

use super::backend::{Inventory, Kind, LatestState, Op};
use super::error::SnapshotError;
use super::names::{self, Name, SnapshotId};
use crate::transport::{shell_quote, Transport};

const INV_HEADER: &str = "BM-SNAPSHOT-INVENTORY 1";
const END: &str = "BM-SNAPSHOT-END";
const OK: &str = "BM-SNAPSHOT-OK";

/// `isid NAME`: is NAME shaped like a snapshot id (the strict check is in Rust).
const ISID: &str = "isid() { case $1 in \
    [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) return 0 ;; \
    [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-[1-9]*) \
    case ${1#*Z-} in *[!0-9]*) return 1 ;; esac; return 0 ;; esac; return 1; }";

const FAIL: &str = "fail() { printf 'backupmanager: %s\\n' \"$1\" >&2; exit 3; }";

/// Lists our names with their kinds (`E k name`), each complete snapshot's manifest
/// (`M id length` + the bytes + newline) and `latest` (`L link TARGET|other|absent`).
/// A manifest that vanished before `wc` (a concurrent removal) is skipped like a local one;
/// one that vanishes between `wc` and `cat` breaks the framing: an error, never a guess.
const INVENTORY_SCRIPT: &[&str] = &[
    "d=$1",
    "if [ ! -e \"$d\" ] && [ ! -L \"$d\" ]; then printf 'BM-SNAPSHOT-INVENTORY 1 absent\\nBM-SNAPSHOT-END\\n'; exit 0; fi",
    "cd \"$d\" || exit 3",
    ISID,
    "printf 'BM-SNAPSHOT-INVENTORY 1 present\\n'",
    "for n in [0-9]* .incomplete-* .deleting-* .latest-new-*; do \
     if [ ! -e \"$n\" ] && [ ! -L \"$n\" ]; then continue; fi; \
     b=${n#.incomplete-}; b=${b#.deleting-}; b=${b#.latest-new-}; b=${b%.json}; \
     isid \"$b\" || continue; \
     if [ -L \"$n\" ]; then k=l; elif [ -d \"$n\" ]; then k=d; elif [ -f \"$n\" ]; then k=f; else k=o; fi; \
     printf 'E %s %s\\n' \"$k\" \"$n\"; \
     case $n in [0-9]*.json) if [ \"$k\" = f ] && [ -d \"$b\" ] && [ ! -L \"$b\" ]; then \
     if s=$(wc -c 2>/dev/null < \"$n\"); then \
     printf 'M %s %s\\n' \"$b\" $s; cat \"$n\" || exit 3; printf '\\n'; fi; \
     fi ;; esac; done",
    "if [ -L latest ]; then t=$(ls -ld latest) || exit 3; t=${t##*\" -> \"}; \
     case $t in ''|*[!0-9A-Za-z.-]*) t='?' ;; esac; printf 'L link %s\\n' \"$t\"; \
     elif [ -e latest ]; then printf 'L other\\n'; else printf 'L absent\\n'; fi",
    "printf 'BM-SNAPSHOT-END\\n'",
];

/// Where a remote series lives, for messages: `user@host:port:/path`.
pub fn where_(target: &dyn Transport, dest: &str) -> String {
    format!("{target}:{dest}")
}

/// `exec /bin/sh -c SCRIPT sh DEST`: the script runs under a POSIX shell whatever the login
/// shell is; DEST arrives as `$1`.
fn wrap(statements: &[String], dest: &str) -> String {
    let script = statements.join("; ");
    debug_assert!(!script.contains('\n'), "remote scripts are one line");
    format!(
        "exec /bin/sh -c {} sh {}",
        shell_quote(&script),
        shell_quote(dest)
    )
}

struct Remote<'a> {
    target: &'a dyn Transport,
    dest: &'a str,
}

impl Remote<'_> {
    fn where_(&self) -> String {
        where_(self.target, self.dest)
    }

    fn run(
        &self,
        op: &'static str,
        script: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, SnapshotError> {
        let out = self
            .target
            .run_script(script, timeout)
            .map_err(|source| SnapshotError::Ssh {
                where_: self.where_(),
                op,
                source,
            })?;
        if !out.success() {
            let err = out.stderr_lossy();
            let lines: Vec<&str> = err.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            return Err(SnapshotError::Remote {
                where_: self.where_(),
                op,
                status: out.status,
                stderr_tail: tail,
            });
        }
        Ok(out.stdout)
    }

    fn malformed(&self, op: &'static str, reason: impl Into<String>, out: &[u8]) -> SnapshotError {
        let text = String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned();
        SnapshotError::Malformed {
            where_: self.where_(),
            op,
            reason: reason.into(),
            excerpt: text,
        }
    }
}

/// One ssh round trip: our names, kinds, manifests and `latest`.
pub fn inventory(
    target: &dyn Transport,
    dest: &str,
    timeout: Duration,
) -> Result<Inventory, SnapshotError> {
    let r = Remote { target, dest };
    let statements: Vec<String> = INVENTORY_SCRIPT.iter().map(|s| s.to_string()).collect();
    let out = r.run("listing snapshots", &wrap(&statements, dest), timeout)?;
    parse_inventory(&out).map_err(|reason| r.malformed("listing snapshots", reason, &out))
}

/// Take one `\n`-terminated line from `buf` at `*pos`.
fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a str, String> {
    let rest = &buf[*pos..];
    let nl = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("the answer was cut off (no end line)")?;
    *pos += nl + 1;
    std::str::from_utf8(&rest[..nl]).map_err(|_| "a line is not UTF-8".to_string())
}

/// Parse the inventory answer; anything unexpected is an error.
pub fn parse_inventory(out: &[u8]) -> Result<Inventory, String> {
    let mut pos = 0;
    let mut inv = Inventory::absent();
    match line(out, &mut pos)? {
        h if h == format!("{INV_HEADER} absent") => {
            if line(out, &mut pos)? != END || pos != out.len() {
                return Err("unexpected text after an absent series".into());
            }
            return Ok(inv);
        }
        h if h == format!("{INV_HEADER} present") => inv.exists = true,
        _ => return Err("it does not start with our header".into()),
    }
    let mut saw_latest = false;
    loop {
        let l = line(out, &mut pos)?;
        if l == END {
            if pos != out.len() {
                return Err("unexpected text after the end line".into());
            }
            if !saw_latest {
                return Err("no line about latest".into());
            }
            return Ok(inv);
        }
        let (tag, rest) = l.split_once(' ').ok_or_else(|| format!("bad line {l:?}"))?;
        match tag {
            "E" => {
                let (k, name) = rest
                    .split_once(' ')
                    .ok_or_else(|| format!("bad entry {l:?}"))?;
                let kind = match k {
                    "d" => Kind::Dir,
                    "f" => Kind::File,
                    "l" => Kind::Symlink,
                    "o" => Kind::Other,
                    _ => return Err(format!("bad kind in {l:?}")),
                };
                // The shell only pre-filters; names that are not strictly ours are skipped.
                match names::classify(name) {
                    Some(Name::Latest) | None => {}
                    Some(n) => inv.entries.push((n, kind)),
                }
            }
            "M" => {
                let (id, len) = rest
                    .split_once(' ')
                    .ok_or_else(|| format!("bad manifest line {l:?}"))?;
                let id = SnapshotId::parse(id).ok_or_else(|| format!("bad id in {l:?}"))?;
                let len: usize = len.parse().map_err(|_| format!("bad length in {l:?}"))?;
                let end = pos
                    .checked_add(len)
                    .filter(|&e| e < out.len())
                    .ok_or("a manifest was cut off")?;
                if out[end] != b'\n' {
                    return Err(format!("manifest of {id} is not followed by a newline"));
                }
                inv.manifests.push((id, out[pos..end].to_vec()));
                pos = end + 1;
            }
            "L" if !saw_latest => {
                saw_latest = true;
                inv.latest = match rest {
                    "absent" => LatestState::Absent,
                    "other" => LatestState::NotSymlink,
                    r => match r.strip_prefix("link ") {
                        Some(t) => LatestState::Symlink(t.to_string()),
                        None => return Err(format!("bad latest line {l:?}")),
                    },
                };
            }
            _ => return Err(format!("unexpected line {l:?}")),
        }
    }
}

/// The shell statements for one op (after `cd DEST`).
fn op_statements(op: &Op) -> Vec<String> {
    let q = |s: &str| shell_quote(s);
    let fail = |msg: String| format!("fail {}", q(&msg));
    match op {
        Op::CreateDest => Vec::new(), // handled before `cd`
        Op::MkdirIncomplete(id) => {
            let n = names::incomplete(id);
            vec![format!(
                "mkdir {} || {}",
                q(&n),
                fail(format!("cannot create {n}"))
            )]
        }
        Op::Rename { from, to } => vec![
            format!(
                "if [ -e {t} ] || [ -L {t} ]; then {}; fi",
                fail(format!("{to} exists")),
                t = q(to)
            ),
            format!(
                "mv {} {} || {}",
                q(from),
                q(to),
                fail(format!("cannot rename {from} to {to}"))
            ),
        ],
        // `sync` is not POSIX but GNU, BusyBox and the BSDs have it; where it is missing the
        // snapshot is only as durable as the remote file system makes it.
        Op::SyncData => vec!["if command -v sync >/dev/null 2>&1; then sync; fi".into()],
        Op::WriteIncompleteManifest { id, content } => {
            let n = names::incomplete_manifest(id);
            vec![
                format!("rm -f {}", q(&n)),
                format!(
                    "printf '%s\\n' {} > {} || {}",
                    q(content),
                    q(&n),
                    fail(format!("cannot write {n}"))
                ),
            ]
        }
        Op::RemoveFile(n) => vec![
            format!(
                "if [ -d {p} ] && [ ! -L {p} ]; then {}; fi",
                fail(format!("{n} is a directory")),
                p = q(n)
            ),
            format!("rm -f {} || {}", q(n), fail(format!("cannot remove {n}"))),
        ],
        Op::SwitchLatest(id) => {
            let id = id.to_string();
            let tmp = names::latest_new(&SnapshotId::parse(&id).expect("an id"));
            vec![
                format!(
                    "if [ -e latest ] && [ ! -L latest ]; then {}; fi",
                    fail("latest exists and is not a symlink".into())
                ),
                format!("t={}", q(&tmp)),
                "rm -f \"$t\"".into(),
                format!(
                    "ln -s {} \"$t\" || {}",
                    q(&id),
                    fail("cannot create the new latest symlink".into())
                ),
                format!(
                    "if mv -T \"$t\" latest 2>/dev/null; then :; \
                     elif mv -h \"$t\" latest 2>/dev/null; then :; \
                     else rm -f latest && mv \"$t\" latest || {}; fi",
                    fail("cannot switch latest".into())
                ),
                format!(
                    "if [ ! -L latest ]; then {}; fi",
                    fail("latest is not a symlink after the switch".into())
                ),
                format!(
                    "case $(ls -ld latest) in *\" -> {id}\") ;; *) {} ;; esac",
                    fail(format!("latest does not point to {id} after the switch"))
                ),
                format!(
                    "if [ -e \"$t\" ] || [ -L \"$t\" ]; then {}; fi",
                    fail("the temporary latest symlink is still there".into())
                ),
            ]
        }
        Op::PurgeDeleting => vec![format!(
            "for n in .deleting-*; do if [ ! -e \"$n\" ] && [ ! -L \"$n\" ]; then continue; fi; \
             isid \"${{n#.deleting-}}\" || continue; rm -rf \"$n\" || {}; done",
            fail("cannot remove a .deleting- tree".into())
        )],
        Op::AssertRealDir(p) => vec![format!(
            "if [ -L {x} ] || [ ! -d {x} ]; then {}; fi",
            fail(format!("{p}: not a directory")),
            x = q(p)
        )],
        Op::AssertNotSymlink(p) => vec![format!(
            "if [ -L {x} ]; then {}; fi",
            fail(format!("{p}: is a symlink")),
            x = q(p)
        )],
        Op::AssertExists(p) => vec![format!(
            "if [ ! -e {x} ] && [ ! -L {x} ]; then {}; fi",
            fail(format!("{p}: no such file or directory")),
            x = q(p)
        )],
    }
}

/// The whole script for `ops`: prelude, optional `mkdir -p`, `cd`, the ops, our OK line.
pub fn apply_script(dest: &str, ops: &[Op]) -> String {
    let mut s: Vec<String> = vec!["d=$1".into(), FAIL.into(), ISID.into()];
    if ops.contains(&Op::CreateDest) {
        s.push("mkdir -p \"$d\" || fail \"cannot create $d\"".into());
    }
    s.push("cd \"$d\" || fail \"cannot enter $d\"".into());
    for op in ops {
        s.extend(op_statements(op));
    }
    s.push(format!("printf '{OK}\\n'"));
    wrap(&s, dest)
}

/// Run `ops` in one ssh round trip; succeeds only on exit 0 with exactly our OK line.
pub fn apply(
    target: &dyn Transport,
    dest: &str,
    op: &'static str,
    ops: &[Op],
    timeout: Duration,
) -> Result<(), SnapshotError> {
    let r = Remote { target, dest };
    let out = r.run(op, &apply_script(dest, ops), timeout)?;
    if out != format!("{OK}\n").as_bytes() {
        return Err(r.malformed(op, "expected only our OK line", &out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SnapshotId {
        SnapshotId::parse(s).unwrap()
    }

    #[test]
    fn parses_a_well_formed_inventory() {
        let m = b"{\"x\":1}";
        let mut out = Vec::new();
        out.extend_from_slice(b"BM-SNAPSHOT-INVENTORY 1 present\n");
        out.extend_from_slice(b"E d 2026-11-29T093914Z\nE f 2026-11-29T093914Z.json\n");
        out.extend_from_slice(format!("M 2026-11-29T093914Z {}\n", m.len()).as_bytes());
        out.extend_from_slice(m);
        out.extend_from_slice(b"\nE d .incomplete-2026-11-30T000000Z\n");
        out.extend_from_slice(b"E d .deleting-2026-11-29T093914Z-2x\n"); // not ours: skipped
        out.extend_from_slice(b"L link 2026-11-29T093914Z\nBM-SNAPSHOT-END\n");
        let inv = parse_inventory(&out).unwrap();
        assert!(inv.exists);
        assert_eq!(
            inv.entries,
            vec![
                (Name::Snapshot(id("2026-11-29T093914Z")), Kind::Dir),
                (Name::Manifest(id("2026-11-29T093914Z")), Kind::File),
                (Name::Incomplete(id("2026-11-30T000000Z")), Kind::Dir),
            ]
        );
        assert_eq!(inv.manifests, vec![(id("2026-11-29T093914Z"), m.to_vec())]);
        assert_eq!(
            inv.latest,
            LatestState::Symlink("2026-11-29T093914Z".into())
        );
        let absent = parse_inventory(b"BM-SNAPSHOT-INVENTORY 1 absent\nBM-SNAPSHOT-END\n");
        assert_eq!(absent.unwrap(), Inventory::absent());
    }

    #[test]
    fn anything_else_is_an_error_never_empty() {
        let good = b"BM-SNAPSHOT-INVENTORY 1 present\nL absent\nBM-SNAPSHOT-END\n".to_vec();
        assert!(parse_inventory(&good).is_ok());
        let bad: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\n".to_vec(),
            [b"Welcome to host!\n".as_slice(), &good].concat(),
            [good.as_slice(), b"bye\n"].concat(),
            good[..good.len() - 1].to_vec(),
            b"BM-SNAPSHOT-INVENTORY 1 present\nBM-SNAPSHOT-END\n".to_vec(),
            b"BM-SNAPSHOT-INVENTORY 1 present\nL absent\nX y\nBM-SNAPSHOT-END\n".to_vec(),
            b"BM-SNAPSHOT-INVENTORY 1 present\nM 2026-11-29T093914Z 50\n{}\nL absent\nBM-SNAPSHOT-END\n".to_vec(),
            b"BM-SNAPSHOT-INVENTORY 1 present\nM 2026-11-29T093914Z 1\n{}\nL absent\nBM-SNAPSHOT-END\n".to_vec(),
            b"BM-SNAPSHOT-INVENTORY 2 present\nL absent\nBM-SNAPSHOT-END\n".to_vec(),
            b"BM-SNAPSHOT-INVENTORY 1 absent\nBM-SNAPSHOT-END\nnoise\n".to_vec(),
        ];
        for b in bad {
            assert!(
                parse_inventory(&b).is_err(),
                "{:?}",
                String::from_utf8_lossy(&b)
            );
        }
    }

    #[test]
    fn scripts_are_one_line_and_quote_the_dest() {
        let ops = [
            Op::CreateDest,
            Op::MkdirIncomplete(id("2026-11-29T093914Z")),
            Op::SwitchLatest(id("2026-11-29T093914Z")),
            Op::PurgeDeleting,
            Op::AssertExists("2026-11-29T093914Z/it's $(x)".into()),
        ];
        let s = apply_script("/srv/it's a $(dest)", &ops);
        assert!(!s.contains('\n'));
        assert!(s.starts_with("exec /bin/sh -c '"));
        assert!(s.ends_with(&shell_quote("/srv/it's a $(dest)")));
    }
}
