//! `/proc`, read in one place: the `/proc/PID/stat` parser, whether a process still runs,
//! process groups, and this machine's and process's identity (boot id, machine id, pid
//! namespace; the machine id is the one thing read outside `/proc`).
//!
//! Must not: send signals (except the null signal that tests existence) or write anything.

use std::fs;

/// The fields of `/proc/PID/stat` this program uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// Field 2: the command name (at most 15 bytes), without its parentheses.
    pub comm: String,
    /// Field 3: R, S, D, Z, X, ...
    pub state: char,
    pub ppid: u32,
    pub pgrp: i32,
    /// Field 22: start time in clock ticks after boot.
    pub start_time: u64,
}

impl Stat {
    /// Parses one `/proc/PID/stat` line. The command name (field 2) is in parentheses and may
    /// contain spaces and parentheses, so fields are counted after its last `)`.
    pub fn parse(text: &str) -> Option<Stat> {
        let (head, rest) = text.rsplit_once(')')?;
        let (pid, comm) = head.split_once(" (")?;
        let pid = pid.trim().parse().ok()?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(Stat {
            pid,
            comm: comm.to_string(),
            state: f.first()?.chars().next()?,
            ppid: f.get(1)?.parse().ok()?,
            pgrp: f.get(2)?.parse().ok()?,
            start_time: f.get(19)?.parse().ok()?,
        })
    }

    /// Reads `/proc/PID/stat`; `None` if the process is gone.
    pub fn read(pid: u32) -> Option<Stat> {
        Stat::parse(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// A zombie or a dead task: exited, only waiting to be reaped.
    pub fn is_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Every process's stat, as far as it could be read.
pub fn all() -> Vec<Stat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(Stat::read)
        .collect()
}

/// Start time of `pid` in clock ticks after boot.
pub fn process_start(pid: u32) -> Option<u64> {
    Stat::read(pid).map(|s| s.start_time)
}

/// True when `pid` runs and is the same process that started at `start` ticks (a reused pid
/// is another process).
pub fn process_alive(pid: u32, start: u64) -> bool {
    let Ok(p) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => process_start(pid).is_none_or(|s| s == start),
        Err(_) => false,
    }
}

/// True when some live (not exited) process is in process group `pgid`.
pub fn group_has_live_member(pgid: i32) -> bool {
    all().iter().any(|s| s.pgrp == pgid && !s.is_exited())
}

/// This kernel's boot id (changes at every boot).
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// This machine's id: `/etc/machine-id`, else `/var/lib/dbus/machine-id`; empty if neither can
/// be read. Unlike the host name it is unique per installation (though a cloned disk or VM
/// image carries its source's id until someone regenerates it).
pub fn machine_id() -> String {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

/// `/proc/self/ns/pid`, e.g. `pid:[4026531836]`.
pub fn pid_namespace() -> String {
    fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// This machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_name_with_spaces_and_parens() {
        let line =
            "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 50";
        let s = Stat::parse(line).unwrap();
        assert_eq!(
            s,
            Stat {
                pid: 1234,
                comm: "a b) c)".into(),
                state: 'S',
                ppid: 1,
                pgrp: 1234,
                start_time: 98765
            }
        );
        assert!(Stat::parse("garbage").is_none());
    }

    #[test]
    fn reads_this_process() {
        let me = Stat::read(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(!me.is_exited());
        assert!(process_alive(me.pid, me.start_time));
        assert!(!process_alive(me.pid, me.start_time + 1));
        assert_eq!(boot_id().len(), 36);
        assert!(pid_namespace().starts_with("pid:["));
        assert!(all().iter().any(|s| s.pid == me.pid));
    }
}
