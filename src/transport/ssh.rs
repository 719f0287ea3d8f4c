//! The ssh command line: the argument vector for `ssh` ([`ssh_args`]), the matching string for
//! rsync's `-e` option ([`rsync_rsh`]), running one remote script with a timeout
//! ([`run_remote`]), classifying ssh's own failures ([`SshError`]) and closing a
//! ControlMaster ([`close_master`]).
//!
//! Must not: run anything through a local shell (`sh -c`), auto-accept host keys, know
//! about jobs, schedules or lock semantics (callers build scripts; this module only
//! transports them), or kill processes it did not start.
//!
//! # Host-key policy
//! Every invocation carries `-o BatchMode=yes -o StrictHostKeyChecking=yes` first on the
//! command line. ssh takes the FIRST value it obtains for an option and the command line is
//! read before any config file, so these cannot be weakened by `~/.ssh/config`
//! (`StrictHostKeyChecking no` / `accept-new`), while `yes` is already the strictest value,
//! so no stricter user setting is overridden. Everything else in the user's config (ProxyJump,
//! Ciphers, ServerAliveInterval, …) is honoured unless the [`SshConfig`] sets it explicitly.
//! Consequence: a new host must have its key added to known_hosts before the first run
//! (`ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts`, after verifying it).
//!
//! # Quoting layers
//! * remote shell: [`shell_quote`] (POSIX `sh` single quotes). Quoting never stops an
//!   argument starting with `-` from being read as an option; put `--` before operands.
//! * ssh `-o Key=Value`: ssh tokenises the value like a config line (whitespace splits,
//!   `"…"` groups, `\` escapes) and expands `%` tokens in paths; paths are wrapped in
//!   double quotes and `%` doubled. `${VAR}` in a path is still expanded by ssh (no escape
//!   exists); avoid such paths.
//! * rsync `-e`: rsync splits the string itself (see [`rsync_rsh`]).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use super::quote::shell_quote;

/// Longest `control_dir` (in bytes) for which `<dir>/%C` still fits a unix socket path.
///
/// `sun_path` holds 108 bytes including the NUL. The socket's name is 40 hex chars (as ssh's
/// `%C`; see `control_name`), and while
/// creating the master ssh first binds a temporary name `<path>.<16 random chars>`, so
/// the socket needs `dir + 1 + 40 + 17 <= 107`.
pub const MAX_CONTROL_DIR_LEN: usize = 107 - 1 - 40 - 17;

/// How many trailing stderr lines an [`SshError`] keeps.
const STDERR_TAIL_LINES: usize = 20;

/// Where to connect: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    /// Reject a target that ssh could misread as options or that cannot be a host name.
    ///
    /// rsync puts the host on ssh's command line without `--`, so a host starting with `-`
    /// would be an option injection; `run_remote` calls this, and callers building rsync
    /// destinations must too.
    pub fn validate(&self) -> Result<(), SshError> {
        let bad = |what: &str| {
            Err(SshError::InvalidTarget {
                target: self.to_string(),
                reason: what.to_string(),
            })
        };
        let bad_chars = |s: &str| s.chars().any(|c| c.is_whitespace() || c.is_control());
        if self.host.is_empty() {
            return bad("empty host");
        }
        if self.host.starts_with('-') || bad_chars(&self.host) || self.host.contains('@') {
            return bad("host must not start with '-' or contain whitespace, control chars or '@'");
        }
        if let Some(u) = &self.user {
            if u.is_empty() || u.starts_with('-') || bad_chars(u) || u.contains('@') {
                return bad(
                    "user must be non-empty, not start with '-', and contain no whitespace or '@'",
                );
            }
        }
        Ok(())
    }

    /// `host:path` for an rsync operand (user and port travel in [`rsync_rsh`]); IPv6
    /// literals are bracketed. The path is NOT shell-quoted: rsync ≥ 3.2.4 protects remote
    /// args itself.
    pub fn rsync_location(&self, path: &str) -> String {
        format!("{}:{}", self.host_for_display(), path)
    }

    fn host_for_display(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if let Some(p) = self.port {
            write!(f, "{}:{p}", self.host_for_display())
        } else {
            write!(f, "{}", self.host)
        }
    }
}

/// How to invoke ssh. Options set here win over `~/.ssh/config`; the rest of that file is
/// honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// `-o IdentityFile="FILE" -o IdentitiesOnly=yes` (see [`ssh_args`] for why not `-i`).
    pub identity_file: Option<PathBuf>,
    /// `-o UserKnownHostsFile=FILE`.
    pub known_hosts_file: Option<PathBuf>,
    /// Each `"Key=Value"`, passed as `-o`. They come after the options this module sets,
    /// and ssh keeps the first value, so they cannot override those (by design: they are for
    /// other keys such as `ServerAliveInterval=15`).
    pub extra_options: Vec<String>,
    /// `-o ConnectTimeout=` (whole seconds, rounded up, at least 1).
    pub connect_timeout: Duration,
    /// Directory for ControlMaster sockets (one per target and settings); `None` = no
    /// multiplexing. Must be
    /// at most [`MAX_CONTROL_DIR_LEN`] bytes, otherwise multiplexing is disabled (warned).
    pub control_dir: Option<PathBuf>,
    /// `-o ControlPersist=` in whole seconds.
    pub control_persist: Duration,
    /// The ssh binary (default `ssh`, looked up in `PATH`).
    pub program: PathBuf,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            identity_file: None,
            known_hosts_file: None,
            extra_options: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            control_dir: None,
            control_persist: Duration::from_secs(60),
            program: PathBuf::from("ssh"),
        }
    }
}

fn secs_ceil(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// Escape `%` for ssh's token expansion in path-valued options.
fn escape_percent(s: &OsStr) -> OsString {
    let bytes = s.as_encoded_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if b == b'%' {
            out.push(b'%');
        }
        out.push(b);
    }
    os_from_bytes(out)
}

fn os_from_bytes(v: Vec<u8>) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(v)
}

/// `Key="value"` for `-o`: ssh tokenises the value like a config line.
fn config_value(key: &str, path: &Path) -> OsString {
    let escaped = escape_percent(path.as_os_str());
    let mut out = Vec::new();
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"=\"");
    for &b in escaped.as_encoded_bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    os_from_bytes(out)
}

/// The `ControlPath` to use, or `None` when multiplexing is off or impossible.
///
/// One master per (target, identity, known_hosts, options, program), not per user@host:port as
/// ssh's `%C` would give: a master authenticates once, and every later command through it
/// rides on that authentication, so a job whose key is not authorized (or whose known_hosts
/// or options differ) must never reach the host through another job's master.
fn control_path(target: &SshTarget, cfg: &SshConfig) -> Option<PathBuf> {
    let dir = cfg.control_dir.as_ref()?;
    let len = dir.as_os_str().len();
    if len > MAX_CONTROL_DIR_LEN {
        tracing::warn!(
            control_dir = %dir.display(),
            len,
            max = MAX_CONTROL_DIR_LEN,
            "ssh control_dir too long for a unix socket path; connection multiplexing disabled"
        );
        return None;
    }
    Some(dir.join(control_name(target, cfg)))
}

/// 40 hex characters (the length of ssh's `%C`, which [`MAX_CONTROL_DIR_LEN`] assumes) naming
/// everything that decides how a connection authenticates. Not a cryptographic hash: it keeps
/// configurations apart; the socket directory (0700, ours) keeps other users out.
fn control_name(target: &SshTarget, cfg: &SshConfig) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut name = String::new();
    for salt in 0u8..3 {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        (&target.user, &target.host, target.port).hash(&mut h);
        (
            &cfg.identity_file,
            &cfg.known_hosts_file,
            &cfg.extra_options,
        )
            .hash(&mut h);
        cfg.program.hash(&mut h);
        name.push_str(&format!("{:016x}", h.finish()));
    }
    name.truncate(40);
    name
}

/// Arguments after the program name and before the destination/command.
///
/// Order: `BatchMode=yes`, `StrictHostKeyChecking=yes` (see the module doc), ConnectTimeout,
/// `IdentityFile` + `IdentitiesOnly`, known_hosts, ControlMaster trio (one master per target
/// and settings, see `control_path`), `-p`, `-l`, `extra_options`, then the keep-alive
/// defaults ([`KEEPALIVE_DEFAULTS`]) the options do not set.
pub fn ssh_args(target: &SshTarget, cfg: &SshConfig) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let opt = |v: OsString, a: &mut Vec<OsString>| {
        a.push("-o".into());
        a.push(v);
    };
    opt("BatchMode=yes".into(), &mut a);
    opt("StrictHostKeyChecking=yes".into(), &mut a);
    opt(
        format!("ConnectTimeout={}", secs_ceil(cfg.connect_timeout)).into(),
        &mut a,
    );
    if let Some(id) = &cfg.identity_file {
        // Not `-i FILE`: ssh stat()s a `-i` path literally but later %-expands it, so a path
        // containing `%` cannot be written for `-i` at all. `-o IdentityFile="…"` is only
        // tokenised and expanded, so quoting + `%%` round-trips any path.
        opt(config_value("IdentityFile", id), &mut a);
        opt("IdentitiesOnly=yes".into(), &mut a);
    }
    if let Some(kh) = &cfg.known_hosts_file {
        opt(config_value("UserKnownHostsFile", kh), &mut a);
    }
    if let Some(cp) = control_path(target, cfg) {
        opt("ControlMaster=auto".into(), &mut a);
        opt(config_value("ControlPath", &cp), &mut a);
        opt(
            format!("ControlPersist={}", secs_ceil(cfg.control_persist)).into(),
            &mut a,
        );
    }
    if let Some(p) = target.port {
        a.push("-p".into());
        a.push(p.to_string().into());
    }
    if let Some(u) = &target.user {
        a.push("-l".into());
        a.push(u.into());
    }
    for o in &cfg.extra_options {
        opt(o.into(), &mut a);
    }
    // Keep-alives unless the job sets them: a link that dies without a FIN/RST (a cable, a
    // suspended peer, a NAT timeout) would otherwise hang ssh, and rsync over it, for hours.
    for (key, default) in KEEPALIVE_DEFAULTS {
        let set = cfg.extra_options.iter().any(|o| {
            o.split(['=', ' ', '\t'])
                .next()
                .is_some_and(|k| k.trim().eq_ignore_ascii_case(key))
        });
        if !set {
            opt(format!("{key}={default}").into(), &mut a);
        }
    }
    a
}

/// ssh keep-alives added unless `extra_options` sets the key: a dead peer is noticed after
/// about a minute (4 unanswered probes, 15 s apart).
pub const KEEPALIVE_DEFAULTS: [(&str, u32); 2] =
    [("ServerAliveInterval", 15), ("ServerAliveCountMax", 4)];

/// Quote one word for rsync's own `-e` splitter.
///
/// rsync (main.c `do_cmd`, unchanged from 2.6.7 to 3.4) splits the `-e` string on SPACE
/// only (tabs and newlines are ordinary characters), with no backslash escapes; a `'` or
/// `"` opens a quoted run that the same character closes, and inside a quoted run a
/// doubled quote character stands for one literal quote. So: wrap in single quotes and
/// double every embedded `'`.
pub fn rsync_rsh_quote(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    let bare = !s.is_empty() && !s.contains([' ', '\'', '"']);
    if bare {
        return s.into_owned();
    }
    format!("'{}'", s.replace('\'', "''"))
}

/// The value for rsync's `-e`: `program` + [`ssh_args`], quoted for rsync's splitter, so
/// rsync's ssh shares the ControlMaster connection of [`run_remote`]. The rsync operand
/// should be [`SshTarget::rsync_location`] (user and port are carried here as `-l`/`-p`).
///
/// Non-UTF-8 paths are converted lossily (rsync takes this as a C string anyway; such paths
/// are better avoided).
pub fn rsync_rsh(target: &SshTarget, cfg: &SshConfig) -> String {
    let mut words = vec![rsync_rsh_quote(cfg.program.as_os_str())];
    words.extend(ssh_args(target, cfg).iter().map(|a| rsync_rsh_quote(a)));
    words.join(" ")
}

/// What a remote command produced (its own exit status, whatever it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOutput {
    /// The remote command's exit status (never 255: that is read as an ssh failure).
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl RemoteOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// ssh itself failed (exit 255, timeout, or could not start). Each variant says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("invalid ssh target {target:?}: {reason}")]
    InvalidTarget { target: String, reason: String },

    #[error(
        "host key for {target} is {}; verify it out of band and add it to known_hosts \
         (e.g. ssh-keyscan{} {} >> ~/.ssh/known_hosts, or the job's known_hosts_file); \
         backupmanager never accepts host keys automatically\n{stderr_tail}",
        if *.changed { "DIFFERENT from the one in known_hosts (possible man-in-the-middle, or the host was reinstalled)" } else { "not known" },
        .port.map(|p| format!(" -p {p}")).unwrap_or_default(),
        .host
    )]
    HostKey {
        target: String,
        host: String,
        port: Option<u16>,
        /// true: a known key differs; false: no key known.
        changed: bool,
        stderr_tail: String,
    },

    #[error(
        "ssh authentication to {target} was refused (permission denied); check the identity \
         file, that its public key is in the remote authorized_keys, and the remote user\n{stderr_tail}"
    )]
    Auth { target: String, stderr_tail: String },

    #[error(
        "connection to {target} was refused; is sshd running there and listening on that port?\n{stderr_tail}"
    )]
    ConnectionRefused { target: String, stderr_tail: String },

    #[error(
        "cannot reach {target} (timeout, no route or name resolution failure); check the host \
         name, network and firewall\n{stderr_tail}"
    )]
    Unreachable { target: String, stderr_tail: String },

    #[error("ssh to {target} did not finish within {timeout:?} and was killed\n{stderr_tail}")]
    Timeout {
        target: String,
        timeout: Duration,
        stderr_tail: String,
    },

    #[error("could not run {program:?} for {target}: {source}")]
    Spawn {
        target: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("ssh to {target} failed ({status}); see its messages:\n{stderr_tail}")]
    Other {
        target: String,
        status: String,
        stderr_tail: String,
    },
}

/// Last [`STDERR_TAIL_LINES`] lines of `stderr`, lossily decoded, `\r` removed.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr).replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    lines[start..].join("\n")
}

/// Classify an ssh exit status 255 by its stderr.
pub fn classify_failure(target: &SshTarget, status: &str, stderr: &[u8]) -> SshError {
    let text = String::from_utf8_lossy(stderr);
    let t = target.to_string();
    let stderr_tail = tail(stderr);
    let has = |needle: &str| text.contains(needle);
    if has("Host key verification failed")
        || has("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || has("host key is known for")
    {
        SshError::HostKey {
            target: t,
            host: target.host.clone(),
            port: target.port,
            changed: has("REMOTE HOST IDENTIFICATION HAS CHANGED") || has("Offending"),
            stderr_tail,
        }
    } else if has("Permission denied") || has("Too many authentication failures") {
        SshError::Auth {
            target: t,
            stderr_tail,
        }
    } else if has("Connection refused") {
        SshError::ConnectionRefused {
            target: t,
            stderr_tail,
        }
    } else if [
        "timed out",
        "No route to host",
        "Network is unreachable",
        "Could not resolve hostname",
        "Name or service not known",
        "Temporary failure in name resolution",
    ]
    .iter()
    .any(|n| has(n))
    {
        SshError::Unreachable {
            target: t,
            stderr_tail,
        }
    } else {
        SshError::Other {
            target: t,
            status: status.to_string(),
            stderr_tail,
        }
    }
}

/// Read a pipe to EOF on a thread; the receiver gets the bytes.
fn drain<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Run `ssh <ssh_args> -- <host> <script>` (an argument vector; no local shell), stdin
/// null, output captured, killed after `timeout`.
///
/// `script` reaches the remote user's login shell as-is: build it with [`shell_quote`].
/// A remote exit status other than 255 is returned in [`RemoteOutput`]; 255 is what ssh uses
/// for its own failures and is classified into an [`SshError`] (so a remote script must not
/// `exit 255` itself).
pub fn run_remote(
    target: &SshTarget,
    cfg: &SshConfig,
    script: &str,
    timeout: Duration,
) -> Result<RemoteOutput, SshError> {
    target.validate()?;
    let mut cmd = Command::new(&cfg.program);
    cmd.args(ssh_args(target, cfg))
        .arg("--")
        .arg(&target.host)
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("NOTIFY_SOCKET");
    crate::sys::child::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| SshError::Spawn {
        target: target.to_string(),
        program: cfg.program.clone(),
        source,
    })?;
    let out_rx = drain(child.stdout.take().expect("piped stdout"));
    let err_rx = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    // Woken the moment ssh exits (a multiplexed command takes ~10 ms; polling with a growing
    // nap used to add up to 20 ms to each lock operation).
    let exited = crate::sys::child::exit_notice(child.id());
    let status: Option<ExitStatus> = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if let Err(mpsc::RecvTimeoutError::Disconnected) = exited.recv_timeout(deadline - now) {
            std::thread::sleep(Duration::from_millis(1).min(deadline - now));
        }
    };
    // ssh has exited; a ControlPersist master it forked detaches from our pipes, but do not
    // hang forever if some descendant keeps them open.
    let grace = Duration::from_secs(2);
    let stdout = out_rx.recv_timeout(grace).unwrap_or_default();
    let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
    let Some(status) = status else {
        return Err(SshError::Timeout {
            target: target.to_string(),
            timeout,
            stderr_tail: tail(&stderr),
        });
    };
    match status.code() {
        Some(255) => Err(classify_failure(target, "exit status 255", &stderr)),
        Some(code) => Ok(RemoteOutput {
            status: code,
            stdout,
            stderr,
        }),
        None => Err(SshError::Other {
            target: target.to_string(),
            status: status.to_string(),
            stderr_tail: tail(&stderr),
        }),
    }
}

/// `ssh -O exit`: stop the ControlMaster for `target`, if any. Errors are ignored.
pub fn close_master(target: &SshTarget, cfg: &SshConfig) {
    if control_path(target, cfg).is_none() || target.validate().is_err() {
        return;
    }
    let _ = Command::new(&cfg.program)
        .args(ssh_args(target, cfg))
        .args(["-O", "exit", "--"])
        .arg(&target.host)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `ssh -O check`: the pid of the running ControlMaster for `target`, if any.
pub fn master_pid(target: &SshTarget, cfg: &SshConfig) -> Option<u32> {
    control_path(target, cfg)?;
    target.validate().ok()?;
    let out = Command::new(&cfg.program)
        .args(ssh_args(target, cfg))
        .args(["-O", "check", "--"])
        .arg(&target.host)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // "Master running (pid=1234)" on stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    let rest = text.split("pid=").nth(1)?;
    rest.split(')').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_target() {
        let t = SshTarget {
            user: Some("root".into()),
            host: "127.0.0.1".into(),
            port: Some(2222),
        };
        assert_eq!(t.to_string(), "root@127.0.0.1:2222");
        let t6 = SshTarget {
            user: None,
            host: "::1".into(),
            port: Some(22),
        };
        assert_eq!(t6.to_string(), "[::1]:22");
        assert_eq!(t6.rsync_location("/x y"), "[::1]:/x y");
        let plain = SshTarget {
            user: None,
            host: "h".into(),
            port: None,
        };
        assert_eq!(plain.to_string(), "h");
    }

    #[test]
    fn validate_rejects_option_like_hosts() {
        let mk = |u: Option<&str>, h: &str| SshTarget {
            user: u.map(str::to_string),
            host: h.into(),
            port: None,
        };
        assert!(mk(None, "-oProxyCommand=x").validate().is_err());
        assert!(mk(None, "").validate().is_err());
        assert!(mk(None, "a b").validate().is_err());
        assert!(mk(Some("-x"), "h").validate().is_err());
        assert!(mk(Some("root"), "backup.example.org").validate().is_ok());
    }

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn args_full() {
        let t = SshTarget {
            user: Some("root".into()),
            host: "h".into(),
            port: Some(2222),
        };
        let cfg = SshConfig {
            identity_file: Some("/k/id 1%".into()),
            known_hosts_file: Some("/k/known \"hosts\"".into()),
            extra_options: vec!["ServerAliveInterval=5".into()],
            connect_timeout: Duration::from_millis(2500),
            control_dir: Some("/run/bm ctl".into()),
            control_persist: Duration::from_secs(60),
            program: "ssh".into(),
        };
        assert_eq!(
            strs(&ssh_args(&t, &cfg)),
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=3",
                "-o",
                "IdentityFile=\"/k/id 1%%\"",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "UserKnownHostsFile=\"/k/known \\\"hosts\\\"\"",
                "-o",
                "ControlMaster=auto",
                "-o",
                &format!("ControlPath=\"/run/bm ctl/{}\"", control_name(&t, &cfg)),
                "-o",
                "ControlPersist=60",
                "-p",
                "2222",
                "-l",
                "root",
                "-o",
                "ServerAliveInterval=5",
                "-o",
                "ServerAliveCountMax=4",
            ]
        );
    }

    #[test]
    fn one_master_per_target_and_settings() {
        let t = SshTarget {
            user: Some("root".into()),
            host: "h".into(),
            port: Some(22),
        };
        let base = SshConfig {
            identity_file: Some("/k/a".into()),
            control_dir: Some("/run/bm/ssh".into()),
            ..SshConfig::default()
        };
        let name = control_name(&t, &base);
        assert_eq!(name.len(), 40);
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(name, control_name(&t, &base.clone()), "stable");
        let differs = |cfg: SshConfig| control_name(&t, &cfg) != name;
        assert!(differs(SshConfig {
            identity_file: Some("/k/b".into()),
            ..base.clone()
        }));
        assert!(differs(SshConfig {
            known_hosts_file: Some("/k/kh".into()),
            ..base.clone()
        }));
        assert!(differs(SshConfig {
            extra_options: vec!["Ciphers=aes128-ctr".into()],
            ..base.clone()
        }));
        let other_port = SshTarget {
            port: Some(2222),
            ..t.clone()
        };
        assert_ne!(control_name(&other_port, &base), name);
    }

    #[test]
    fn args_minimal_and_long_control_dir() {
        let t = SshTarget {
            user: None,
            host: "h".into(),
            port: None,
        };
        let cfg = SshConfig {
            control_dir: Some(PathBuf::from(format!(
                "/{}",
                "d".repeat(MAX_CONTROL_DIR_LEN)
            ))),
            ..SshConfig::default()
        };
        let a = strs(&ssh_args(&t, &cfg));
        assert_eq!(
            a,
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=4",
            ]
        );
        // A job's own values win, whatever their case or spelling.
        let own = SshConfig {
            extra_options: vec![
                "serveraliveinterval 60".into(),
                "ServerAliveCountMax=1".into(),
            ],
            ..SshConfig::default()
        };
        let a = strs(&ssh_args(&t, &own));
        assert_eq!(
            a[a.len() - 4..],
            [
                "-o",
                "serveraliveinterval 60",
                "-o",
                "ServerAliveCountMax=1"
            ]
        );
        let ok = SshConfig {
            control_dir: Some(PathBuf::from("d".repeat(MAX_CONTROL_DIR_LEN))),
            ..SshConfig::default()
        };
        assert!(strs(&ssh_args(&t, &ok)).contains(&"ControlMaster=auto".to_string()));
    }

    #[test]
    fn rsh_quoting() {
        assert_eq!(rsync_rsh_quote(OsStr::new("plain")), "plain");
        assert_eq!(rsync_rsh_quote(OsStr::new("a b")), "'a b'");
        assert_eq!(rsync_rsh_quote(OsStr::new("it's")), "'it''s'");
        assert_eq!(rsync_rsh_quote(OsStr::new("")), "''");
        assert_eq!(rsync_rsh_quote(OsStr::new("x=\"q\"")), "'x=\"q\"'");
        let t = SshTarget {
            user: Some("root".into()),
            host: "h".into(),
            port: Some(22),
        };
        let cfg = SshConfig {
            identity_file: Some("/k/my key".into()),
            ..SshConfig::default()
        };
        assert_eq!(
            rsync_rsh(&t, &cfg),
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=10 \
             -o 'IdentityFile=\"/k/my key\"' -o IdentitiesOnly=yes -p 22 -l root \
             -o ServerAliveInterval=15 -o ServerAliveCountMax=4"
        );
    }

    #[test]
    fn classify_stderr() {
        let t = SshTarget {
            user: Some("root".into()),
            host: "127.0.0.1".into(),
            port: Some(2222),
        };
        let e = classify_failure(&t, "255", b"@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\r\nHost key verification failed.\r\n");
        assert!(matches!(e, SshError::HostKey { changed: true, .. }), "{e}");
        assert!(
            e.to_string().contains("ssh-keyscan -p 2222 127.0.0.1"),
            "{e}"
        );
        let e = classify_failure(&t, "255", b"No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\n");
        assert!(matches!(e, SshError::HostKey { changed: false, .. }), "{e}");
        let e = classify_failure(
            &t,
            "255",
            b"root@127.0.0.1: Permission denied (publickey).\r\n",
        );
        assert!(matches!(e, SshError::Auth { .. }));
        let e = classify_failure(
            &t,
            "255",
            b"ssh: connect to host 127.0.0.1 port 2222: Connection refused\r\n",
        );
        assert!(matches!(e, SshError::ConnectionRefused { .. }));
        assert!(e.to_string().contains("root@127.0.0.1:2222"));
        let e = classify_failure(
            &t,
            "255",
            b"ssh: Could not resolve hostname nope: Name or service not known\r\n",
        );
        assert!(matches!(e, SshError::Unreachable { .. }));
        let e = classify_failure(
            &t,
            "255",
            b"ssh: connect to host 10.0.0.1 port 22: Connection timed out\r\n",
        );
        assert!(matches!(e, SshError::Unreachable { .. }));
        let e = classify_failure(&t, "255", b"something odd\n");
        assert!(matches!(e, SshError::Other { .. }));
    }
}
