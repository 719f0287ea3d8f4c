//! The tests' one reader of `/proc`: `/proc/PID/stat` is parsed by the product's parser into [`Stat`]; every
//! question a test asks about processes (alive? children? process group? name? start time?) is
//! answered from it. `cmdline`, `environ` and `/proc/uptime` are read here too, so no test opens
//! `/proc` itself.
//!
//! Must not: signal or otherwise touch the processes it reads.
use std::fs;
use std::time::Duration;

/// The fields of `/proc/PID/stat` the tests use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// The command name (at most 15 bytes, as in `/proc/PID/comm`).
    pub comm: String,
    /// `R`, `S`, `D`, `Z`, `T`, …
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    /// Clock ticks after boot: with the pid, names a process across pid reuse.
    pub start_time: u64,
}

impl Stat {
    /// Parses one `/proc/PID/stat` line with the product's own parser
    /// (`backupmanager::sys::procfs::Stat`), so the two can never read it differently.
    pub fn parse(line: &str) -> Option<Stat> {
        let s = backupmanager::sys::procfs::Stat::parse(line)?;
        Some(Stat {
            pid: s.pid,
            comm: s.comm,
            state: s.state,
            ppid: s.ppid,
            pgrp: u32::try_from(s.pgrp).ok()?,
            start_time: s.start_time,
        })
    }

    /// The stat of `pid`, or None if there is no such process (any more).
    pub fn read(pid: u32) -> Option<Stat> {
        Stat::parse(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Every process now (one pass over `/proc`; processes that end meanwhile are left out).
pub fn all() -> Vec<Stat> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(Stat::read)
        .collect()
}

/// True if `pid` exists and is not a zombie (orphans may be left unreaped by some inits).
pub fn pid_alive(pid: u32) -> bool {
    Stat::read(pid).is_some_and(|s| !s.is_zombie())
}

/// Pids whose parent is `ppid`.
pub fn children_of(ppid: u32) -> Vec<u32> {
    all()
        .into_iter()
        .filter(|s| s.ppid == ppid)
        .map(|s| s.pid)
        .collect()
}

/// Pids of every process below `pid` (children, their children, …), zombies included.
pub fn descendants(pid: u32) -> Vec<u32> {
    let procs = all();
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in procs.iter().filter(|s| s.ppid == p) {
            out.push(c.pid);
            todo.push(c.pid);
        }
    }
    out
}

/// Pids in process group `pgid`, zombies excluded.
pub fn group_members(pgid: u32) -> Vec<u32> {
    all()
        .into_iter()
        .filter(|s| s.pgrp == pgid && !s.is_zombie())
        .map(|s| s.pid)
        .collect()
}

/// Pids below `pid` that are alive and named `name` (their `comm`).
pub fn descendants_named(pid: u32, name: &str) -> Vec<u32> {
    descendants(pid)
        .into_iter()
        .filter(|p| comm(*p) == name && pid_alive(*p))
        .collect()
}

/// The command name of `pid` ("" if it is gone).
pub fn comm(pid: u32) -> String {
    Stat::read(pid).map(|s| s.comm).unwrap_or_default()
}

/// `pid`'s start time (clock ticks after boot), if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    Stat::read(pid).map(|s| s.start_time)
}

/// `pid`'s state letter (`R`, `S`, `T` = stopped, `Z`, …), `?` if it is gone.
pub fn state(pid: u32) -> char {
    Stat::read(pid).map(|s| s.state).unwrap_or('?')
}

/// Time since boot (`/proc/uptime`).
pub fn uptime() -> Duration {
    let text = fs::read_to_string("/proc/uptime").unwrap();
    let secs: f64 = text.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_secs_f64(secs)
}

/// `pid`'s command line (NUL-separated), empty if it is gone.
pub fn cmdline(pid: u32) -> Vec<u8> {
    fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// `pid`'s environment (NUL-separated `K=V`), empty if it is gone.
pub fn environ(pid: u32) -> Vec<u8> {
    fs::read(format!("/proc/{pid}/environ")).unwrap_or_default()
}
