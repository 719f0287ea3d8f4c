//! How this host reaches another one: run a small POSIX script there, and tell rsync how to
//! get there (`-e` and the operand).
//!
//! Owns: the [`Transport`] trait, its ssh implementation ([`SshTransport`], built once per
//! config load from a job's `user`/`host`/`port` and ssh settings), and [`quote::shell_quote`],
//! the one function through which text reaches a remote shell.
//!
//! Must not: know about locks, snapshots or jobs (callers build scripts; a transport only
//! carries them), or run anything through a local shell. There is no "local transport": work
//! on this host is done with system calls by the modules that need it, never with `sh -c`.

pub mod quote;
pub mod ssh;

use std::fmt;
use std::time::Duration;

pub use quote::shell_quote;
pub use ssh::{RemoteOutput, SshConfig, SshError, SshTarget};

/// What can go wrong carrying a script to another host (today: ssh's own failures).
pub type TransportError = SshError;

/// A way to reach one other host.
pub trait Transport: fmt::Debug + fmt::Display + Send + Sync {
    /// Runs `script` in the remote user's POSIX login shell, stdin empty, output captured,
    /// killed after `timeout`. The script must be built with [`shell_quote`].
    fn run_script(&self, script: &str, timeout: Duration) -> Result<RemoteOutput, TransportError>;

    /// The rsync operand for `path` on that host (`host:path`).
    fn rsync_operand(&self, path: &str) -> String;

    /// The value of rsync's `-e` that reaches that host the same way.
    fn rsync_rsh(&self) -> String;

    /// The host name as configured (for log fields).
    fn host(&self) -> &str;

    /// The argument vector (program first) that runs `script` there with the caller's stdin
    /// and stdout, for streaming data (an archive into a remote file, or out of one). The
    /// script must be built with [`shell_quote`]; the caller supervises the process. `None`
    /// when this transport cannot stream (the default).
    fn script_argv(&self, _script: &str) -> Option<Vec<std::ffi::OsString>> {
        None
    }
}

/// A host reached over ssh, with ControlMaster sharing between lock checks and rsync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTransport {
    pub target: SshTarget,
    pub config: SshConfig,
}

impl SshTransport {
    /// Checks the target once, when the plan is built, so a run never starts with a host that
    /// ssh could misread as an option.
    pub fn new(target: SshTarget, config: SshConfig) -> Result<SshTransport, SshError> {
        target.validate()?;
        Ok(SshTransport { target, config })
    }
}

impl fmt::Display for SshTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.target.fmt(f)
    }
}

impl Transport for SshTransport {
    fn run_script(&self, script: &str, timeout: Duration) -> Result<RemoteOutput, TransportError> {
        ssh::run_remote(&self.target, &self.config, script, timeout)
    }

    fn rsync_operand(&self, path: &str) -> String {
        self.target.rsync_location(path)
    }

    fn rsync_rsh(&self) -> String {
        ssh::rsync_rsh(&self.target, &self.config)
    }

    fn host(&self) -> &str {
        &self.target.host
    }

    fn script_argv(&self, script: &str) -> Option<Vec<std::ffi::OsString>> {
        let mut v = vec![self.config.program.clone().into_os_string()];
        v.extend(ssh::ssh_args(&self.target, &self.config));
        v.push("--".into());
        v.push(self.target.host.clone().into());
        v.push(script.into());
        Some(v)
    }
}
