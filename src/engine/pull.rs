//! Pull jobs: the same engines (mirror, snapshot), with each sync's source on another host and
//! its destination here. A snapshot series of a pull lives here, so `--link-dest` is local.
//!
//! [`pull_from`] turns an engine's local rsync command into a pull (`-e` and `host:source`,
//! and no `--protect-args`: the source travels on the client's command line, escaped by rsync,
//! so that `backupmanager gate` can read and check it; config/decode/direction.rs keeps it to
//! an alphabet every rsync escapes). [`Pull`] wraps the engine and replaces its local source
//! guards by one on the client: before a `--delete` mirror or any snapshot, rsync lists the
//! source's top level over the same connection (a read `gate` allows), and a missing or empty
//! source refuses the sync, as an unmounted disk on the client would look like that. The mount
//! guard cannot read the client's `/etc/fstab`; the listing is what stands in for it.
//!
//! Must not: take or look at locks, or change what the wrapped engine writes.

use std::process::{Command, Stdio};
use std::sync::Arc;

use super::{Engine, EngineError, SyncCtx};
use crate::config::Sync;
use crate::events::SyncReport;
use crate::rsync::RsyncCommand;
use crate::transport::Transport;

/// The I/O timeout of the source listing (seconds).
const LIST_TIMEOUT: u32 = 60;

/// Makes `cmd` (built for a local copy) read its source from the host `t` reaches.
pub fn pull_from(cmd: &mut RsyncCommand, t: &Arc<dyn Transport>) {
    cmd.rsh = Some(t.rsync_rsh());
    cmd.source = t.rsync_operand(&cmd.source);
}

/// What the empty-source guard of a pull risks (see [`super::guard::Risk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRisk {
    /// A mirror: only a `--delete` sync destroys anything.
    Deletes,
    /// A snapshot: an empty copy would count as the newest restore point.
    Snapshot,
}

/// An engine whose syncs pull from `transport`.
#[derive(Debug)]
pub struct Pull {
    pub inner: Box<dyn Engine>,
    pub syncs: Vec<Sync>,
    pub transport: Arc<dyn Transport>,
    pub risk: PullRisk,
}

impl Pull {
    fn guarded(&self, sync: &Sync) -> bool {
        !sync.allow_empty_source
            && match self.risk {
                PullRisk::Deletes => sync.deletes(),
                PullRisk::Snapshot => true,
            }
    }

    /// The listing command: `rsync --list-only --dirs` of the source's contents.
    pub fn list_args(&self, sync: &Sync) -> Vec<String> {
        let dir = format!("{}/", sync.source.trim_end_matches('/'));
        vec![
            "--list-only".into(),
            "--dirs".into(),
            format!("--timeout={LIST_TIMEOUT}"),
            "-e".into(),
            self.transport.rsync_rsh(),
            "--".into(),
            self.transport.rsync_operand(&dir),
        ]
    }
}

/// What a listing says about the source.
#[derive(Debug, PartialEq, Eq)]
pub enum Listed {
    /// Something besides `.` is there (or the source is a file).
    HasEntries,
    Empty,
    Missing,
}

/// Reads `rsync --list-only --dirs SRC/` output; `Err` when it is not a clear answer.
pub fn read_listing(code: Option<i32>, stdout: &str, stderr: &str) -> Result<Listed, String> {
    match code {
        Some(0) => {
            let entries = stdout
                .lines()
                .filter_map(|l| l.split_whitespace().nth(4))
                .filter(|name| *name != ".")
                .count();
            Ok(if entries == 0 {
                Listed::Empty
            } else {
                Listed::HasEntries
            })
        }
        Some(23) if stderr.contains("No such file or directory") => Ok(Listed::Missing),
        // `backupmanager gate` refuses to pin a path that is not there.
        Some(_) if stderr.contains("refused: path") && stderr.contains("does not exist") => {
            Ok(Listed::Missing)
        }
        Some(23) if stderr.contains("Not a directory") => Ok(Listed::HasEntries),
        _ => Err(format!(
            "cannot list the source on the client (rsync exit {}): {}",
            code.map_or("by signal".to_string(), |c| c.to_string()),
            // The gate's own refusal says most; else rsync's last word.
            stderr
                .lines()
                .find(|l| l.contains("refused:"))
                .or(stderr.lines().last())
                .unwrap_or("")
                .trim()
        )),
    }
}

impl Engine for Pull {
    fn syncs(&self) -> usize {
        self.inner.syncs()
    }

    fn preflight(&self, index: usize, _ctx: &SyncCtx) -> Result<(), EngineError> {
        let sync = &self.syncs[index];
        if !self.guarded(sync) {
            return Ok(());
        }
        let refuse = |message: String| EngineError::GuardRefused { index, message };
        let mut cmd = Command::new("rsync");
        cmd.args(self.list_args(sync))
            .stdin(Stdio::null())
            .env_remove("NOTIFY_SOCKET");
        crate::sys::child::die_with_parent(&mut cmd);
        let out = cmd
            .output()
            .map_err(|e| refuse(format!("cannot run rsync to list the source: {e}")))?;
        let listed = read_listing(
            out.status.code(),
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        )
        .map_err(|m| refuse(format!("refusing to run: {m}")))?;
        let what = match listed {
            Listed::HasEntries => return Ok(()),
            Listed::Empty => "is empty",
            Listed::Missing => "does not exist",
        };
        let consequence = match self.risk {
            PullRisk::Deletes => {
                "the sync has --delete, which would delete everything at the destination"
            }
            PullRisk::Snapshot => {
                "a snapshot of it would be an empty restore point, and retention would count it"
            }
        };
        Err(refuse(format!(
            "refusing to run: source {} on {} {what} and {consequence} (an unmounted disk looks like this); mount the source on the client, or set `allow_empty_source: true` on the sync if this is intended",
            sync.source, self.transport
        )))
    }

    fn transfer(&self, index: usize, ctx: &SyncCtx) -> Result<SyncReport, EngineError> {
        self.inner.transfer(index, ctx)
    }

    fn commit(
        &self,
        index: usize,
        report: &SyncReport,
        ctx: &SyncCtx,
    ) -> Result<Option<String>, EngineError> {
        self.inner.commit(index, report, ctx)
    }

    fn after_success(&self, ctx: &SyncCtx) -> Result<(), EngineError> {
        self.inner.after_success(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings() {
        let dot = "drwxr-xr-x          4,096 2026/11/29 12:00:00 .\n";
        assert_eq!(read_listing(Some(0), dot, ""), Ok(Listed::Empty));
        let full = format!("{dot}-rw-r--r--              3 2026/11/29 12:00:00 a file\n");
        assert_eq!(read_listing(Some(0), &full, ""), Ok(Listed::HasEntries));
        let gone = "rsync: [sender] change_dir \"/x\" failed: No such file or directory (2)\n";
        assert_eq!(read_listing(Some(23), "", gone), Ok(Listed::Missing));
        // Anything else fails closed: a refused gate, a lost connection, a permission error.
        assert!(read_listing(Some(23), "", "Permission denied (13)").is_err());
        assert!(read_listing(Some(255), "", "Connection closed").is_err());
        assert!(read_listing(Some(12), dot, "").is_err());
        assert!(read_listing(None, "", "").is_err());
    }
}
