//! Lock files on another host, over a [`Transport`]: each operation is one small POSIX script
//! with every path and the record passed through [`shell_quote`]. Creation is atomic there too
//! (`ln` of a fully written temporary file). Ages are measured by the remote host's own clock
//! (`date` and the file's mtime read in one script), so clock skew between hosts does not count.
//!
//! Must not: use anything but POSIX `sh` and utilities on the remote side, or judge staleness.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::judge::{Foreign, Holder, Observed};
use super::record::Record;
use super::{holder_of, Created, LockBackend, LockError};
use crate::transport::{shell_quote, Transport};

/// The longest one remote `watch-lock` may be asked to wait.
pub const WATCH_MAX_SECS: u64 = 3600;

/// The longest a single remote lock operation may take.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// Lock files on the host a transport reaches.
#[derive(Debug, Clone)]
pub struct RemoteFiles {
    pub transport: Arc<dyn Transport>,
}

impl fmt::Display for RemoteFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.transport.fmt(f)
    }
}

impl RemoteFiles {
    fn run(&self, path: &str, script: &str) -> Result<String, LockError> {
        let out = self
            .transport
            .run_script(script, REMOTE_TIMEOUT)
            .map_err(|source| LockError::Ssh {
                path: path.into(),
                target: self.transport.to_string(),
                source,
            })?;
        if !out.success() {
            let err = out.stderr_lossy();
            return Err(LockError::Remote {
                path: path.into(),
                target: self.transport.to_string(),
                message: format!(
                    "remote command failed (exit {}): {}",
                    out.status,
                    err.trim()
                ),
            });
        }
        Ok(out.stdout_lossy())
    }

    /// Runs `remote_cmd -- PATH` only while the file holds `token`; returns whether it did.
    /// The reply must be exactly `BM1 DONE` or `BM1 KEPT`.
    fn if_token(&self, path: &str, token: &str, remote_cmd: &str) -> Result<bool, LockError> {
        let script = if_token_script(path, token, remote_cmd);
        let out = self.run(path, &script)?;
        match out.trim_end() {
            "BM1 DONE" => Ok(true),
            "BM1 KEPT" => Ok(false),
            o if o.starts_with("BM1 ERROR ") => Err(self.remote_err(path, o[10..].to_string())),
            _ => Err(self.remote_err(path, unexpected(&out))),
        }
    }

    fn parsed(&self, path: &str, out: &str) -> Result<Option<Observed>, LockError> {
        parse_observation(out).map_err(|m| self.remote_err(path, m))
    }

    fn remote_err(&self, path: &str, message: String) -> LockError {
        LockError::Remote {
            path: path.into(),
            target: self.transport.to_string(),
            message,
        }
    }
}

impl LockBackend for RemoteFiles {
    fn try_create(&self, path: &str, record: &Record) -> Result<Created, LockError> {
        let script = create_script(path, &record.token, &record.to_line());
        let out = self.run(path, &script)?;
        if out.trim_end() == "BM1 CREATED" {
            Ok(Created::Yes)
        } else {
            Ok(Created::Exists(self.parsed(path, &out)?))
        }
    }

    fn observe(&self, path: &str) -> Result<Option<Observed>, LockError> {
        let out = self.run(path, &observe_script(path))?;
        self.parsed(path, &out)
    }

    fn release_if_token(&self, path: &str, token: &str) -> Result<bool, LockError> {
        self.if_token(path, token, "rm -f")
    }

    fn refresh_if_token(&self, path: &str, token: &str) -> Result<bool, LockError> {
        self.if_token(path, token, "touch -c")
    }

    fn is_local(&self) -> bool {
        false
    }

    fn waker(&self, _path: &str) -> Option<PathBuf> {
        None
    }

    fn watch_gone(&self, path: &str, limit: Duration) -> Option<bool> {
        let secs = limit.as_secs().clamp(1, WATCH_MAX_SECS);
        let script = format!(
            "if command -v backupmanager >/dev/null 2>&1; then \
             exec backupmanager watch-lock --timeout {secs} -- {}; else echo 'BM1 NOWATCH'; fi",
            shell_quote(path)
        );
        let out = self
            .transport
            .run_script(&script, Duration::from_secs(secs) + REMOTE_TIMEOUT)
            .ok()?;
        if !out.success() {
            return None;
        }
        match out.stdout_lossy().trim_end() {
            "BM1 GONE" => Some(true),
            "BM1 STILL" => Some(false),
            _ => None,
        }
    }
}

// The scripts, as pure functions of their parameters: `backupmanager gate` on a client rebuilds
// them from the parameters it reads back and accepts a script only when it is byte for byte
// one of these (gate/locks.rs).

/// Creates `path` holding `record_line` atomically; replies `BM1 CREATED` or what is there (see
/// [`OBSERVE_SCRIPT`]).
pub fn create_script(path: &str, token: &str, record_line: &str) -> String {
    let parent = Path::new(path)
        .parent()
        .unwrap_or(Path::new("/"))
        .to_string_lossy()
        .into_owned();
    let tmp = format!("{path}.bm-{token}");
    let tmp_name = Path::new(&tmp)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `ln t p` onto an existing directory (or a symlink to one) would create p/t and
    // succeed: never `ln` onto one, and since one can appear between that test and `ln`,
    // count the lock as created only if p is then a regular file holding our token;
    // otherwise remove what `ln` put inside it. The observe script then reports what is
    // there (a directory is an error).
    format!(
        "umask 022; p={p}; t={t}; mkdir -p -- {d} || exit 3; \
         printf '%s' {rec} > \"$t\" || exit 3; \
         if [ ! -d \"$p\" ] && [ ! -L \"$p\" ] && ln -- \"$t\" \"$p\" 2>/dev/null; then \
         if [ -f \"$p\" ] && [ ! -L \"$p\" ] && grep -qF -- {tok} \"$p\" 2>/dev/null; then \
         rm -f -- \"$t\"; echo 'BM1 CREATED'; exit 0; fi; \
         if [ -d \"$p\" ]; then rm -f -- \"$p\"/{tn}; fi; fi; \
         rm -f -- \"$t\"; if [ ! -e \"$p\" ] && [ ! -L \"$p\" ]; then \
         echo \"cannot create $p (permission denied or not a directory?)\" >&2; exit 3; fi; {observe}",
        p = shell_quote(path),
        t = shell_quote(&tmp),
        tn = shell_quote(&tmp_name),
        tok = shell_quote(&format!("\"token\":\"{token}\"")),
        d = shell_quote(&parent),
        rec = shell_quote(record_line),
        observe = OBSERVE_SCRIPT,
    )
}

/// Observes `path` (see [`OBSERVE_SCRIPT`]).
pub fn observe_script(path: &str) -> String {
    format!("p={}; {OBSERVE_SCRIPT}", shell_quote(path))
}

/// The commands [`if_token_script`] may run on a lock file that holds our token.
pub const IF_TOKEN_COMMANDS: [&str; 2] = ["rm -f", "touch -c"];

/// Runs `remote_cmd -- PATH` (one of [`IF_TOKEN_COMMANDS`]) only while `path` holds `token`;
/// replies `BM1 DONE`, `BM1 KEPT` or `BM1 ERROR …`.
pub fn if_token_script(path: &str, token: &str, remote_cmd: &str) -> String {
    // Only a regular file, never read through a symlink, can be ours.
    format!(
        "p={}; if [ -L \"$p\" ] || {{ [ -e \"$p\" ] && [ ! -f \"$p\" ]; }}; then echo 'BM1 KEPT'; \
         elif grep -qF -- {} \"$p\" 2>/dev/null; then {remote_cmd} -- \"$p\" && echo 'BM1 DONE'; \
         else r=$?; if [ \"$r\" = 1 ] || {{ [ ! -e \"$p\" ] && [ ! -L \"$p\" ]; }}; then echo 'BM1 KEPT'; \
         else echo \"BM1 ERROR cannot read $p (grep exit $r)\"; fi; fi",
        shell_quote(path),
        shell_quote(&format!("\"token\":\"{token}\""))
    )
}

/// Answers with exactly one framed reply for the path in `$p`:
/// `BM1 ABSENT`, `BM1 ERROR <why>`, or one of `BM1 PRESENT` (a regular file), `BM1 SYMLINK`,
/// `BM1 SPECIAL` (anything else) followed by the host's clock and the entry's own mtime (both in
/// seconds), and for a regular file its first 4 KiB.
///
/// Fails closed and is POSIX: a directory the user cannot enter is an error, never "absent"
/// (only a directory that provably does not exist makes its lock absent); the mtime comes from
/// `stat -c %Y` (GNU, BusyBox) or `stat -f %m` (BSD, macOS), both of which describe a symlink
/// itself, and anything but digits is an error; the body is read with `dd`. A symlink is tested
/// first (`-L`) and never read through; one swapped in while `dd` ran is reported as a symlink
/// with its body dropped. A file removed while it is being read (its owner releasing it between
/// our test and `stat` or `dd`) is absent, not an error; one that stays but cannot be read is
/// present with an empty body, like a local one.
pub(super) const OBSERVE_SCRIPT: &str = "d=$(dirname -- \"$p\"); n=$(basename -- \"$p\"); \
     while ! cd -- \"$d\" 2>/dev/null; do u=$(dirname -- \"$d\"); \
     if [ \"$u\" = \"$d\" ]; then echo \"BM1 ERROR cannot enter $d\"; exit 0; fi; \
     if cd -- \"$u\" 2>/dev/null; then e=$(basename -- \"$d\"); \
     if [ -e \"$e\" ] || [ -L \"$e\" ]; then echo \"BM1 ERROR cannot enter directory $d (permission denied?)\"; \
     else echo 'BM1 ABSENT'; fi; exit 0; fi; d=$u; done; \
     if [ -L \"$n\" ]; then k=SYMLINK; elif [ -d \"$n\" ]; then \
     echo \"BM1 ERROR $p is a directory, not a lock file; remove it or change the path in the configuration\"; exit 0; \
     elif [ -f \"$n\" ]; then k=PRESENT; \
     elif [ -e \"$n\" ]; then k=SPECIAL; else echo 'BM1 ABSENT'; exit 0; fi; \
     m=$(stat -c %Y -- \"$n\" 2>/dev/null) || m=$(stat -f %m -- \"$n\" 2>/dev/null) || m=; \
     case $m in ''|*[!0-9]*) if [ -e \"$n\" ] || [ -L \"$n\" ]; then \
     echo \"BM1 ERROR cannot read the modification time of $p (neither stat -c %Y nor stat -f %m works)\"; \
     else echo 'BM1 ABSENT'; fi; exit 0;; esac; \
     t=$(date +%s); case $t in ''|*[!0-9]*) echo 'BM1 ERROR date +%s does not print seconds'; exit 0;; esac; \
     b=; if [ $k = PRESENT ]; then \
     if b=$(dd if=\"$n\" bs=4096 count=1 2>/dev/null); then :; elif [ -e \"$n\" ] || [ -L \"$n\" ]; then b=; \
     else echo 'BM1 ABSENT'; exit 0; fi; \
     if [ -L \"$n\" ]; then k=SYMLINK; b=; fi; fi; \
     echo \"BM1 $k\"; printf '%s\\n%s\\n%s\\n' \"$t\" \"$m\" \"$b\"";

/// Reads the observe script's reply. Anything but a well-formed frame is an error (login-shell
/// noise, a non-POSIX shell, a missing tool): a check never reads "absent" by accident.
pub(super) fn parse_observation(out: &str) -> Result<Option<Observed>, String> {
    let mut lines = out.splitn(4, '\n');
    let first = lines.next().unwrap_or("").trim_end();
    let kind = match first {
        "BM1 ABSENT" => return Ok(None),
        "BM1 PRESENT" => None,
        "BM1 SYMLINK" => Some(Foreign::Symlink),
        "BM1 SPECIAL" => Some(Foreign::Special),
        _ if first.starts_with("BM1 ERROR ") => {
            return Err(first["BM1 ERROR ".len()..].to_string());
        }
        _ => return Err(unexpected(out)),
    };
    let num = |l: Option<&str>| l.and_then(|l| l.trim().parse::<i64>().ok());
    let (Some(now), Some(mtime)) = (num(lines.next()), num(lines.next())) else {
        return Err(unexpected(out));
    };
    let holder = match kind {
        Some(k) => Holder::Foreign(k),
        None => holder_of(lines.next().unwrap_or(""), None),
    };
    Ok(Some(Observed {
        holder,
        age: Duration::from_secs(u64::try_from(now - mtime).unwrap_or(0)),
    }))
}

/// The error for a reply that is not ours to read. It shows what came before the first frame
/// (login noise, a shell's complaint), never the frame's body: that may be a lock file's text.
fn unexpected(out: &str) -> String {
    let before = out.split("BM1 ").next().unwrap_or("");
    let shown: String = if before.is_empty() && !out.is_empty() {
        "a malformed BM1 reply".into()
    } else {
        before.chars().take(200).collect()
    };
    format!(
        "unexpected answer from the remote shell (is the login shell POSIX sh-compatible, and silent for non-interactive sessions?): {shown:?}"
    )
}
