//! Lock files, local and remote: create atomically, inspect, judge stale, release only if ours.
//!
//! A lock file backupmanager writes holds one line of JSON (a [`Record`]): who wrote it (host,
//! pid and the pid's start time, boot id, pid namespace), for which job and run, when, with what
//! lease, and a random token. The token is what makes release safe: a run only ever removes a
//! file whose token is its own, so it never deletes a lock someone else took over.
//!
//! Creation is atomic on both sides. The record is written to a temporary file next to the lock
//! and hard-linked into place (`link(2)` fails if the name exists), so a reader never sees a
//! half-written lock and two writers never both succeed. Remotely the same happens in one small
//! script over SSH (`ln` instead of `link`), with every path and the record passed through
//! [`shell_quote`].
//!
//! Staleness ([`judge`]) is decided from evidence, never guessed:
//! - same kernel (boot id) and pid namespace as us: stale exactly when the writing process
//!   (pid + start time, so a reused pid does not count) is gone;
//! - a local file written by this host name before a reboot (other boot id): stale;
//! - otherwise: stale when the file's mtime is older than the writer's lease, measured by the
//!   clock of the host that holds the file (remote: `date` and `stat` read in one command).
//!
//! A file that is not a backupmanager record (another program's lock) is never removed. It blocks
//! by its existence, unless the blocks_on entry sets `stale_after`, in which case an old one is
//! ignored (still not deleted).
//!
//! This module knows nothing of jobs, waiting or rsync: the runner decides what to do with a
//! verdict.

// Lock operations run a few times per job run and their errors end the run: the size of
// `Place`, `Created` and `LockError` (which carries an `SshError`) costs nothing measurable.
#![allow(clippy::large_enum_variant, clippy::result_large_err)]

use std::fmt;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::ssh::{run_remote, shell_quote, SshConfig, SshError, SshTarget};

/// The longest a single remote lock operation may take.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(30);
/// We read at most this much of a lock file.
const MAX_READ: usize = 4096;

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
            pid_ns: me.pid_ns.clone(),
            job: job.into(),
            run_id: run_id.into(),
            started: jiff::Timestamp::now().to_string(),
            lease_secs: lease.as_secs(),
            token: random_hex(16),
        }
    }

    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("record serializes");
        s.push('\n');
        s
    }

    fn parse(text: &str) -> Option<Record> {
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
    pub pid_ns: String,
}

impl Identity {
    pub fn current() -> Identity {
        let pid = std::process::id();
        Identity {
            host: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "unknown".into()),
            pid,
            pid_start: process_start(pid).unwrap_or(0),
            boot_id: boot_id(),
            pid_ns: fs::read_link("/proc/self/ns/pid")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Field 22 of `/proc/PID/stat`: start time in clock ticks after boot.
fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when `pid` runs and is the same process that started at `start` ticks.
fn process_alive(pid: u32, start: u64) -> bool {
    let Ok(p) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => process_start(pid).is_none_or(|s| s == start),
        Err(_) => false,
    }
}

/// `n` random bytes as hex, from the kernel.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    if let Err(e) =
        fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
    {
        panic!("cannot read /dev/urandom: {e}");
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs in progress in this process, so [`judge`] can tell this process's live locks from ones
/// its earlier runs failed to release.
static ACTIVE_RUNS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Marks a run as in progress until dropped.
pub struct ActiveRun(String);

pub fn register_run(run_id: &str) -> ActiveRun {
    ACTIVE_RUNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(run_id.to_string());
    ActiveRun(run_id.to_string())
}

impl Drop for ActiveRun {
    fn drop(&mut self) {
        let mut runs = ACTIVE_RUNS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = runs.iter().position(|r| *r == self.0) {
            runs.swap_remove(i);
        }
    }
}

fn run_is_active(run_id: &str) -> bool {
    ACTIVE_RUNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|r| r == run_id)
}

/// What was found at a lock path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A backupmanager lock.
    Ours(Record),
    /// Something else (another program's lock file, or unreadable). Holds its first line.
    Foreign(String),
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
            Holder::Foreign(first) if first.is_empty() => {
                write!(
                    f,
                    "a file not written by backupmanager (empty, {}s old)",
                    self.age.as_secs()
                )
            }
            Holder::Foreign(first) => write!(
                f,
                "a file not written by backupmanager ({:?}, {}s old)",
                first.chars().take(80).collect::<String>(),
                self.age.as_secs()
            ),
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
/// entry's `stale_after`, the only way another program's file can be judged stale.
pub fn judge(
    obs: &Observed,
    me: &Identity,
    local_file: bool,
    default_lease: Duration,
    foreign_stale_after: Option<Duration>,
) -> Verdict {
    match &obs.holder {
        Holder::Ours(r) => {
            if r.boot_id == me.boot_id && r.pid_ns == me.pid_ns && !r.boot_id.is_empty() {
                // Written by this very process: live only while that run is. A run whose release
                // failed (a network cut) must not block this process's later runs forever.
                if r.pid == me.pid && r.pid_start == me.pid_start {
                    return if run_is_active(&r.run_id) {
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
            if local_file && r.host == me.host && r.boot_id != me.boot_id {
                return Verdict::Stale(format!("{} has rebooted since it was written", r.host));
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

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lock file {path} on {target}: {source}")]
    Ssh {
        path: String,
        target: String,
        #[source]
        source: SshError,
    },
    #[error("lock file {path} on {target}: {message}")]
    Remote {
        path: String,
        target: String,
        message: String,
    },
}

/// Where lock files live: this host, or one reached over SSH.
#[derive(Debug, Clone)]
pub enum Place {
    Local,
    Remote { target: SshTarget, ssh: SshConfig },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Local => f.write_str("this host"),
            Place::Remote { target, .. } => write!(f, "{target}"),
        }
    }
}

/// The result of trying to create a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Yes,
    /// The name was taken; here is what holds it (None: it vanished before we could read it).
    Exists(Option<Observed>),
}

impl Place {
    pub fn is_local(&self) -> bool {
        matches!(self, Place::Local)
    }

    /// Atomically creates `path` holding `record`, creating a missing parent directory.
    pub fn create(&self, path: &str, record: &Record) -> Result<Created, LockError> {
        match self {
            Place::Local => create_local(path, record),
            Place::Remote { target, ssh } => {
                let p = Path::new(path);
                let parent = p
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .to_string_lossy()
                    .into_owned();
                let tmp = format!("{path}.bm-{}", record.token);
                let script = format!(
                    "umask 022; p={p}; t={t}; mkdir -p -- {d} || exit 3; \
                     printf '%s' {rec} > \"$t\" || exit 3; \
                     if ln -- \"$t\" \"$p\" 2>/dev/null; then rm -f -- \"$t\"; echo CREATED; exit 0; fi; \
                     rm -f -- \"$t\"; if [ ! -e \"$p\" ] && [ ! -L \"$p\" ]; then \
                     echo \"cannot create $p (permission denied or not a directory?)\" >&2; exit 3; fi; {observe}",
                    p = shell_quote(path),
                    t = shell_quote(&tmp),
                    d = shell_quote(&parent),
                    rec = shell_quote(&record.to_line()),
                    observe = OBSERVE_SCRIPT,
                );
                let out = self.remote(target, ssh, path, &script)?;
                if out.trim_start().starts_with("CREATED") {
                    Ok(Created::Yes)
                } else {
                    Ok(Created::Exists(parse_observation(&out)))
                }
            }
        }
    }

    /// What is at `path`, if anything.
    pub fn observe(&self, path: &str) -> Result<Option<Observed>, LockError> {
        match self {
            Place::Local => observe_local(path),
            Place::Remote { target, ssh } => {
                let script = format!("p={}; {OBSERVE_SCRIPT}", shell_quote(path));
                let out = self.remote(target, ssh, path, &script)?;
                Ok(parse_observation(&out))
            }
        }
    }

    /// Removes `path` if it still holds `token`. Returns whether it removed it.
    pub fn remove_if_token(&self, path: &str, token: &str) -> Result<bool, LockError> {
        self.if_token(path, token, || fs::remove_file(path), "rm -f")
    }

    /// Refreshes the mtime of `path` if it still holds `token`. Returns false if it is no longer ours.
    pub fn touch_if_token(&self, path: &str, token: &str) -> Result<bool, LockError> {
        let touch = || {
            fs::File::options()
                .append(true)
                .open(path)?
                .set_modified(SystemTime::now())
        };
        self.if_token(path, token, touch, "touch -c")
    }

    /// Acts on `path` only while it holds `token`: the one place that decides whether a lock
    /// file is still ours. `local` acts on this host; remotely `remote_cmd -- PATH` runs.
    /// Returns whether it acted.
    fn if_token(
        &self,
        path: &str,
        token: &str,
        local: impl FnOnce() -> std::io::Result<()>,
        remote_cmd: &str,
    ) -> Result<bool, LockError> {
        match self {
            Place::Local => {
                match read_prefix(Path::new(path)) {
                    Ok(text) if Record::parse(&text).is_some_and(|r| r.token == token) => {}
                    Ok(_) => return Ok(false),
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                    Err(e) => return Err(io_err(path, e)),
                }
                match local() {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(io_err(path, e)),
                }
            }
            Place::Remote { target, ssh } => {
                let script = format!(
                    "p={}; if grep -qF -- {} \"$p\" 2>/dev/null; then {remote_cmd} -- \"$p\" && echo DONE; else echo KEPT; fi",
                    shell_quote(path),
                    shell_quote(&format!("\"token\":\"{token}\""))
                );
                Ok(self.remote(target, ssh, path, &script)?.contains("DONE"))
            }
        }
    }

    fn remote(
        &self,
        target: &SshTarget,
        ssh: &SshConfig,
        path: &str,
        script: &str,
    ) -> Result<String, LockError> {
        let out =
            run_remote(target, ssh, script, REMOTE_TIMEOUT).map_err(|source| LockError::Ssh {
                path: path.into(),
                target: target.to_string(),
                source,
            })?;
        if !out.success() {
            let err = out.stderr_lossy();
            return Err(LockError::Remote {
                path: path.into(),
                target: target.to_string(),
                message: format!(
                    "remote command failed (exit {}): {}",
                    out.status,
                    err.trim()
                ),
            });
        }
        Ok(out.stdout_lossy())
    }
}

/// Prints `ABSENT`, or `PRESENT`, the host's clock, the file's mtime and its first bytes.
/// Expects the path in `$p`. A file removed while it is being read (its owner releasing it
/// between our `-e` and `stat` or `head`) is absent, not an error; one that stays but cannot be
/// read is present with an empty body, like a local one.
const OBSERVE_SCRIPT: &str = "if [ -e \"$p\" ] && m=$(stat -c %Y -- \"$p\" 2>/dev/null); then \
     if b=$(head -c 4096 -- \"$p\" 2>/dev/null); then :; elif [ -e \"$p\" ]; then b=; \
     else echo ABSENT; exit 0; fi; \
     echo PRESENT; date +%s; printf '%s\\n%s\\n' \"$m\" \"$b\"; else echo ABSENT; fi";

fn parse_observation(out: &str) -> Option<Observed> {
    let mut lines = out.splitn(4, '\n');
    let mut first = lines.next()?.trim();
    if first == "CREATED" {
        return None;
    }
    if first.is_empty() {
        first = lines.next()?.trim();
    }
    if first != "PRESENT" {
        return None;
    }
    let now: i64 = lines.next()?.trim().parse().ok()?;
    let mtime: i64 = lines.next()?.trim().parse().ok()?;
    let body = lines.next().unwrap_or("");
    Some(Observed {
        holder: holder_of(body),
        age: Duration::from_secs(u64::try_from(now - mtime).unwrap_or(0)),
    })
}

fn holder_of(text: &str) -> Holder {
    match Record::parse(text) {
        Some(r) => Holder::Ours(r),
        None => Holder::Foreign(text.lines().next().unwrap_or("").trim().to_string()),
    }
}

fn io_err(path: &str, source: std::io::Error) -> LockError {
    LockError::Io {
        path: path.into(),
        source,
    }
}

fn read_prefix(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    fs::File::open(path)?
        .take(MAX_READ as u64)
        .read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn observe_local(path: &str) -> Result<Option<Observed>, LockError> {
    let p = Path::new(path);
    let meta = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, e)),
    };
    let text = match read_prefix(p) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        // A directory, a socket, no permission: it exists, so it counts; we cannot read it.
        Err(_) => String::new(),
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    Ok(Some(Observed {
        holder: holder_of(&text),
        age,
    }))
}

fn create_local(path: &str, record: &Record) -> Result<Created, LockError> {
    let p = Path::new(path);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).map_err(|e| io_err(path, e))?;
    }
    let tmp = PathBuf::from(format!("{path}.bm-{}", record.token));
    let mut f = fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| io_err(path, e))?;
    let written = f
        .write_all(record.to_line().as_bytes())
        .and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    let linked = fs::hard_link(&tmp, p);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(Created::Yes),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Created::Exists(observe_local(path)?)),
        Err(e) => Err(io_err(path, e)),
    }
}

#[cfg(test)]
mod tests {
    /// The remote observe script, run by a local `sh`: present, absent, and a path that exists
    /// but cannot be read as a file (counts as present, unknown holder).
    #[test]
    fn observe_script_reports_present_absent_and_unreadable() {
        let d = std::env::temp_dir().join(format!("bm-observe-{}", random_hex(4)));
        fs::create_dir_all(d.join("dir")).unwrap();
        fs::write(d.join("f"), "busy\n").unwrap();
        let run = |name: &str| {
            let p = d.join(name);
            let script = format!(
                "p={}; {OBSERVE_SCRIPT}",
                crate::ssh::shell_quote(p.to_str().unwrap())
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let (code, out) = run("f");
        assert_eq!(code, Some(0));
        assert!(
            out.starts_with("PRESENT\n") && out.ends_with("\nbusy\n"),
            "{out:?}"
        );
        assert!(parse_observation(&out).is_some());
        assert_eq!(run("missing"), (Some(0), "ABSENT\n".to_string()));
        let (code, out) = run("dir");
        assert_eq!(code, Some(0));
        assert!(parse_observation(&out).is_some(), "{out:?}");
        fs::remove_dir_all(d).unwrap();
    }

    use super::*;

    fn me() -> Identity {
        Identity::current()
    }

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("bm-lock-unit-{}", random_hex(6)));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn identity_reads_this_process() {
        let me = me();
        assert_eq!(me.pid, std::process::id());
        assert!(me.pid_start > 0);
        assert_eq!(me.boot_id.len(), 36);
        assert!(me.pid_ns.starts_with("pid:["));
        assert!(process_alive(me.pid, me.pid_start));
        assert!(
            !process_alive(me.pid, me.pid_start + 1),
            "a different start time is another process"
        );
    }

    #[test]
    fn create_is_exclusive_and_release_needs_the_token() {
        let d = tmp();
        let path = d.join("sub/dir/job.lock").to_string_lossy().into_owned();
        let a = Record::new(&me(), "j", "run-a", Duration::from_secs(600));
        let b = Record::new(&me(), "j", "run-b", Duration::from_secs(600));
        assert_eq!(Place::Local.create(&path, &a).unwrap(), Created::Yes);
        let Created::Exists(Some(obs)) = Place::Local.create(&path, &b).unwrap() else {
            panic!()
        };
        assert_eq!(obs.holder, Holder::Ours(a.clone()));
        assert!(!Place::Local.remove_if_token(&path, &b.token).unwrap());
        assert!(Path::new(&path).exists());
        assert!(Place::Local.touch_if_token(&path, &a.token).unwrap());
        assert!(!Place::Local.touch_if_token(&path, &b.token).unwrap());
        assert!(Place::Local.remove_if_token(&path, &a.token).unwrap());
        assert!(!Path::new(&path).exists());
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(d.join("sub/dir")).unwrap().count(), 0);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn foreign_files_are_never_ours() {
        let d = tmp();
        let path = d.join("other.lock").to_string_lossy().into_owned();
        fs::write(&path, "12345\n").unwrap();
        let obs = Place::Local.observe(&path).unwrap().unwrap();
        assert_eq!(obs.holder, Holder::Foreign("12345".into()));
        assert!(!Place::Local.remove_if_token(&path, "12345").unwrap());
        assert!(Path::new(&path).exists());
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn judging() {
        let me = me();
        let lease = Duration::from_secs(600);
        let live = Record::new(&me, "j", "r-live", lease);
        let obs = |r: Record, age| Observed {
            holder: Holder::Ours(r),
            age: Duration::from_secs(age),
        };
        // Same kernel: the process decides, not the age. This very process: the run decides.
        let active = register_run("r-live");
        assert_eq!(
            judge(&obs(live.clone(), 99_999), &me, true, lease, None),
            Verdict::Live
        );
        drop(active);
        assert!(
            matches!(judge(&obs(live.clone(), 0), &me, true, lease, None), Verdict::Stale(s) if s.contains("earlier run")),
            "a lock of this process whose run has ended is a leftover"
        );
        // Another live process on this kernel (our parent): live, whatever its age.
        let mut other = live.clone();
        other.pid = std::os::unix::process::parent_id();
        other.pid_start = process_start(other.pid).unwrap();
        assert_eq!(
            judge(&obs(other, 99_999), &me, true, lease, None),
            Verdict::Live
        );
        let mut dead = live.clone();
        dead.pid = u32::MAX - 1;
        assert!(
            matches!(judge(&obs(dead, 0), &me, true, lease, None), Verdict::Stale(s) if s.contains("is gone"))
        );
        // Written by this host before a reboot.
        let mut old_boot = live.clone();
        old_boot.boot_id = "00000000-0000-0000-0000-000000000000".into();
        assert!(
            matches!(judge(&obs(old_boot.clone(), 0), &me, true, lease, None), Verdict::Stale(s) if s.contains("rebooted"))
        );
        // Another machine: the lease decides.
        let mut other = old_boot;
        other.host = "elsewhere".into();
        other.lease_secs = 60;
        assert_eq!(
            judge(&obs(other.clone(), 59), &me, false, lease, None),
            Verdict::Live
        );
        assert!(matches!(
            judge(&obs(other, 61), &me, false, lease, None),
            Verdict::Stale(_)
        ));
        // Someone else's file: only a blocks_on stale_after can discount it.
        let foreign = Observed {
            holder: Holder::Foreign("x".into()),
            age: Duration::from_secs(1_000_000),
        };
        assert_eq!(judge(&foreign, &me, true, lease, None), Verdict::Live);
        assert!(matches!(
            judge(&foreign, &me, true, lease, Some(Duration::from_secs(60))),
            Verdict::Stale(_)
        ));
    }

    /// The remote observe script, run by a local `sh`, with `tool` (stat or head) replaced by a
    /// wrapper that removes the lock first: the owner releasing it mid-observation.
    fn observe_while_released_by(tool: &str) -> (bool, String) {
        let d = tmp();
        let bin = d.join("bin");
        fs::create_dir_all(&bin).unwrap();
        let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
            .unwrap();
        let wrapper = bin.join(tool);
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nrm -f -- \"$BM_VANISH\"\nexec {} \"$@\"\n",
                real.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        let path = d.join("lock").to_string_lossy().into_owned();
        let r = Record::new(&me(), "j", "r", Duration::from_secs(600));
        fs::write(&path, r.to_line()).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("p={}; {OBSERVE_SCRIPT}", shell_quote(&path)))
            .env("BM_VANISH", &path)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap();
        fs::remove_dir_all(d).unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn a_lock_released_while_observed_remotely_is_absent() {
        for tool in ["stat", "head"] {
            let (ok, out) = observe_while_released_by(tool);
            assert!(ok, "{tool}: the script fails: {out}");
            assert_eq!(parse_observation(&out), None, "{tool}: {out}");
        }
        // Undisturbed, the same script reports the record.
        let d = tmp();
        let path = d.join("lock").to_string_lossy().into_owned();
        let r = Record::new(&me(), "j", "r", Duration::from_secs(600));
        fs::write(&path, r.to_line()).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("p={}; {OBSERVE_SCRIPT}", shell_quote(&path)))
            .output()
            .unwrap();
        let obs = parse_observation(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(obs.holder, Holder::Ours(r));
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn parses_remote_observations() {
        let r = Record::new(&me(), "j", "r", Duration::from_secs(600));
        let out = format!("PRESENT\n1000\n990\n{}", r.to_line());
        let o = parse_observation(&out).unwrap();
        assert_eq!(o.age, Duration::from_secs(10));
        assert_eq!(o.holder, Holder::Ours(r));
        assert_eq!(parse_observation("ABSENT\n"), None);
        let o = parse_observation("PRESENT\n1000\n2000\n").unwrap();
        assert_eq!(
            (o.age, o.holder),
            (Duration::ZERO, Holder::Foreign(String::new()))
        );
    }
}
