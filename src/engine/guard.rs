//! The source guards. The empty-source guard: a `--delete` sync whose local source is missing or
//! empty would wipe the destination, and an unmounted disk looks exactly like that. The
//! mount guard: the same disk mounted *below* the source (`/srv/photos` under `/srv/`) leaves
//! the source non-empty when it is missing, so a file system that `/etc/fstab` lists below the
//! source but that is not mounted now (in `/proc/self/mountinfo`) refuses the sync too. Each
//! refuses unless the sync allows it.
//!
//! Must not: touch the destination.

use std::fs;
use std::path::Path;

use crate::config::Sync;

/// What running a sync from a missing or incomplete source would cost: the engine says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    /// A mirror: only a `--delete` sync destroys anything (the rest of the destination).
    Deletes,
    /// A snapshot: always, because the copy would count as the newest restore point and
    /// retention would age good snapshots out behind it.
    Snapshot,
}

impl Risk {
    fn applies(self, sync: &Sync) -> bool {
        match self {
            Risk::Deletes => sync.deletes(),
            Risk::Snapshot => true,
        }
    }

    /// The consequence, for the refusal message; `what` names what would be lost.
    fn consequence(self, what: &str) -> String {
        match self {
            Risk::Deletes => {
                format!("the sync has --delete, which would delete {what} at the destination")
            }
            Risk::Snapshot if what == "everything" => {
                "a snapshot of it would be an empty restore point, and retention would count it"
                    .to_string()
            }
            Risk::Snapshot => format!(
                "a snapshot of it would be a restore point missing {what}, and retention would count it"
            ),
        }
    }
}

/// `Err(message)` when `sync` must not run.
pub fn empty_source(sync: &Sync, risk: Risk) -> Result<(), String> {
    if !risk.applies(sync) || sync.allow_empty_source {
        return Ok(());
    }
    let p = Path::new(&sync.source);
    let problem = match fs::metadata(p) {
        Err(_) => Some("does not exist"),
        Ok(m) if m.is_dir() => match fs::read_dir(p) {
            Ok(mut entries) => entries.next().is_none().then_some("is empty"),
            Err(_) => Some("cannot be read"),
        },
        Ok(_) => None,
    };
    match problem {
        None => Ok(()),
        Some(what) => Err(format!(
            "refusing to run: source {} {what} and {} (an unmounted disk looks like this); mount the source, or set `allow_empty_source: true` on the sync if this is intended",
            sync.source,
            risk.consequence("everything")
        )),
    }
}

/// `Err(message)` when a `--delete` sync's source holds a mount point from `/etc/fstab` that is
/// not mounted now.
pub fn unmounted(sync: &Sync, risk: Risk) -> Result<(), String> {
    if !risk.applies(sync) || sync.allow_unmounted {
        return Ok(());
    }
    let fstab = fs::read_to_string("/etc/fstab").unwrap_or_default();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    unmounted_in(sync, risk, &fstab, &mountinfo)
}

/// [`unmounted`] with the two tables given (pure, for tests).
pub fn unmounted_in(sync: &Sync, risk: Risk, fstab: &str, mountinfo: &str) -> Result<(), String> {
    if !risk.applies(sync) || sync.allow_unmounted {
        return Ok(());
    }
    let source = normalize(&sync.source);
    let mounted: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|m| normalize(&unescape(m)))
        .collect();
    let missing: Vec<String> = fstab
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (point, fstype) = (f.get(1)?, f.get(2).copied().unwrap_or(""));
            (point.starts_with('/') && fstype != "swap").then(|| normalize(&unescape(point)))
        })
        .filter(|m| m == &source || source == "/" || m.starts_with(&format!("{source}/")))
        .filter(|m| !mounted.contains(m))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "refusing to run: {} under source {} {} listed in /etc/fstab but not mounted, and {}; mount {}, or set `allow_unmounted: true` on the sync if this is intended",
        missing.join(", "),
        sync.source,
        if missing.len() == 1 { "is" } else { "are" },
        risk.consequence(if missing.len() == 1 { "its backup" } else { "their backup" }),
        if missing.len() == 1 { "it" } else { "them" },
    ))
}

/// `/a//b/` → `/a/b`.
fn normalize(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// fstab and mountinfo write space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unmounted_file_system_below_the_source_refuses_a_deleting_sync() {
        let fstab = "# <fs> <mount> <type> <opts>\nUUID=1 / ext4 defaults 0 1\nUUID=2 /srv/photos ext4 defaults 0 2\nUUID=3 /srv/My\\040Music xfs noauto 0 2\nUUID=4 none swap sw 0 0\nUUID=5 /home ext4 defaults 0 2\n";
        let all = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n23 22 8:2 / /srv/photos rw - ext4 /dev/sda2 rw\n24 22 8:3 / /srv/My\\040Music rw - xfs /dev/sda3 rw\n";
        let no_photos = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n25 22 8:5 / /home rw - ext4 /dev/sda5 rw\n24 22 8:3 / /srv/My\\040Music rw - xfs /dev/sda3 rw\n";
        let no_music =
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n23 22 8:2 / /srv/photos rw - ext4 /dev/sda2 rw\n";
        let srv = sync("/srv/", &["-a", "--delete"], false);
        assert!(unmounted_in(&srv, Risk::Deletes, fstab, all).is_ok());
        let e = unmounted_in(&srv, Risk::Deletes, fstab, no_photos).unwrap_err();
        assert!(
            e.contains("/srv/photos under source /srv/ is listed in /etc/fstab but not mounted"),
            "{e}"
        );
        let e = unmounted_in(&srv, Risk::Deletes, fstab, no_music).unwrap_err();
        assert!(e.contains("/srv/My Music under"), "{e}");
        // The mount point itself as the source; the whole disk as the source.
        assert!(unmounted_in(
            &sync("/srv/photos/", &["--delete"], false),
            Risk::Deletes,
            fstab,
            no_photos
        )
        .is_err());
        assert!(unmounted_in(
            &sync("/", &["--delete"], false),
            Risk::Deletes,
            fstab,
            no_photos
        )
        .is_err());
        // Elsewhere, without --delete, or allowed: no refusal.
        assert!(unmounted_in(
            &sync("/home/", &["--delete"], false),
            Risk::Deletes,
            fstab,
            no_photos
        )
        .is_ok());
        assert!(unmounted_in(
            &sync("/srv/", &["-a"], false),
            Risk::Deletes,
            fstab,
            no_photos
        )
        .is_ok());
        let mut allowed = srv.clone();
        allowed.allow_unmounted = true;
        assert!(unmounted_in(&allowed, Risk::Deletes, fstab, no_photos).is_ok());
    }

    fn sync(source: &str, args: &[&str], allow: bool) -> Sync {
        Sync {
            source: source.into(),
            dest: "/nonexistent-dest/".into(),
            opts: vec![],
            args: args.iter().map(|s| s.to_string()).collect(),
            allow_empty_source: allow,
            allow_unmounted: false,
            span: crate::config::Span::new(Path::new("t"), 1, 1, 1),
        }
    }

    #[test]
    fn empty_source_guard_refuses_only_deleting_syncs() {
        let d = tempfile::tempdir().unwrap();
        let src = format!("{}/", d.path().display());
        assert!(
            empty_source(&sync(&src, &["-a", "--delete"], false), Risk::Deletes)
                .unwrap_err()
                .contains("is empty")
        );
        assert!(empty_source(
            &sync("/nonexistent-src/", &["--delete-after"], false),
            Risk::Deletes
        )
        .unwrap_err()
        .contains("does not exist"));
        assert!(empty_source(&sync(&src, &["-a"], false), Risk::Deletes).is_ok());
        assert!(empty_source(&sync(&src, &["--delete"], true), Risk::Deletes).is_ok());
        fs::write(d.path().join("f"), "x").unwrap();
        assert!(empty_source(&sync(&src, &["--delete"], false), Risk::Deletes).is_ok());
    }
}
