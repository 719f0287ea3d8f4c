//! Who holds kernel `flock` locks: one read of `/proc/locks`, asked about many files. A status
//! snapshot asks about the daemon's pid file and every job's run lock; reading the table once
//! per snapshot (not once per file) keeps `status` and the web page's snapshots cheap with many
//! jobs.
//!
//! Must not: take, test or release a lock (reading the table never disturbs a holder).

use std::path::Path;

/// The `FLOCK` entries of `/proc/locks` as read once: (device major, minor, inode, pid).
#[derive(Debug, Default)]
pub struct Flocks {
    entries: Vec<(u64, u64, u64, String)>,
}

impl Flocks {
    /// The table now; empty when `/proc/locks` cannot be read (then nobody is known to hold
    /// anything, as before).
    pub fn read() -> Flocks {
        std::fs::read_to_string("/proc/locks")
            .map(|t| Flocks::parse(&t))
            .unwrap_or_default()
    }

    /// Parses the table's text: lines like `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`.
    /// Lines in another form (other lock kinds, `->` waiters) are skipped.
    pub fn parse(text: &str) -> Flocks {
        let entries = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.get(1) != Some(&"FLOCK") {
                    return None;
                }
                let (pid, dev_ino) = (f.get(4)?, f.get(5)?);
                let mut parts = dev_ino.split(':');
                let maj = u64::from_str_radix(parts.next()?, 16).ok()?;
                let min = u64::from_str_radix(parts.next()?, 16).ok()?;
                let ino: u64 = parts.next()?.parse().ok()?;
                Some((maj, min, ino, pid.to_string()))
            })
            .collect();
        Flocks { entries }
    }

    /// The pid holding an `flock` on the file at `path` (as the table had it), if any.
    pub fn holder(&self, path: &Path) -> Option<&str> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        let (major, minor) = (
            nix::sys::stat::major(meta.dev()),
            nix::sys::stat::minor(meta.dev()),
        );
        self.entries
            .iter()
            .find(|(maj, min, ino, _)| *maj == major && *min == minor && *ino == meta.ino())
            .map(|(.., pid)| pid.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_holding_a_real_flock_and_nobody_on_a_free_file() {
        let dir = tempfile::tempdir().unwrap();
        let (held, free) = (dir.path().join("held"), dir.path().join("free"));
        let f = std::fs::File::create(&held).unwrap();
        std::fs::File::create(&free).unwrap();
        f.lock().unwrap();
        let table = Flocks::read();
        assert_eq!(
            table.holder(&held),
            Some(std::process::id().to_string().as_str())
        );
        assert_eq!(table.holder(&free), None);
        assert_eq!(table.holder(&dir.path().join("missing")), None);
        // The table is a snapshot: released after reading, it still says held.
        f.unlock().unwrap();
        assert!(table.holder(&held).is_some());
        assert_eq!(Flocks::read().holder(&held), None);
    }

    #[test]
    fn other_lock_kinds_and_odd_lines_are_skipped() {
        let t = Flocks::parse(
            "1: POSIX  ADVISORY  WRITE 10 fd:01:7 0 EOF\n\
             2: FLOCK  ADVISORY  WRITE 11 fd:01:8 0 EOF\n\
             2: -> FLOCK  ADVISORY  WRITE 12 fd:01:8 0 EOF\n\
             garbage\n",
        );
        assert_eq!(t.entries, [(0xfd, 1, 8, "11".to_string())]);
    }
}
