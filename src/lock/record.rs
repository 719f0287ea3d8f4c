//! What a backupmanager lock file says ([`Record`], one line of JSON) and who this process is
//! ([`Identity`]), for writing records and judging others'.
//!
//! Must not: read or write lock files (the backends do) or judge them ([`super::judge`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sys::{procfs, random};

/// What a backupmanager lock file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Always "backupmanager": tells our files from other programs'.
    pub tool: String,
    pub host: String,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub pid_start: u64,
    pub boot_id: String,
    /// The writer's `/etc/machine-id` (empty if it has none, or in records written before this
    /// field existed). The host name is not enough to tell machines apart: two Raspberry Pis
    /// are both `raspberrypi`.
    #[serde(default)]
    pub machine_id: String,
    /// `/proc/self/ns/pid` of the writer, e.g. `pid:[4026531836]`.
    pub pid_ns: String,
    pub job: String,
    pub run_id: String,
    /// RFC 3339.
    pub started: String,
    /// The writer's lease in seconds: its heartbeat keeps mtime younger than this.
    pub lease_secs: u64,
    pub token: String,
}

impl Record {
    pub fn new(me: &Identity, job: &str, run_id: &str, lease: Duration) -> Record {
        Record {
            tool: "backupmanager".into(),
            host: me.host.clone(),
            pid: me.pid,
            pid_start: me.pid_start,
            boot_id: me.boot_id.clone(),
            machine_id: me.machine_id.clone(),
            pid_ns: me.pid_ns.clone(),
            job: job.into(),
            run_id: run_id.into(),
            started: jiff::Timestamp::now().to_string(),
            lease_secs: lease.as_secs(),
            token: random::hex(16),
        }
    }

    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("record serializes");
        s.push('\n');
        s
    }

    /// The record in the first line of `text`, if it is one of ours.
    pub fn parse(text: &str) -> Option<Record> {
        let r: Record = serde_json::from_str(text.lines().next()?).ok()?;
        (r.tool == "backupmanager" && !r.token.is_empty()).then_some(r)
    }
}

/// Who this process is, for writing records and judging others'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub host: String,
    pub pid: u32,
    pub pid_start: u64,
    pub boot_id: String,
    pub machine_id: String,
    pub pid_ns: String,
}

impl Identity {
    pub fn current() -> Identity {
        let pid = std::process::id();
        Identity {
            host: procfs::hostname(),
            pid,
            pid_start: procfs::process_start(pid).unwrap_or(0),
            boot_id: procfs::boot_id(),
            machine_id: procfs::machine_id(),
            pid_ns: procfs::pid_namespace(),
        }
    }
}
