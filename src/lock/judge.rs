//! Whether an observed lock still stands: a pure function of the observation, who we are, and
//! which runs of this process are in progress. The rules are in DESIGN.md, "Stale locks".
//!
//! Must not: read files, keep global state or remove anything: the runner acts on a verdict.
//! (It does ask the kernel whether a pid on this same kernel still runs: that is the evidence.)

use std::fmt;
use std::time::Duration;

use super::record::{Identity, Record};
use crate::sys::procfs::process_alive;

/// What was found at a lock path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A backupmanager lock.
    Ours(Record),
    /// Something backupmanager did not write.
    Foreign(Foreign),
}

/// Something at a lock path that backupmanager did not write, described by what it is, never by
/// what it says: the path may lead to any file root can read (a symlink planted there, another
/// program's file), and nothing read from it may reach a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    /// A regular file: another program's, or unreadable. Its size when known (remote checks
    /// read only a prefix, so they do not know it).
    File { size: Option<u64> },
    /// A symbolic link. Present, so it blocks; its target is never read or followed.
    Symlink,
    /// A FIFO, socket or device: present, never opened for reading.
    Special,
}

/// A lock file that exists, as seen by the host that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub holder: Holder,
    /// Now minus the file's mtime, by the holding host's clock (zero if the mtime is ahead).
    pub age: Duration,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.holder {
            Holder::Ours(r) => write!(
                f,
                "job {} (run {}, pid {} on {}, since {})",
                r.job, r.run_id, r.pid, r.host, r.started
            ),
            Holder::Foreign(what) => {
                let age = self.age.as_secs();
                match what {
                    Foreign::File { size: Some(0) } => {
                        write!(f, "a file not written by backupmanager (empty, {age}s old)")
                    }
                    Foreign::File { size: Some(n) } => write!(
                        f,
                        "a file not written by backupmanager ({n} bytes, {age}s old)"
                    ),
                    Foreign::File { size: None } => {
                        write!(f, "a file not written by backupmanager ({age}s old)")
                    }
                    Foreign::Symlink => write!(
                        f,
                        "a symbolic link, not written by backupmanager (not followed, {age}s old)"
                    ),
                    Foreign::Special => write!(
                        f,
                        "a FIFO, socket or device, not written by backupmanager ({age}s old)"
                    ),
                }
            }
        }
    }
}

/// Whether an observed lock still stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Live,
    /// Abandoned; the string says why (for the warning that names the former owner).
    Stale(String),
}

/// Judges a lock file. `local_file` is true when the file is on this host's filesystem;
/// `default_lease` applies to records without one; `foreign_stale_after` is the blocks_on
/// entry's `stale_after`, the only way another program's file can be judged stale;
/// `run_active` says whether a run of this very process (by run id) is still in progress;
/// `uptime` is how long this machine has been up (`CLOCK_BOOTTIME`, read when judging).
pub fn judge(
    obs: &Observed,
    me: &Identity,
    local_file: bool,
    default_lease: Duration,
    foreign_stale_after: Option<Duration>,
    run_active: &dyn Fn(&str) -> bool,
    uptime: Duration,
) -> Verdict {
    match &obs.holder {
        Holder::Ours(r) => {
            if r.boot_id == me.boot_id && r.pid_ns == me.pid_ns && !r.boot_id.is_empty() {
                // Written by this very process: live only while that run is. A run whose release
                // failed (a network cut) must not block this process's later runs forever.
                if r.pid == me.pid && r.pid_start == me.pid_start {
                    return if run_active(&r.run_id) {
                        Verdict::Live
                    } else {
                        Verdict::Stale(format!(
                            "it was left by an earlier run ({}) of this same process whose release failed",
                            r.run_id
                        ))
                    };
                }
                return if process_alive(r.pid, r.pid_start) {
                    Verdict::Live
                } else {
                    Verdict::Stale(format!("its process {} on {} is gone", r.pid, r.host))
                };
            }
            // Written by this machine before it rebooted: the same machine id (not merely the
            // same host name, which unrelated machines share), another boot, and last written
            // before this boot began, so no process of this boot can be refreshing it. The
            // last condition keeps a clone's live lock alive: a cloned VM shares the machine id
            // but keeps refreshing its lock.
            if local_file
                && !r.machine_id.is_empty()
                && r.machine_id == me.machine_id
                && r.boot_id != me.boot_id
                && obs.age > uptime
            {
                return Verdict::Stale(format!(
                    "{} (machine id {}) has rebooted since it was last written ({}s ago, up {}s)",
                    r.host,
                    r.machine_id,
                    obs.age.as_secs(),
                    uptime.as_secs()
                ));
            }
            let lease = if r.lease_secs > 0 {
                Duration::from_secs(r.lease_secs)
            } else {
                default_lease
            };
            if obs.age > lease {
                Verdict::Stale(format!(
                    "it was last refreshed {}s ago, longer than its lease of {}s",
                    obs.age.as_secs(),
                    lease.as_secs()
                ))
            } else {
                Verdict::Live
            }
        }
        Holder::Foreign(_) => match foreign_stale_after {
            Some(limit) if obs.age > limit => Verdict::Stale(format!(
                "it has not changed for {}s (stale_after {}s)",
                obs.age.as_secs(),
                limit.as_secs()
            )),
            _ => Verdict::Live,
        },
    }
}
