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

use super::judge::Observed;
use super::record::Record;
use super::{holder_of, Created, LockBackend, LockError};
use crate::transport::{shell_quote, Transport};

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
    fn if_token(&self, path: &str, token: &str, remote_cmd: &str) -> Result<bool, LockError> {
        let script = format!(
            "p={}; if grep -qF -- {} \"$p\" 2>/dev/null; then {remote_cmd} -- \"$p\" && echo DONE; else echo KEPT; fi",
            shell_quote(path),
            shell_quote(&format!("\"token\":\"{token}\""))
        );
        Ok(self.run(path, &script)?.contains("DONE"))
    }
}

impl LockBackend for RemoteFiles {
    fn try_create(&self, path: &str, record: &Record) -> Result<Created, LockError> {
        let parent = Path::new(path)
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
        let out = self.run(path, &script)?;
        if out.trim_start().starts_with("CREATED") {
            Ok(Created::Yes)
        } else {
            Ok(Created::Exists(parse_observation(&out)))
        }
    }

    fn observe(&self, path: &str) -> Result<Option<Observed>, LockError> {
        let script = format!("p={}; {OBSERVE_SCRIPT}", shell_quote(path));
        Ok(parse_observation(&self.run(path, &script)?))
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
}

/// Prints `ABSENT`, or `PRESENT`, the host's clock, the file's mtime and its first bytes.
/// Expects the path in `$p`. A file removed while it is being read (its owner releasing it
/// between our `-e` and `stat` or `head`) is absent, not an error; one that stays but cannot be
/// read is present with an empty body, like a local one.
pub(super) const OBSERVE_SCRIPT: &str =
    "if [ -e \"$p\" ] && m=$(stat -c %Y -- \"$p\" 2>/dev/null); then \
     if b=$(head -c 4096 -- \"$p\" 2>/dev/null); then :; elif [ -e \"$p\" ]; then b=; \
     else echo ABSENT; exit 0; fi; \
     echo PRESENT; date +%s; printf '%s\\n%s\\n' \"$m\" \"$b\"; else echo ABSENT; fi";

pub(super) fn parse_observation(out: &str) -> Option<Observed> {
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
